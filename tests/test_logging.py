"""Loggers (JSONL + TensorBoard + W&B offline behind one interface) and the console output of a run."""

import re
import sys

import pytest

from rins.config import load_config
from rins.fields import ConfigError
from rins.loggers import parse_loggers, scalars
from rins.runs import read_log
from rins.train import format_eval, train


def cfg_for(corpus, cache, tmp_path, name="r", *extra: str):
    return load_config("tiny", None, [f'data.corpus="{corpus}"', f'data.cache_dir="{cache}"', f'out_dir="{tmp_path}"',
                                      f'name="{name}"', "progress=false", "model.signature=A^2B", "log_every=2",
                                      *extra])


def test_tensorboard_event_files_are_written_and_read_back(corpus, cache, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = cfg_for(corpus, cache, tmp_path, "tb", "budget.steps=6", "loggers=tensorboard", "ckpt_every=3")
    train(cfg, quiet=True, stop_after=4)  # interrupted after step 4 (checkpoint at 3): resumed below
    train(cfg, quiet=True)
    acc = EventAccumulator(str(tmp_path / "tb" / "tb")).Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/grad_norm", "eval/val_loss", "eval/val_loss_r1",
            "eval/val_loss_r3", "train/tokens_per_s", "train/mfu", "train/elapsed_s", "train/eta_s"} <= tags
    logged = {r["step"]: r["loss"] for r in read_log(tmp_path / "tb", "train")}
    events = {e.step: e.value for e in acc.Scalars("train/loss")}
    # one value per step (the resumed steps replaced the interrupted process's), equal to log.jsonl's (float32)
    assert sorted(events) == sorted(logged) == [1, 2, 4, 6]
    assert all(events[s] == pytest.approx(logged[s], rel=1e-6) for s in logged)
    final = read_log(tmp_path / "tb", "eval")[-1]
    assert acc.Scalars("eval/val_loss_r3")[-1].value == pytest.approx(final["val_loss_r"]["3"], rel=1e-6)


