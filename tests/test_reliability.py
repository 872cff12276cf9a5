"""Reliability (issue #15): checkpoints that cannot lie, limits that hold, config values that are typed, runs
that survive ``kill -9`` anywhere, and nothing left behind. Every test here failed on the code before it."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest
import torch
from conftest import tiny_lm
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from rins.checkpoint import (
    CheckpointError,
    clean_stale_temp,
    latest_checkpoint,
    load_checkpoint,
    load_model,
    restore_optimizer,
)
from rins.cli import main as cli
from rins.config import TrainConfig, load_config
from rins.fields import ConfigError
from rins.model import LMConfig, RecursiveLM
from rins.plan import MAX_APPLICATIONS, SignatureError, compile_plan
from rins.train import NonFiniteError, train

FAST = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def overrides(corpus, cache, tmp_path, name="r", **over) -> list[str]:
    ov = [f'data.corpus="{corpus}"', f'data.cache_dir="{cache}"', f'out_dir="{tmp_path}"', f'name="{name}"',
          "progress=false", "threads=1"]
    return ov + [f"{k}={v}" for k, v in over.items()]


def cfg_for(corpus, cache, tmp_path, name="r", **over) -> TrainConfig:
    return load_config("tiny", None, overrides(corpus, cache, tmp_path, name, **over))


STEPS = {"budget.steps": 8, "ckpt_every": 2}  # runs stopped after 4 steps, resumed with the same config


def trained(corpus, cache, tmp_path, name, **over) -> Path:
    train(cfg_for(corpus, cache, tmp_path, name, **{**STEPS, **over}), quiet=True, stop_after=4)
    return tmp_path / name


def rewrite_optimizer(ck: Path, edit) -> None:
    t = load_file(str(ck / "optimizer.safetensors"))
    edit(t)
    save_file(t, str(ck / "optimizer.safetensors"))


# ----------------------------------------------------------------------------------------------
# 1. optimizer tensors of the wrong shape: a clear error before the fused kernel reads out of bounds


@pytest.mark.parametrize("bad", ["one", "empty", "half", "extra_row", "nan", "dtype"])
def test_resume_refuses_optimizer_moments_of_the_wrong_shape(corpus, cache, tmp_path, bad):
    run = trained(corpus, cache, tmp_path, "opt")
    ck = latest_checkpoint(run)
    key = "state.0.exp_avg"  # the embedding (first decayed parameter): (vocab, d)

    def edit(t):
        m = t[key]
        t[key] = {"one": torch.ones(1), "empty": torch.ones(0), "half": m[: m.shape[0] // 2].contiguous(),
                  "extra_row": torch.cat([m, m[:1]]), "nan": m * float("nan"), "dtype": m.double()}[bad]

    rewrite_optimizer(ck, edit)
    with pytest.raises(CheckpointError, match="SHA-256"):  # the hash catches any edit
        train(cfg_for(corpus, cache, tmp_path, "opt", **STEPS), quiet=True)
    with pytest.raises(CheckpointError, match=r"optimizer state\.0\.exp_avg (has shape|holds non-finite)"):
        train(cfg_for(corpus, cache, tmp_path, "opt", **STEPS), quiet=True,
              verify=False)


def test_restore_optimizer_checks_against_the_parameters():
    a, b = torch.nn.Linear(3, 4), torch.nn.Linear(3, 4)
    opt = torch.optim.AdamW(a.parameters())
    a(torch.ones(2, 3)).sum().backward()
    opt.step()
    from rins.checkpoint import _flatten_optimizer

    tensors, meta = _flatten_optimizer(opt)
    target = torch.optim.AdamW(b.parameters(), fused=True)
    restore_optimizer(target, tensors, {"optimizer": meta})  # the intact state loads
    tensors["state.0.exp_avg_sq"] = torch.ones(1)
    with pytest.raises(CheckpointError, match="state.0.exp_avg_sq has shape"):
        restore_optimizer(torch.optim.AdamW(b.parameters(), fused=True), tensors, {"optimizer": meta})
    with pytest.raises(CheckpointError, match="parameter groups"):
        restore_optimizer(torch.optim.AdamW([{"params": [b.weight]}, {"params": [b.bias]}]), tensors,
                          {"optimizer": meta})


# ----------------------------------------------------------------------------------------------
# 2. no NaN "good" checkpoint; a non-finite final state is an error


def nan_lr_from(step_index):
    import rins.train as T

    orig = T.lr_at
    return lambda s, total, o: float("nan") if s >= step_index else orig(s, total, o)


def test_nan_weights_never_reach_a_checkpoint(corpus, cache, tmp_path, monkeypatch):
    monkeypatch.setattr("rins.train.lr_at", nan_lr_from(1))  # step 2 writes NaN weights
    c = cfg_for(corpus, cache, tmp_path, "nanw", **{"budget.steps": 6, "ckpt_every": 1})
    with pytest.raises(NonFiniteError, match="non-finite weights after the optimizer step at step 2"):
        train(c, quiet=True)
    assert latest_checkpoint(tmp_path / "nanw").name == "step_00000001"
    w, _, meta = load_checkpoint(tmp_path / "nanw")
    assert meta["step"] == 1 and all(torch.isfinite(t).all() for t in w.values())


def test_a_run_ending_non_finite_exits_non_zero(corpus, cache, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("rins.train.lr_at", nan_lr_from(1))  # the last of 2 steps goes NaN: no later loss sees it
    rc = cli(["train", "--preset", "tiny", *sum((["--set", o] for o in overrides(
        corpus, cache, tmp_path, "nan2", **{"budget.steps": 2})), [])])
    assert rc == 2 and "non-finite weights" in capsys.readouterr().err
    assert not (tmp_path / "nan2" / "summary.json").exists()
    assert latest_checkpoint(tmp_path / "nan2") is None


def test_non_finite_weights_in_a_checkpoint_are_refused(corpus, cache, tmp_path):
    run = trained(corpus, cache, tmp_path, "nanck")
    ck = latest_checkpoint(run)
    w = load_file(str(ck / "model.safetensors"))
    w["norm.weight"][0] = float("inf")
    save_file(w, str(ck / "model.safetensors"))
    with pytest.raises(CheckpointError, match="non-finite"):
        load_model(run, verify=False)


# ----------------------------------------------------------------------------------------------
# 3. hard limits instead of unbounded memory


@pytest.mark.parametrize("args, match", [
    (("(((A^1024)^1024)^1024)B", 2), f"more than {MAX_APPLICATIONS} layer applications"),
    (("A^1024B", 256), f"more than {MAX_APPLICATIONS} layer applications"),
    (("AB", 1_000_000_000), "n_layers=1000000000 exceeds the maximum"),
    (("A^2B", 4, 1, None, 1_000_000_000), "r=1000000000 exceeds the maximum"),
    (("(" * 40 + "A" + ")" * 40 + "B", 2), "nested deeper than 32"),
    (("(" * 990 + "A" + ")" * 990 + "B", 2), "too long"),
    (("A^" + "9" * 5000 + "B", 2), "too long"),
    (("A^99999999999B", 2), "too large"),
    (("rins(" + "9" * 5000 + ")", 2), "too long"),
    (("AB", 2, 100), "degree=100 exceeds the maximum"),
])
def test_plan_limits_fail_fast(args, match):
    t = time.perf_counter()
    with pytest.raises(SignatureError, match=match):
        compile_plan(*args)
    assert time.perf_counter() - t < 2.0


def test_cli_limits_are_one_line_errors(capsys):
    for argv in (["plan", "(((A^1024)^1024)^1024)B", "--layers", "2"], ["plan", "A^2B", "--layers", "4", "--r",
                 "1000000000"], ["plan", "AB", "--layers", "1000000000"]):
        assert cli(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err
    with pytest.raises(ValueError, match="n_layers=1000000000 exceeds"):
        LMConfig(n_layers=1_000_000_000)


def test_generate_allocates_for_the_tokens_it_produces(monkeypatch):
    m = tiny_lm(signature="A^2B")
    x = torch.randint(0, 61, (1, 5))
    sizes = []
    orig = RecursiveLM.new_cache
    monkeypatch.setattr(RecursiveLM, "new_cache", lambda self, b, n, *a, **k: sizes.append(n) or orig(self, b, n, *a,
                                                                                                       **k))
    first = int(m.generate(x, 1)[0, -1])
    out = m.generate(x, 100_000, eos_token_id=first)  # stops at once: no KV cache for 100k positions
    assert out.shape == (1, 5 + 100_000) and bool((out[0, 5:] == first).all())
    assert max(sizes) <= 5 + 256
    # a cache that grows past its first allocation gives the same tokens as no cache at all
    long = m.generate(x, 300, r=1)
    assert torch.equal(long, m.generate(x, 300, r=1, use_cache=False))


def test_cli_generate_stops_at_the_context(corpus, cache, tmp_path, capsys):
    run = trained(corpus, cache, tmp_path, "gen")
    t = time.perf_counter()
    assert cli(["generate", str(run), "--prompt", "the king", "--max-new-tokens", "5000"]) == 0
    assert time.perf_counter() - t < 30
    assert "capped to" in capsys.readouterr().err
    assert cli(["generate", str(run), "--prompt", "the king", "--r", "1000000000"]) == 2


# ----------------------------------------------------------------------------------------------
# 5. typed config values


@pytest.mark.parametrize("key", ["tie_embeddings", "qkv_bias", "kv_share", "activation_checkpointing"])
@pytest.mark.parametrize("text, value", [("no", False), ("yes", True), ("0", False), ("1", True), ("False", False)])
def test_model_booleans_are_parsed(key, text, value):
    c = load_config("tiny", None, [f"model.{key}={text}"])
    assert getattr(c.model, key) is value and c.to_dict()["model"][key] is value
    m = dict(c.to_dict()["model"], vocab_size=64)
    assert getattr(LMConfig.from_dict(m), key) is value


@pytest.mark.parametrize("key", ["fused_loss", "eval_all_depths"])
def test_top_level_booleans_are_parsed(key):
    assert getattr(load_config("tiny", None, [f"{key}=no"]), key) is False
    with pytest.raises(ConfigError, match=f"config {key}='maybe' is invalid: must be a boolean"):
        load_config("tiny", None, [f"{key}=maybe"])


@pytest.mark.parametrize("override, match", [
    ("optim.lr=nan", "config optim.lr=nan is invalid: must be a finite number"),
    ("optim.min_lr_ratio=NaN", "optim.min_lr_ratio=nan is invalid"),
    ("log_every=0", "config log_every=0 is invalid: must be >= 1"),
    ('batch_size="eight"', "config batch_size='eight' is invalid: must be an integer"),
    ("batch_size=8.5", "batch_size=8.5 is invalid"),
    ('data.corpus=""', "config data.corpus='' is invalid"),
    ("budget.flops=Infinity", "config budget.flops=inf is invalid"),
    ("seed=1e30", "config seed=.* is invalid"),
    ("seed=-1", "config seed=-1 is invalid"),
    ("name=../../x", "config name='../../x' is invalid: must be a relative folder name inside out_dir"),
    ("name=/tmp/x", "config name='/tmp/x' is invalid"),
    ("model.tie_embeddings=maybe", "config model.tie_embeddings='maybe' is invalid: must be a boolean"),
    ("model.n_heads=2.5", "config model.n_heads=2.5 is invalid: must be an integer"),
    ("dtype=float16", "config dtype='float16' is invalid"),
    ("eval_depths=[0]", "config eval_depths=\\[0\\] is invalid"),
    ("optim.beta2=1", "config optim.beta2=1.0 is invalid"),
])
def test_bad_config_values_name_key_value_and_fix(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config("tiny", None, [override])


def test_bad_values_are_clear_cli_errors(corpus, cache, tmp_path, capsys):
    base = ["train", "--preset", "tiny", "--out-dir", str(tmp_path), "--set", f'data.cache_dir="{cache}"',
            "--set", f'data.corpus="{corpus}"']
    for extra in (["--set", "optim.lr=nan"], ["--set", "log_every=0"], ["--set", 'batch_size="x"'],
                  ["--set", "model.rope_theta=0"], ["--set", "budget.flops=Infinity"], ["--set", "seed=1e30"],
                  ["--name", "../../x"], ["--config", str(tmp_path)], ["--signature", "(" * 990 + "A" + ")" * 990]):
        assert cli(base + extra) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err, (extra, err)
    assert not (tmp_path.parent.parent / "x").exists()
    assert "rope_theta=0.0 must be a finite number > 0" in _err(capsys, base + ["--set", "model.rope_theta=0"])
    assert "is a folder" in _err(capsys, base + ["--config", str(tmp_path)])


def _err(capsys, argv) -> str:
    cli(argv)
    return capsys.readouterr().err


def _leaf_fields() -> list[str]:
    keys = []
    for f in fields(TrainConfig):
        if f.name == "model":
            continue
        default = getattr(TrainConfig(), f.name)
        keys += [f"{f.name}.{g.name}" for g in fields(default)] if is_dataclass(default) else [f.name]
    return keys + [f"model.{f.name}" for f in fields(LMConfig)]


ANY_VALUE = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.integers(-3, 70),
                      st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                      st.sampled_from(["yes", "no", "1", "0", "A^2B", "(AB)^2", "rins(3)", "nan", "-inf", "1e400",
                                       "../x", "", "[1, 2]", "[0]", "{}", "float32", "bfloat16", "cosine"]),
                      st.lists(st.integers(-2, 5), max_size=3))


@FAST
@given(key=st.sampled_from(_leaf_fields()), value=ANY_VALUE, raw=st.booleans())
def test_fuzz_every_field_gives_a_config_or_a_clear_error(key, value, raw):
    """Any value of any field: a valid config (and model config) or a ValueError naming the problem."""
    text = value if raw and isinstance(value, str) else json.dumps(value)
    try:
        c = load_config("tiny", None, [f"{key}={text}"])
        LMConfig.from_dict({"vocab_size": c.data.vocab_size, "max_seq_len": c.data.seq_len, **c.to_dict()["model"]})
    except ValueError as e:  # ConfigError, SignatureError and LMConfig's checks are all ValueErrors
        msg = str(e)
        assert msg and "Traceback" not in msg
        if isinstance(e, ConfigError) and not isinstance(e, SignatureError):  # a model field LMConfig checks: said
            # of the [model] table (a signature's error points at the character, on several lines)
            named = msg.startswith(f"config {key}=") or (key.startswith("model.") and msg.startswith(
                "config [model] of task") and key.removeprefix("model.") in msg)
            assert named and "\n" not in msg, msg
    else:
        assert TrainConfig.from_dict(c.to_dict()) == c  # what is saved loads back to the same config


CHEAP_KEYS = ["optim.lr", "optim.warmup_frac", "optim.schedule", "optim.grad_clip", "optim.eps", "seed", "log_every",
              "ckpt_every", "keep_last", "n_evals", "eval_batches", "grad_accum", "fused_loss", "model.signature",
              "model.p_skip", "model.adapters", "model.tie_embeddings", "model.kv_share", "model.input_injection"]


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(key=st.sampled_from(CHEAP_KEYS), value=ANY_VALUE)
def test_fuzz_cli_train_runs_or_says_why(corpus, cache, tmp_path, capsys, key, value):
    """Random values through ``rins train`` (2 steps): exit 0 with finite losses, or 2 with a one-line error."""
    name = f"fz{abs(hash((key, repr(value)))) % 10**8}"
    argv = ["train", "--preset", "tiny", "--no-resume"]
    for o in overrides(corpus, cache, tmp_path, name, **{"budget.steps": 2}) + [f"{key}={json.dumps(value)}"]:
        argv += ["--set", o]
    rc = cli(argv)
    out = capsys.readouterr()
    assert rc in (0, 2) and "Traceback" not in out.err
    if rc == 0:
        assert json.loads((tmp_path / name / "summary.json").read_text())["val_loss"] < 20
    else:
        assert out.err.startswith("error: ")


# ----------------------------------------------------------------------------------------------
# 6. checkpoints are verified


def flip_bytes(path: Path, n: int = 1000) -> None:
    b = bytearray(path.read_bytes())
    start = len(b) // 2
    for i in range(start, min(len(b), start + n)):
        b[i] ^= 0xFF
    path.write_bytes(bytes(b))


def test_flipped_bytes_fail_the_sha256(corpus, cache, tmp_path, capsys):
    run = trained(corpus, cache, tmp_path, "flip")
    flip_bytes(latest_checkpoint(run) / "model.safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors fails its SHA-256 check"):
        load_model(run)
    with pytest.raises(CheckpointError, match="SHA-256"):
        train(cfg_for(corpus, cache, tmp_path, "flip", **STEPS), quiet=True)
    assert cli(["generate", str(run), "--prompt", "the", "--max-new-tokens", "2"]) == 2
    assert "SHA-256" in capsys.readouterr().err
    assert cli(["eval", str(run), "--batches", "1"]) == 2
    assert "SHA-256" in capsys.readouterr().err
    load_model(run, verify=False)  # --no-verify: the caller takes the risk
    assert cli(["eval", str(run), "--batches", "1", "--no-verify", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["loss"] > 0


def test_checkpoint_without_sums_loads_with_a_warning(corpus, cache, tmp_path):
    """A checkpoint from before the sums were recorded still loads, but not silently."""
    run = trained(corpus, cache, tmp_path, "nosums")
    ck = latest_checkpoint(run)
    meta = json.loads((ck / "meta.json").read_text())
    del meta["sha256"]
    (ck / "meta.json").write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match="records no SHA-256 sums"):
        load_model(run)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(run, verify=False)  # --no-verify asked for no check: nothing to warn about


def edit_meta(ck: Path, **changes) -> None:
    meta = json.loads((ck / "meta.json").read_text())
    for k, v in changes.items():
        if k == "signature":
            meta["model_config"]["signature"] = v
        else:
            meta[k] = v
    (ck / "meta.json").write_text(json.dumps(meta))


def test_edited_meta_signature_is_refused(corpus, cache, tmp_path):
    run = trained(corpus, cache, tmp_path, "sig", **{"model.signature": "A^2B"})
    edit_meta(latest_checkpoint(run), signature="A^3B")  # same tensors, another architecture
    with pytest.raises(CheckpointError, match="meta.json was modified"):
        load_model(run)
    with pytest.raises(CheckpointError, match=r"differs from .*config.json in \['signature'\]"):
        load_model(run, verify=False)
    with pytest.raises(CheckpointError, match=r"model config differs from this run's in \['signature'\]"):
        train(cfg_for(corpus, cache, tmp_path, "sig", **STEPS, **{"model.signature": "A^2B"}), quiet=True, verify=False)


def test_edited_step_is_refused(corpus, cache, tmp_path):
    run = trained(corpus, cache, tmp_path, "step")
    ck = latest_checkpoint(run)
    edit_meta(ck, step=10**9)
    c = cfg_for(corpus, cache, tmp_path, "step", **STEPS)
    with pytest.raises(CheckpointError, match="meta.json was modified"):
        train(c, quiet=True)
    with pytest.raises(CheckpointError, match="meta.json says step 1000000000 but the folder is step 4"):
        train(c, quiet=True, verify=False)
    # renaming the folder too: the optimizer's own step counters disagree
    big = ck.parent / f"step_{10**9:08d}"
    ck.rename(big)
    (ck.parent / "LATEST").write_text(big.name)
    with pytest.raises(CheckpointError, match="does not match meta.json step 1000000000"):
        train(c, quiet=True, verify=False)


@pytest.mark.parametrize("change", ["dtype=bfloat16", "fused_loss=false", "model.attn_impl=eager"])
def test_resume_with_numerics_changing_fields_is_refused(corpus, cache, tmp_path, change):
    trained(corpus, cache, tmp_path, "fp")
    key, val = change.split("=")
    c = cfg_for(corpus, cache, tmp_path, "fp", **{**STEPS, key: val})
    with pytest.raises(CheckpointError, match=f"different config \\(differs in \\['{key.split('.')[0]}'"):
        train(c, quiet=True)
    # fields that do not change the model may change (compile, like threads and device, only the rounding: runs
    # made before compile = "auto" became the default resume under it)
    train(cfg_for(corpus, cache, tmp_path, "fp", **{**STEPS, "ckpt_every": 3, "log_every": 2, "keep_last": 1,
                                                    "compile": "false"}), quiet=True)


# ----------------------------------------------------------------------------------------------
# 7. litter and drift


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temp_files_of_dead_writers_are_removed(corpus, cache, tmp_path):
    run = trained(corpus, cache, tmp_path, "tmp")
    ckdir = run / "checkpoints"
    pid = dead_pid()
    stale = [ckdir / f".step_00000006.tmp-{pid}", ckdir / f".LATEST.tmp-{pid}", run / f".config.json.tmp-{pid}"]
    stale[0].mkdir()
    (stale[0] / "model.safetensors").write_bytes(b"half")
    for p in stale[1:]:
        p.write_text("x")
    live = ckdir / ".step_00000008.tmp-1"  # pid 1 is alive: a writer that may still be running
    live.mkdir()
    train(cfg_for(corpus, cache, tmp_path, "tmp", **STEPS), quiet=True)
    assert not any(p.exists() for p in stale) and live.exists()
    assert clean_stale_temp(run) == []


def test_no_resume_rewrites_the_tokenizer(corpus, cache, tmp_path):
    run = trained(corpus, cache, tmp_path, "tok")
    old = json.loads((run / "tokenizer.json").read_text())
    train(cfg_for(corpus, cache, tmp_path, "tok", **{"budget.steps": 2, "data.vocab_size": 300}), quiet=True,
          resume=False)
    new = json.loads((run / "tokenizer.json").read_text())
    assert len(new["model"]["vocab"]) <= 300 < len(old["model"]["vocab"])


def test_run_names_stay_inside_out_dir(tmp_path):
    for name in ("../../x", "/abs", ".", "a/../../b", ""):
        with pytest.raises(ConfigError, match="config name="):
            load_config("tiny", None, [f"out_dir={json.dumps(str(tmp_path))}", f"name={json.dumps(name)}"])
    assert load_config("tiny", None, ["name=grid/run1"]).name == "grid/run1"


def train_records(run: Path) -> list[tuple[int, float]]:
    recs = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in recs if r.get("event") == "train"]


def test_kill_and_resume_is_exact(corpus, cache, tmp_path):
    """``kill -9`` at random points and inside checkpoint writes; every restart resumes; the final weights and
    the log equal an uninterrupted run's, with no duplicate steps and no temporary files left behind."""
    over = {"budget.steps": 30, "ckpt_every": 3, "log_every": 1, "model.signature": "A^2B", "model.p_skip": 0.5}
    train(cfg_for(corpus, cache, tmp_path, "ref", **over), quiet=True)
    argv = [sys.executable, "-m", "rins.cli", "train", "--preset", "tiny"]
    for o in overrides(corpus, cache, tmp_path, "kill", **over):
        argv += ["--set", o]
    run = tmp_path / "kill"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    in_write = 0
    for i in range(4):
        slow = i % 2 == 0  # every other run sleeps inside its checkpoint writes: the kill lands there
        p = subprocess.Popen(argv, env={**env, **({"RINS_FAULT_SLEEP": "0.3"} if slow else {})},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        before = len(train_records(run)) if (run / "log.jsonl").exists() else 0
        deadline = time.time() + 60
        while p.poll() is None and time.time() < deadline:
            ckdir = run / "checkpoints"
            tmp = ckdir.is_dir() and any(".tmp-" in q.name for q in ckdir.iterdir())
            if (slow and tmp) or (not slow and (run / "log.jsonl").exists()
                                  and len(train_records(run)) >= before + 2):
                in_write += bool(tmp)
                p.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        p.wait()
    assert in_write >= 2, "no kill landed inside a checkpoint write"
    assert subprocess.run(argv, env=env, capture_output=True).returncode == 0
    a, b = load_model(tmp_path / "ref").state_dict(), load_model(run).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert train_records(run) == train_records(tmp_path / "ref")  # same losses, each step once
    litter = [q for d in (run, run / "checkpoints") for q in d.iterdir() if ".tmp-" in q.name]
    assert litter == []


# ----------------------------------------------------------------------------------------------
# issue #28: corrupt run files name the file; checkpoint metadata is checked after its hash


def rehash(ck: Path) -> None:
    """Recompute every SHA-256 of a checkpoint, as someone editing it on purpose would."""
    from rins.checkpoint import TENSOR_FILES, _file_sha256, _meta_sha256

    meta = json.loads((ck / "meta.json").read_text())
    meta["sha256"] = {f: _file_sha256(ck / f) for f in TENSOR_FILES}
    meta["sha256"]["meta"] = _meta_sha256(meta)
    (ck / "meta.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("file", ["tokenizer.json", "config.json"])
def test_corrupt_run_files_are_one_line_errors_naming_the_file(corpus, cache, tmp_path, capsys, file):
    run = trained(corpus, cache, tmp_path, "garbage")
    (run / file).write_text("{not json")
    for argv in (["generate", str(run), "--prompt", "the", "--max-new-tokens", "2"],
                 ["eval", str(run), "--batches", "1"]):
        assert cli(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and str(run / file) in err and "Traceback" not in err, err
        assert ("not a valid tokenizer file" if file == "tokenizer.json" else "is not valid JSON") in err
    from rins.runfiles import RunFileError

    if file == "config.json":
        (run / file).write_text(json.dumps({"optim": {"lr": "fast"}}))  # JSON, but not a config
        with pytest.raises(RunFileError, match=r"config.json: holds an invalid config \(config optim.lr='fast'"):
            from rins.evaluation import evaluate_run

            evaluate_run(run)


@pytest.mark.parametrize("key, value, match", [("tokens", "abc", "tokens='abc'"), ("tokens", -5, "tokens=-5"),
                                               ("flops", float("nan"), "flops=nan"), ("name", 3, "name=3")])
def test_checkpoint_meta_is_checked_after_its_hash(corpus, cache, tmp_path, key, value, match):
    run = trained(corpus, cache, tmp_path, "meta")
    ck = latest_checkpoint(run)
    edit_meta(ck, **{key: value})
    rehash(ck)  # the hash now vouches for the edit: the values themselves must be refused
    with pytest.raises(CheckpointError, match=f"meta.json {match} is invalid"):
        train(cfg_for(corpus, cache, tmp_path, "meta", **STEPS), quiet=True)


def test_float64_weights_are_refused_half_precision_is_widened(corpus, cache, tmp_path):
    run = trained(corpus, cache, tmp_path, "f64")
    ck = latest_checkpoint(run)
    w = load_file(str(ck / "model.safetensors"))
    save_file({k: v.double() for k, v in w.items()}, str(ck / "model.safetensors"))
    rehash(ck)
    with pytest.raises(CheckpointError, match="dtype torch.float64 vs model torch.float32"):
        load_model(run)
    save_file({k: v.bfloat16() if v.is_floating_point() else v for k, v in w.items()}, str(ck / "model.safetensors"))
    rehash(ck)
    assert next(load_model(run).parameters()).dtype == torch.float32


# ----------------------------------------------------------------------------------------------
# issue #28, the replay: one case of each family the hostile-user pass found, each a clear one-line error


def one_line_error(capsys, argv, *needles) -> str:
    """Run the CLI: exit code 2 and exactly one line on stderr, 'error: ...', holding every needle."""
    rc = cli(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, (argv, rc, err)
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err and "[Errno" not in err, err
    for n in needles:
        assert n in err, (n, err)
    return err


def test_family_1_one_big_document_prepares(tmp_path):
    """A single-line file is split and prepared (it was quadratic: 100 MB never finished). The linear growth is
    asserted by counting work in tests/test_data.py::test_one_big_document_is_split_and_cut_in_linear_work."""
    from rins.data import prepare_data

    (tmp_path / "one.txt").write_text("the quick brown fox jumps " * 20_000)  # 0.5 MB, one line
    b = prepare_data(str(tmp_path / "one.txt"), tmp_path / "cache", vocab_size=300)
    assert b.meta["train_docs"] == ["one.txt#train"] and b.meta["n_val_tokens"] > 0


def test_family_2_api_arguments(capsys):
    from rins import ConfigError

    with pytest.raises(ConfigError, match=r"^compile_plan: n_layers=4.9 is invalid: must be an integer \(got float\)$"):
        compile_plan("AB", 4.9)
    one_line_error(capsys, ["plan", "AB", "--layers", "2", "--block-sizes", ","], "--block-sizes", "','")


def test_family_3_corrupt_run_file(corpus, cache, tmp_path, capsys):
    run = trained(corpus, cache, tmp_path, "fam3")
    (run / "config.json").write_text("{\"a\": ")
    one_line_error(capsys, ["eval", str(run)], str(run / "config.json"), "is not valid JSON", "restore it")


def test_family_4_checkpoint_metadata(corpus, cache, tmp_path, capsys):
    run = trained(corpus, cache, tmp_path, "fam4")
    edit_meta(latest_checkpoint(run), flops=float("nan"))
    rehash(latest_checkpoint(run))
    one_line_error(capsys, ["train", "--preset", "tiny", *sum((["--set", o] for o in overrides(
        corpus, cache, tmp_path, "fam4", **STEPS)), [])], "flops=nan is invalid")


def test_family_5_generation_arguments(corpus, cache, tmp_path, capsys):
    run = trained(corpus, cache, tmp_path, "fam5")
    gen = ["generate", str(run), "--prompt", "the", "--max-new-tokens", "2"]
    one_line_error(capsys, gen + ["--temperature", "inf"], "temperature=inf")
    one_line_error(capsys, gen + ["--seed", str(2**64)], "seed=18446744073709551616")
    one_line_error(capsys, gen + ["--stop", "\\x", "--stop-escapes"], "invalid backslash escape")
    assert cli(gen + ["--stop", "\\x", "--temperature", "0"]) == 0  # literal by default: no codec error


def test_family_6_absurd_settings(capsys):
    one_line_error(capsys, ["train", "--preset", "tiny", "--optim.eps", "1e308", "--print-config"], "optim.eps")
    one_line_error(capsys, ["train", "--preset", "tiny", "--device", "nonsense", "--print-config"], "device='nonsense'")
    one_line_error(capsys, ["train", "--preset", "tiny", "--model.depth_seed", "-1", "--print-config"], "depth_seed=-1")


def test_family_7_path_errors(corpus, cache, tmp_path, capsys):
    base = ["train", "--preset", "tiny", "--set", f'data.corpus="{corpus}"', "--set", f'data.cache_dir="{cache}"']
    one_line_error(capsys, base + ["--out-dir", "/"], "file-system root")
    one_line_error(capsys, base + ["--out-dir", "/proc"], "inside /proc")
    one_line_error(capsys, base + ["--out-dir", str(tmp_path), "--name", "n" * 300], "the limit is 250 bytes")
    (tmp_path / "cf").mkdir()
    (tmp_path / "cf" / "checkpoints").write_text("")
    one_line_error(capsys, base + ["--out-dir", str(tmp_path), "--name", "cf"],
                   str(tmp_path / "cf" / "checkpoints"), "is not a folder")
    (tmp_path / "file").write_text("")
    one_line_error(capsys, base + ["--out-dir", str(tmp_path / "file"), "--name", "x"],
                   str(tmp_path / "file"), "not a folder")


def test_family_8_memory_estimate(corpus, cache, tmp_path, capsys):
    t = time.perf_counter()
    one_line_error(capsys, ["train", "--preset", "tiny", "--model.d_model", "65536", "--model.n_heads", "4",
                            "--out-dir", str(tmp_path)], "needs at least", "GiB", "--force")
    assert time.perf_counter() - t < 60 and not (tmp_path / "tiny").exists()  # refused before the run dir exists
    from rins.tasks import default_depths

    assert len(default_depths(1024)) <= 16 and max(default_depths(1024)) == 1024  # was 1025 depths, then an error


def test_family_9_nan_messages(corpus, cache, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("rins.train.lr_at", nan_lr_from(0))  # the first step goes NaN: no checkpoint exists
    err = one_line_error(capsys, ["train", "--preset", "tiny", *sum((["--set", o] for o in overrides(
        corpus, cache, tmp_path, "nan9", **{"budget.steps": 2})), [])], "before its first checkpoint")
    assert "None" not in err and "float32" not in err  # the run is float32 already
