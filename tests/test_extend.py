"""Extending a finished run to a larger budget equals training with that budget from the start (constant and
WSD schedules); cosine and smaller budgets are refused with the reason."""

import json
import shutil

import pytest
import torch

from rins.checkpoint import CheckpointError, load_model
from rins.cli import main as cli
from rins.config import load_config
from rins.runs import read_log
from rins.train import ExtendError, train


def cfg_for(corpus, cache, tmp_path, name, steps, schedule, *extra):
    return load_config("tiny", None, [f'data.corpus="{corpus}"', f'data.cache_dir="{cache}"', f'out_dir="{tmp_path}"',
                                      f'name="{name}"', "progress=false", f"budget.steps={steps}", "log_every=1",
                                      f"optim.schedule={schedule}", "optim.warmup_frac=0", "ckpt_every=100",
                                      "model.signature=A^2B", *extra])


def same_run(tmp_path, a: str, b: str) -> None:
    la = {r["step"]: r["loss"] for r in read_log(tmp_path / a, "train")}
    lb = {r["step"]: r["loss"] for r in read_log(tmp_path / b, "train")}
    assert la == lb
    wa, wb = load_model(tmp_path / a).state_dict(), load_model(tmp_path / b).state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("schedule", ["wsd", "constant"])
def test_extended_run_equals_the_longer_run(corpus, cache, tmp_path, schedule):
    train(cfg_for(corpus, cache, tmp_path, "long", 20, schedule), quiet=True)
    short = cfg_for(corpus, cache, tmp_path, "ext", 10, schedule)
    train(short, quiet=True)
    longer = cfg_for(corpus, cache, tmp_path, "ext", 20, schedule)
    with pytest.raises(CheckpointError, match="--extend"):
        train(longer, quiet=True)  # without --extend a larger budget is another config
    s = train(longer, quiet=True, extend=True)
    assert s["complete"] and s["steps"] == 20
    same_run(tmp_path, "long", "ext")  # wsd: resumed where the decay began (step 8), the decay re-run at 16..20
    assert json.loads((tmp_path / "ext" / "summary_step10.json").read_text())["steps"] == 10
    assert json.loads((tmp_path / "ext" / "config.json").read_text())["budget"]["steps"] == 20


def test_extension_through_the_cli_and_refusals(corpus, cache, tmp_path, capsys):
    base = ["train", "--preset", "tiny", "--data.corpus", str(corpus), "--data.cache_dir", str(cache), "--out-dir",
            str(tmp_path), "--progress", "false", "--optim.warmup_frac", "0"]
    assert cli([*base, "--name", "cos", "--budget.steps", "4"]) == 0
    assert cli([*base, "--name", "cos", "--budget.steps", "8", "--extend"]) == 2
    err = capsys.readouterr().err
    assert "cosine schedule cannot be extended" in err and "total length" in err
    assert cli([*base, "--name", "cos", "--budget.steps", "8"]) == 2  # the resume refusal must not send one to
    err = capsys.readouterr().err                                     # --extend, which refuses cosine runs
    assert "cosine schedule cannot be extended" in err and "train the larger budget as a new run" in err
    assert "rins train --extend," not in err
    assert cli([*base, "--name", "w", "--budget.steps", "6", "--optim.schedule", "wsd"]) == 0
    assert cli([*base, "--name", "w", "--budget.steps", "5", "--optim.schedule", "wsd", "--extend"]) == 2
    assert "needs a larger budget" in capsys.readouterr().err
    # another change besides the budget is still refused
    assert cli([*base, "--name", "w", "--budget.steps", "9", "--optim.schedule", "wsd", "--optim.lr", "1e-3",
                "--extend"]) == 2
    assert "optim.lr" in capsys.readouterr().err
    assert cli([*base, "--name", "w", "--budget.steps", "9", "--optim.schedule", "wsd", "--extend"]) == 0
    assert json.loads((tmp_path / "w" / "summary.json").read_text())["steps"] == 9
    train(cfg_for(corpus, cache, tmp_path, "nk", 6, "wsd", "keep_last=1"), quiet=True)
    shutil.rmtree(tmp_path / "nk" / "pre_decay")
    with pytest.raises(ExtendError, match="no checkpoint"):  # nothing kept from before the decay
        train(cfg_for(corpus, cache, tmp_path, "nk", 12, "wsd", "keep_last=1"), quiet=True, extend=True)