def test_wandb_offline_run_is_written(corpus, cache, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    for k in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    cfg = cfg_for(corpus, cache, tmp_path, "wb", "budget.steps=3", "loggers=wandb")
    train(cfg, quiet=True)
    runs = list((tmp_path / "wb" / "wandb").glob("offline-run-*/run-*.wandb"))
    run_id = (tmp_path / "wb" / "wandb_id.txt").read_text().strip()
    assert len(runs) == 1 and runs[0].name == f"run-{run_id}.wandb" and runs[0].stat().st_size > 0


def test_logger_names_are_checked():
    assert parse_loggers("jsonl, TensorBoard,wandb,tensorboard") == ["tensorboard", "wandb"]
    with pytest.raises(ConfigError, match="loggers='tensorbord'.*jsonl, tensorboard, wandb"):
        load_config("tiny", None, ["loggers=tensorbord"])
    rec = {"event": "eval", "step": 3, "val_loss": 2.5, "val_loss_r": {"1": 3.0, "2": float("nan")}, "x": True}
    assert scalars(rec) == {"eval/val_loss": 2.5, "eval/val_loss_r1": 3.0}


def test_eval_lines_are_formatted_and_shown_with_the_progress_bar(corpus, cache, tmp_path, capsys, monkeypatch):
    res = {"val_loss": 5.217123, "val_loss_r": {"1": 5.3, "2": 5.217123, "3": 5.21}, "val_bpb": 1.5}
    line = format_eval(7, 20, res, r=2)
    assert line == "[rins] eval step 7/20: val_loss (r=2) 5.2171 (r=1 5.3000, r=2 5.2171, r=3 5.2100) bpb 1.5000"
    train(cfg_for(corpus, cache, tmp_path, "plain", "budget.steps=4", "n_evals=2"))
    out = capsys.readouterr().out
    assert "[rins] eval step 1/4: val_loss (r=2) " in out
    assert "[rins] eval step 4/4: val_loss (r=2) " in out and " (r=1 " in out and "r=3 " in out
    assert not [x for x in out.splitlines() if "eval step" in x and "e-" in x]  # no raw floats
    # on a terminal the bar replaces the step lines, and the eval lines are printed above it
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    train(cfg_for(corpus, cache, tmp_path, "bar", "budget.steps=4", "n_evals=2", "progress=true"))
    cap = capsys.readouterr()
    assert "[rins] step " not in cap.out
    assert "[rins] eval step 1/4: val_loss (r=2) " in cap.err and "[rins] eval step 4/4" in cap.err


def test_speed_mfu_elapsed_and_eta_in_the_log_and_the_plain_lines(corpus, cache, tmp_path, capsys, monkeypatch):
    """Off a terminal every log line says tokens/s, MFU, elapsed and ETA; log.jsonl has them as numbers; the run
    leaves no lock file behind."""
    monkeypatch.setenv("RINS_PEAK_FLOPS", "1e9")  # a configured peak: MFU = FLOP/s / 1e9
    cfg = cfg_for(corpus, cache, tmp_path, "speed", "budget.steps=4", "log_every=1")
    train(cfg)
    out = capsys.readouterr().out
    assert "MFU is measured against 1e+09 FLOP/s (configured, RINS_PEAK_FLOPS)" in out
    lines = [x for x in out.splitlines() if x.startswith("[rins] step ")]
    assert len(lines) == 4 and all(re.search(r"[\d,]+ tok/s, MFU [\d.]+%, elapsed \d+:\d\d, ETA \d+:\d\d$", x)
                                   for x in lines), lines
    recs = read_log(tmp_path / "speed", "train")
    for r in recs:
        assert r["tokens_per_s"] == r["units_per_s"] > 0 and r["elapsed_s"] > 0 and r["eta_s"] >= 0
        assert r["mfu"] == pytest.approx(r["flops_per_s"] / 1e9)
    assert [r["elapsed_s"] for r in recs] == sorted(r["elapsed_s"] for r in recs) and recs[-1]["eta_s"] == 0
    assert {"train/tokens_per_s", "train/mfu", "train/elapsed_s", "train/eta_s"} <= set(scalars(recs[0]))
    assert not (tmp_path / "speed.lock").exists()
    monkeypatch.setenv("RINS_PEAK_FLOPS", "fast")
    with pytest.raises(ValueError, match="RINS_PEAK_FLOPS='fast' is not a number"):
        train(cfg_for(corpus, cache, tmp_path, "bad", "budget.steps=1"), quiet=True)


def test_ctrl_c_checkpoints_and_says_how_to_resume(corpus, cache, tmp_path, capsys, monkeypatch):
    """The first Ctrl-C ends the step, checkpoints and ends with one line naming the resume command (no
    traceback); that command resumes from there."""
    import os
    import signal

    import rins.train as T
    from rins.cli import main as cli

    real = T._optimise

    def optimise(run):
        out = real(run)
        if run.step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C in the terminal
        return out

    monkeypatch.setattr(T, "_optimise", optimise)
    argv = ["train", "--preset", "tiny", "--data.corpus", str(corpus), "--data.cache_dir", str(cache), "--out-dir",
            str(tmp_path), "--name", "cc", "--budget.steps", "6", "--progress", "false"]
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN under nohup / a background job
    assert cli(argv) == 130
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("interrupted")]
    assert "Traceback" not in err and len(lines) == 1
    assert lines[0] == (f"interrupted: the run was checkpointed at step 2/6 in {tmp_path / 'cc'}; resume it with: "
                        f"rins {' '.join(argv)}")
    assert signal.getsignal(signal.SIGINT) == before  # the caller's handler restored
    assert not (tmp_path / "cc.lock").exists()
    monkeypatch.setattr(T, "_optimise", real)
    assert cli(argv) == 0
    assert "resuming at step 2" in capsys.readouterr().out


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_stop_signal_delivered_twice_checkpoints_at_the_step_end(sig, corpus, cache, tmp_path, capsys,
                                                                   monkeypatch):
    """SIGTERM (a scheduler's scancel, docker stop, a plain kill) ends the step and checkpoints there like Ctrl-C.
    A signal delivered twice at once (a terminal's Ctrl-C reaches the whole process group and torchrun forwards
    it too; scancel and torchrun both send SIGTERM) is one request, not "stop at once"."""
    import os
    import signal

    import rins.train as T
    from rins.checkpoint import latest_checkpoint
    from rins.cli import main as cli

    real = T._optimise
    signum = getattr(signal, sig)

    def optimise(run):
        out = real(run)
        if run.step == 3:
            os.kill(os.getpid(), signum)
            os.kill(os.getpid(), signum)
        return out

    monkeypatch.setattr(T, "_optimise", optimise)
    argv = ["train", "--preset", "tiny", "--data.corpus", str(corpus), "--data.cache_dir", str(cache), "--out-dir",
            str(tmp_path), "--name", "term", "--budget.steps", "6", "--progress", "false", "--ckpt_every", "100"]
    before = signal.getsignal(signum)
    assert cli(argv) == 130
    err = capsys.readouterr().err
    assert err.count("stopping after this step and checkpointing") == 1
    assert f"[rins] {'Ctrl-C' if sig == 'SIGINT' else sig}: stopping after this step" in err
    assert f"interrupted: the run was checkpointed at step 3/6 in {tmp_path / 'term'}" in err
    assert latest_checkpoint(tmp_path / "term").name == "step_00000003"
    assert signal.getsignal(signum) == before


def test_a_second_ctrl_c_stops_at_once(corpus, cache, tmp_path, capsys, monkeypatch):
    """A second Ctrl-C (after T._StopOnInterrupt.AGAIN_AFTER_S, here 0) stops inside the step: no step-end
    checkpoint, the last periodic one is kept."""
    import os
    import signal

    import rins.train as T
    from rins.checkpoint import latest_checkpoint
    from rins.cli import main as cli

    real = T._optimise

    def optimise(run):
        out = real(run)
        if run.step == 3:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(T, "_optimise", optimise)
    monkeypatch.setattr(T._StopOnInterrupt, "AGAIN_AFTER_S", 0.0)
    argv = ["train", "--preset", "tiny", "--data.corpus", str(corpus), "--data.cache_dir", str(cache), "--out-dir",
            str(tmp_path), "--name", "twice", "--budget.steps", "6", "--progress", "false", "--ckpt_every", "2"]
    assert cli(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted: the run keeps its last checkpoint, if any; resume with: rins train" in err
    assert latest_checkpoint(tmp_path / "twice").name == "step_00000002"
