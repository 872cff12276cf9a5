"""The trainer: budget → steps, schedules, exact resume, atomic checkpoints, NaN stop, configs, CLI."""

import json
import math
import re
from pathlib import Path

import pytest
import torch

from rins.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, load_model
from rins.cli import main as cli
from rins.config import TrainConfig, apply_overrides, load_config
from rins.runs import read_log
from rins.tasks.lm import LMTask
from rins.train import BudgetError, NonFiniteError, eval_schedule, lr_at, plan_steps, train


def cfg_for(corpus, cache, tmp_path, name="r", **over) -> TrainConfig:
    ov = [f'data.corpus="{corpus}"', f'data.cache_dir="{cache}"', f'out_dir="{tmp_path}"', f'name="{name}"',
          "progress=false"]
    ov += [f"{k}={v}" for k, v in over.items()]
    return load_config("tiny", None, ov)


def test_budget_to_steps_is_compute_matched(corpus, cache, tmp_path):
    base = cfg_for(corpus, cache, tmp_path, **{"budget.flops": 5e9})
    task = LMTask(base, None)
    task.prepare()
    fps_ab = task.flops_per_step(task.build_model(), base.batch_size)
    rec = cfg_for(corpus, cache, tmp_path, **{"budget.flops": 5e9, "model.signature": "A^2B"})
    fps_rec = LMTask(rec, None).flops_per_step(LMTask(rec, None).build_model(), rec.batch_size)
    assert plan_steps(base, fps_ab, 1) == int(5e9 // fps_ab)
    assert plan_steps(rec, fps_rec, 1) == int(5e9 // fps_rec)
    assert plan_steps(rec, fps_rec, 1) < plan_steps(base, fps_ab, 1)
    with pytest.raises(BudgetError, match="too small for one step"):
        plan_steps(cfg_for(corpus, cache, tmp_path, **{"budget.flops": 10}), fps_ab, 1)
    tok = cfg_for(corpus, cache, tmp_path, **{"budget.tokens": 2560})
    assert plan_steps(tok, fps_ab, 256) == 10


def test_a_run_says_how_often_it_reads_its_training_split(corpus, cache, tmp_path, capsys):
    c = cfg_for(corpus, cache, tmp_path, **{"budget.tokens": 2560})
    s = train(c)
    task = LMTask(c, None)
    task.prepare()
    split = task.bundle.meta["n_train_tokens"]
    assert s["train_units"] == split and s["passes"] == pytest.approx(2560 / split)
    assert f"= {2560 / split:.3g} passes over the training split ({split:,} tokens)" in capsys.readouterr().out
    # and which data it read: the corpus's identity (here the local folder's content hash), as its cache key
    assert s["data_identity"] == task.bundle.meta["cache_key"] and s["data_identity"]["content_sha256"]
    assert s["data_identity"]["corpus"] == str(Path(corpus).resolve())


def test_compute_matched_runs_realise_equal_flops(corpus, cache, tmp_path):
    budget = 3e9
    out = {}
    for sig, extra in (("AB", {}), ("A^2B", {}), ("A^3B", {"model.p_skip": 0.5})):
        c = cfg_for(corpus, cache, tmp_path, name=sig.replace("^", ""), **{"budget.flops": budget,
                                                                          "model.signature": sig, **extra})
        out[sig] = train(c, quiet=True)
    for s in out.values():
        assert s["steps"] * s["flops_per_step"] <= budget
        assert budget - s["flops_per_step"] < s["steps"] * s["flops_per_step"]  # within one step of the budget
    assert out["A^2B"]["tokens"] < out["AB"]["tokens"]  # the recursive model sees fewer tokens
    # stochastic: realised FLOPs near the expected budget
    assert out["A^3B"]["flops"] == pytest.approx(out["A^3B"]["steps"] * out["A^3B"]["flops_per_step"], rel=0.25)


def test_schedule_shapes():
    o = TrainConfig().optim
    lrs = [lr_at(s, 100, o) for s in range(100)]
    assert lrs[0] < lrs[5] == pytest.approx(o.lr)
    assert lrs[-1] == pytest.approx(o.lr * o.min_lr_ratio)
    assert all(a >= b for a, b in zip(lrs[5:], lrs[6:]))
    o.schedule = "wsd"
    w = [lr_at(s, 100, o) for s in range(100)]
    assert w[50] == o.lr and w[-1] == pytest.approx(o.lr * o.min_lr_ratio)
    assert eval_schedule(100, 5)[-1] == 100 and len(eval_schedule(100, 5)) == 5


def test_resume_reproduces_uninterrupted_run_exactly(corpus, cache, tmp_path):
    over = {"budget.steps": 12, "ckpt_every": 4, "log_every": 1, "model.signature": "A^2B",
            "model.p_skip": 0.5, "model.adapters": '"round"'}
    full = cfg_for(corpus, cache, tmp_path, name="full", **over)
    train(full, quiet=True)
    part = cfg_for(corpus, cache, tmp_path, name="part", **over)
    s1 = train(part, quiet=True, stop_after=5)  # "killed" after step 5 (checkpoint at 5)
    assert not s1["complete"]
    train(part, quiet=True)
    a = {r["step"]: r["loss"] for r in read_log(tmp_path / "full", "train")}
    b = {r["step"]: r["loss"] for r in read_log(tmp_path / "part", "train")}
    assert a.keys() == b.keys() == set(range(1, 13))
    assert all(a[k] == b[k] for k in a), (a, b)
    wa = load_model(tmp_path / "full").state_dict()
    wb = load_model(tmp_path / "part").state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # a complete run is not retrained
    again = train(part, quiet=True)
    assert again["steps"] == 12 and again["complete"]


def test_checkpoints_are_atomic_and_corruption_is_detected(corpus, cache, tmp_path):
    c = cfg_for(corpus, cache, tmp_path, name="ck", **{"budget.steps": 8, "ckpt_every": 4, "keep_last": 5})
    train(c, quiet=True)
    ckdir = tmp_path / "ck" / "checkpoints"
    assert sorted(p.name for p in ckdir.iterdir() if p.is_dir()) == ["step_00000004", "step_00000008"]
    # a half-written checkpoint of a killed run is invisible
    (ckdir / ".step_00000012.tmp-999").mkdir()
    (ckdir / ".step_00000012.tmp-999" / "model.safetensors").write_bytes(b"junk")
    assert latest_checkpoint(tmp_path / "ck").name == "step_00000008"
    # LATEST pointing at a missing folder falls back to the newest complete one
    (ckdir / "LATEST").write_text("step_00000099")
    assert latest_checkpoint(tmp_path / "ck").name == "step_00000008"
    # a corrupt weights file gets a clear error
    (ckdir / "step_00000008" / "model.safetensors").write_bytes(b"\x00\x01garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(ckdir / "step_00000008")


def test_mismatched_config_on_resume_is_refused(corpus, cache, tmp_path):
    train(cfg_for(corpus, cache, tmp_path, name="mm", **{"budget.steps": 4}), quiet=True)
    other = cfg_for(corpus, cache, tmp_path, name="mm", **{"budget.steps": 4, "model.d_model": 64})
    with pytest.raises(CheckpointError, match="different config"):
        train(other, quiet=True)
    train(other, quiet=True, resume=False)  # --no-resume starts over


def test_checkpoint_shape_mismatch_is_clear(corpus, cache, tmp_path):
    from rins.checkpoint import load_state_into
    from rins.model import LMConfig, RecursiveLM

    train(cfg_for(corpus, cache, tmp_path, name="sh", **{"budget.steps": 2}), quiet=True)
    w, _, _ = load_checkpoint(tmp_path / "sh")
    wrong = RecursiveLM(LMConfig(vocab_size=512, n_layers=4, d_model=64, n_heads=4, max_seq_len=32))
    with pytest.raises(CheckpointError, match="does not match"):
        load_state_into(wrong, w)


def test_nan_stops_the_run_and_keeps_last_good_checkpoint(corpus, cache, tmp_path, monkeypatch):
    c = cfg_for(corpus, cache, tmp_path, name="nan", **{"budget.steps": 10, "ckpt_every": 3})
    orig = LMTask.loss

    def bad(self, model, batch, step):
        loss = orig(self, model, batch, step)
        return loss * float("nan") if step == 6 else loss

    monkeypatch.setattr(LMTask, "loss", bad)
    with pytest.raises(NonFiniteError, match="non-finite loss at step 7"):
        train(c, quiet=True)
    assert latest_checkpoint(tmp_path / "nan").name == "step_00000006"
    w, _, meta = load_checkpoint(tmp_path / "nan")
    assert meta["step"] == 6 and all(torch.isfinite(t).all() for t in w.values())


def test_config_toml_and_overrides(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text('preset = "tiny"\nname = "x"\n[model]\nsignature = "A^3B"\n[budget]\nflops = 1e12\n')
    c = load_config(None, p, ["model.d_model=64", "optim.lr=0.01"])
    assert c.model.signature == "A^3B" and c.model.d_model == 64 and c.optim.lr == 0.01
    assert c.budget.flops == 1e12 and c.budget.steps is None
    with pytest.raises(ValueError, match="unknown config keys"):
        load_config("tiny", None, ["optim.lrr=1"])
    with pytest.raises(ValueError, match="section.key=value"):
        apply_overrides({}, ["nonsense"])
    with pytest.raises(ValueError, match="unknown preset"):
        load_config("nope")
    assert TrainConfig.from_dict(c.to_dict()) == c


def test_bad_corpus_gives_clear_cli_error(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.txt").write_text("   \n")
    rc = cli(["train", "--preset", "tiny", "--set", f'data.corpus="{empty}"', "--set",
              f'data.cache_dir="{tmp_path}/c"', "--out-dir", str(tmp_path)])
    assert rc == 2
    assert "empty" in capsys.readouterr().err


def test_cli_plan_flops_eval_generate(corpus, cache, tmp_path, capsys):
    assert cli(["plan", "A^2B", "--layers", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["layers"] == [0, 1, 0, 1, 2, 3]
    assert cli(["flops", "--preset", "tiny", "--signature", "A^2B", "--r", "1,2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["ratio_to_baseline"] == pytest.approx(1.0) and rows[1]["ratio_to_baseline"] > 1.3
    c = cfg_for(corpus, cache, tmp_path, name="cli", **{"budget.steps": 6, "model.signature": "A^2B"})
    train(c, quiet=True)
    capsys.readouterr()
    assert cli(["eval", str(tmp_path / "cli"), "--r", "1,2,3", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)["results"]
    assert [r["r"] for r in res] == [1, 2, 3] and all(r["loss"] > 0 and r["bpb"] > 0 for r in res)
    assert cli(["generate", str(tmp_path / "cli"), "--prompt", "the king", "--r", "2", "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out.startswith("the king")
    assert cli(["plan", "A^2B(", "--layers", "4"]) == 2


def test_grad_accumulation_matches_one_big_batch(corpus, cache, tmp_path):
    over = {"budget.steps": 3, "log_every": 1, "optim.grad_clip": 0.0}
    a = cfg_for(corpus, cache, tmp_path, name="acc1", **over)
    b = cfg_for(corpus, cache, tmp_path, name="acc2", **{**over, "grad_accum": 2})
    train(a, quiet=True)
    train(b, quiet=True)
    la = [r["loss"] for r in read_log(tmp_path / "acc1", "train")]
    lb = [r["loss"] for r in read_log(tmp_path / "acc2", "train")]
    assert la == pytest.approx(lb, rel=1e-4)


def test_fused_loss_switch_trains_the_same(corpus, cache, tmp_path):
    """fused_loss=true (the default) and false give the same training losses and weights."""
    over = {"budget.steps": 3, "log_every": 1, "model.signature": '"A^2B"'}
    for name, fused in (("fused", "true"), ("plain", "false")):
        train(cfg_for(corpus, cache, tmp_path, name=name, fused_loss=fused, **over), quiet=True)
    la = [r["loss"] for r in read_log(tmp_path / "fused", "train")]
    lb = [r["loss"] for r in read_log(tmp_path / "plain", "train")]
    assert len(la) == 3 and la == pytest.approx(lb, rel=1e-5)
    wa, wb = load_model(tmp_path / "fused").state_dict(), load_model(tmp_path / "plain").state_dict()
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)


def test_demo_writes_table_plot_and_summary(corpus, cache, tmp_path):
    from rins.demo import run_demo

    s = run_demo(out_dir=tmp_path / "demo", budget=2e9, preset="tiny", corpus=str(corpus),
                 overrides=[f'data.cache_dir="{cache}"', "progress=false"], procs=1)
    rows = s["rows"]
    assert [r["variant"] for r in rows][0] == "baseline AB" and len(rows) == 3
    assert all(r["flops"] <= 2e9 * 1.3 for r in rows)
    table = (tmp_path / "demo" / "table.md").read_text()
    assert "| baseline AB |" in table and "loss r=1" in table and "baseline" in table
    assert (tmp_path / "demo" / "curves.png").stat().st_size > 1000
    assert json.loads((tmp_path / "demo" / "summary.json").read_text())["depths"] == [1, 2, 3, 4]  # A^3B: r = 1 … 4


def test_demo_trains_its_runs_at_once_with_the_same_results(corpus, cache, tmp_path, capsys):
    """procs=3: the three runs train in parallel single-thread processes, print progress and end with the same
    losses as one after the other (single-threaded both ways); each run's output lands in OUT/<run>.out."""
    from rins.demo import run_demo

    ov = [f'data.cache_dir="{cache}"', "progress=false", "threads=1"]
    one = run_demo(out_dir=tmp_path / "seq", budget=2e9, preset="tiny", corpus=str(corpus), overrides=ov, procs=1)
    capsys.readouterr()
    par = run_demo(out_dir=tmp_path / "par", budget=2e9, preset="tiny", corpus=str(corpus), overrides=ov, procs=3,
                   poll_s=0.5)
    printed = capsys.readouterr().out
    assert "training 3 runs, 3 at once (1 thread each)" in printed
    assert printed.count(": done after ") == 3 and "held-out loss" in printed
    assert [r["val_loss_r"] for r in par["rows"]] == [r["val_loss_r"] for r in one["rows"]]
    assert [r["steps"] for r in par["rows"]] == [r["steps"] for r in one["rows"]]
    outs = sorted(p.name for p in (tmp_path / "par").glob("*.out"))
    assert len(outs) == 3 and all((tmp_path / "par" / o).stat().st_size > 0 for o in outs)
    assert (tmp_path / "par" / "curves.png").is_file() and (tmp_path / "par" / "table.md").is_file()
    # run again: every run is complete, nothing is trained (no new worker), the summary is the same
    again = run_demo(out_dir=tmp_path / "par", budget=2e9, preset="tiny", corpus=str(corpus), overrides=ov, procs=3)
    assert "at once" not in capsys.readouterr().out
    assert [r["val_loss"] for r in again["rows"]] == [r["val_loss"] for r in par["rows"]]


def test_demo_names_the_output_of_a_run_that_fails_in_its_worker(corpus, cache, tmp_path):
    from rins.demo import run_demo

    # both runs diverge at this rate; whichever worker fails first is named, with its own output file
    with pytest.raises(RuntimeError, match=r"demo run '(baseline AB|RINS A\^2B)' failed") as err:
        run_demo(out_dir=tmp_path / "demo", budget=2e9, preset="tiny", corpus=str(corpus), procs=2, poll_s=0.5,
                 overrides=[f'data.cache_dir="{cache}"', "progress=false", "optim.lr=1e30", "optim.warmup_frac=0"],
                 variants=[("baseline AB", {"signature": "AB"}), ("RINS A^2B", {"signature": "A^2B"})])
    msg = str(err.value)
    out = tmp_path / "demo" / ("baseline-ab.out" if "'baseline AB'" in msg else "rins-a-2b.out")
    assert f"its output is in {out}" in msg and "NonFiniteError" in msg
    assert "NonFiniteError" in out.read_text()


def test_demo_stop_signal_reaches_its_workers_once(corpus, cache, tmp_path):
    """SIGINT to the demo's own process (Ctrl-C, whose workers are in their own process group, or ``kill -INT``)
    is forwarded to its workers once: each checkpoints at the end of a step and stops, then the demo raises
    KeyboardInterrupt (the CLI's one line says how to resume)."""
    import os
    import signal
    import threading
    import time

    from rins.demo import run_demo
    from rins.runs import is_complete

    variants = [("baseline AB", {"signature": "AB"}), ("RINS A^2B", {"signature": "A^2B"})]
    dirs = [tmp_path / "demo" / n for n in ("baseline-ab", "rins-a-2b")]

    def hit_when_training() -> None:
        deadline = time.time() + 240
        while time.time() < deadline and not all(d.is_dir() and read_log(d, "train") for d in dirs):
            time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    threading.Thread(target=hit_when_training, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_demo(out_dir=tmp_path / "demo", budget=5e11, preset="tiny", corpus=str(corpus), procs=2, poll_s=0.5,
                 overrides=[f'data.cache_dir="{cache}"', "progress=false", "threads=1", "ckpt_every=100000",
                            "log_every=1"], variants=variants)
    assert signal.getsignal(signal.SIGINT) == before
    for d in dirs:
        out = (tmp_path / "demo" / f"{d.name}.out").read_text()
        assert out.count("[rins] Ctrl-C: stopping after this step and checkpointing") == 1, out  # once, not twice
        step = read_log(d, "train")[-1]["step"]
        ck = latest_checkpoint(d)
        assert ck is not None and ck.name == f"step_{step:08d}" and not is_complete(d)


def test_demo_progress_eta_uses_the_recent_rate_not_the_startup(tmp_path, monkeypatch):
    """The progress line's ETA: remaining steps at the rate since the previous line (a slow compile at the
    start does not inflate it); none until every running run has moved."""
    from types import SimpleNamespace

    from rins import demo

    def write(run: Path, step: int) -> None:
        run.mkdir(exist_ok=True)
        recs = [{"event": "start", "steps": 1000}] + [{"event": "train", "step": s} for s in range(50, step + 1, 50)]
        (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))

    runs = [("baseline AB", SimpleNamespace(name="ab", run_dir=lambda: tmp_path / "ab")),
            ("RINS A^2B", SimpleNamespace(name="a2b", run_dir=lambda: tmp_path / "a2b"))]
    write(tmp_path / "ab", 50)
    write(tmp_path / "a2b", 0)
    clock = iter([100.0, 130.0, 160.0])
    monkeypatch.setattr(demo.time, "time", lambda: next(clock))
    seen: dict = {}
    first = demo._progress(runs, 0.0, seen)
    assert first == "elapsed 1m40s: baseline AB 50/1000, RINS A^2B 0/1000 steps"  # no rate yet: no ETA
    write(tmp_path / "ab", 150)
    write(tmp_path / "a2b", 50)
    second = demo._progress(runs, 0.0, seen)  # AB: 100 steps in 30 s, 850 left; A^2B: 50 in 30 s, 950 left
    assert second == "elapsed 2m10s: baseline AB 150/1000, RINS A^2B 50/1000 steps; ETA 9m30s"


def test_demo_procs_default_all_runs_at_once_on_a_multicore_cpu_only():
    from rins.demo import demo_procs, run_demo

    assert demo_procs(3, "cpu", cores=2) == 3 and demo_procs(3, "cpu", cores=16) == 3
    assert demo_procs(3, "cpu", cores=1) == 1 and demo_procs(3, "cuda", cores=16) == 1
    with pytest.raises(ValueError, match="procs must be 1 or more"):
        run_demo(preset="tiny", procs=0)


def test_demo_is_compute_matched_when_the_preset_budget_is_in_steps(corpus, cache, tmp_path):
    """`rins demo --preset tiny` (a budget of 20 steps) gives every variant the FLOPs of 20 AB steps."""
    from rins.demo import run_demo

    s = run_demo(out_dir=tmp_path / "demo", preset="tiny", corpus=str(corpus),
                 overrides=[f'data.cache_dir="{cache}"', "progress=false"])
    cfgs = [json.loads(p.read_text()) for p in sorted((tmp_path / "demo").glob("*/config.json"))]
    assert len(cfgs) == 3
    assert len({c["budget"]["flops"] for c in cfgs}) == 1 and cfgs[0]["budget"].get("steps") is None
    ab, rins_row = s["rows"][0], s["rows"][1]
    assert rins_row["steps"] < ab["steps"] and rins_row["flops"] == pytest.approx(ab["flops"], rel=0.15)


def test_compile_without_a_cxx_compiler_trains_uncompiled_with_a_warning(corpus, cache, tmp_path, monkeypatch):
    """torch.compile on CPU needs a C++ compiler; without one the run warns and trains eager, not crashes."""
    import shutil

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    from rins.train import cxx_compiler

    assert cxx_compiler() is None
    cfg = cfg_for(corpus, cache, tmp_path, **{"budget.steps": 2, "compile": "true"})
    with pytest.warns(UserWarning, match="C\\+\\+ compiler"):
        s = train(cfg, quiet=True)
    assert s["steps"] == 2 and math.isfinite(s["val_loss"])


def test_compile_auto_compiles_where_it_pays(monkeypatch):
    """compile = "auto" (the default): on CUDA, or a CPU with a C++ compiler, for runs of 300+ steps; eager for
    short runs, on MPS and without a compiler (silently: nobody asked for it); true and false as said."""
    import warnings

    from rins import train as train_mod
    from rins.train import COMPILE_AUTO_MIN_STEPS, compile_decision

    assert TrainConfig().compile == "auto"
    cpu, cuda, mps = torch.device("cpu"), torch.device("cuda"), torch.device("mps")
    monkeypatch.setattr(train_mod, "cxx_compiler", lambda: "/usr/bin/g++")
    assert compile_decision("auto", cpu, COMPILE_AUTO_MIN_STEPS) == (True, "compile = auto")
    assert compile_decision("auto", cuda, 10_000)[0] is True
    short = compile_decision("auto", cpu, COMPILE_AUTO_MIN_STEPS - 1)
    assert short[0] is False and f"fewer than the {COMPILE_AUTO_MIN_STEPS}" in short[1]
    assert compile_decision("auto", mps, 10_000)[0] is False
    assert compile_decision(True, cpu, 1)[0] is True and compile_decision(False, cuda, 10_000)[0] is False
    monkeypatch.setattr(train_mod, "cxx_compiler", lambda: None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto without a compiler: eager, no warning
        none = compile_decision("auto", cpu, 10_000)
    assert none[0] is False and "no C++ compiler" in none[1]
    with pytest.warns(UserWarning, match="C\\+\\+ compiler"):
        assert compile_decision(True, cpu, 10_000)[0] is False
    assert compile_decision("auto", cuda, 10_000)[0] is True  # CUDA needs no C++ compiler


@pytest.mark.parametrize("text, value", [("auto", "auto"), ("yes", True), ("no", False), ("1", True)])
def test_compile_setting_parses_from_the_command_line_and_refuses_other_words(text, value):
    from rins.fields import ConfigError

    assert load_config("tiny", None, [f"compile={text}"]).compile == value
    assert TrainConfig.from_dict({"compile": value}).compile == value
    with pytest.raises(ConfigError, match="config compile='maybe' is invalid: must be true, false or 'auto'"):
        load_config("tiny", None, ["compile=maybe"])
    with pytest.raises(ConfigError, match="compile='yes' is invalid"):  # text is parsed only on a command line
        TrainConfig.from_dict({"compile": "yes"})


def test_a_compiled_run_says_so_and_what_its_first_step_cost(corpus, cache, tmp_path, monkeypatch, capsys):
    """The start lines say whether the blocks are compiled and why; a compiled run prints its first step's time
    (the compile's cost). torch.compile itself is replaced by a no-op here: inductor would take minutes."""
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *a, **k: None)
    train(cfg_for(corpus, cache, tmp_path, "c", **{"budget.steps": 2, "compile": "true"}))
    out = capsys.readouterr().out
    assert "[rins] blocks compiled (compile = true)" in out
    assert re.search(r"\[rins\] first step \d+\.\d s, compiling the blocks included", out)
    train(cfg_for(corpus, cache, tmp_path, "e", **{"budget.steps": 2}))  # the default, auto: 2 steps stay eager
    out = capsys.readouterr().out
    assert "[rins] blocks eager (compile = auto: 2 steps, fewer than the 300 that repay compiling)" in out
    assert "first step" not in out


def test_bf16_on_a_cpu_that_emulates_it_warns_with_the_fix(corpus, cache, tmp_path, monkeypatch):
    monkeypatch.setattr("rins.train.native_bf16", lambda dev: False)
    with pytest.warns(UserWarning, match=r"no native bf16 matmul.*--dtype float32"):
        train(cfg_for(corpus, cache, tmp_path, "bf", dtype="bfloat16", **{"budget.steps": 1}), quiet=True)
    monkeypatch.setattr("rins.train.native_bf16", lambda dev: True)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        train(cfg_for(corpus, cache, tmp_path, "bf2", dtype="bfloat16", **{"budget.steps": 1}), quiet=True)
