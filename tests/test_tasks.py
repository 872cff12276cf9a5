"""The task table: plain names → classes, no registration on import, a clear error for an unknown name."""

import subprocess
import sys
from types import SimpleNamespace

import pytest

from rins.config import load_config
from rins.tasks import TASKS, get_task, task_class


def test_table_names_the_three_tasks():
    assert set(TASKS) == {"lm", "siglip", "vit"}
    assert task_class("lm").__name__ == "LMTask" and task_class("lm").name == "lm"
    assert task_class("siglip").name == "siglip" and task_class("vit").name == "vit"


def test_unknown_task_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown task 'nope'; known tasks: lm, siglip, vit"):
        get_task(SimpleNamespace(task="nope"), None)


def test_a_user_task_goes_into_the_table(monkeypatch):
    class Echo:
        name = "echo"

        def __init__(self, cfg, run_dir):
            self.cfg, self.run_dir = cfg, run_dir

    monkeypatch.setitem(TASKS, "echo", Echo)
    t = get_task(SimpleNamespace(task="echo"), None)
    assert isinstance(t, Echo)
    cfg = load_config(None, None, ["task=echo", "model.width=3"])  # no config_class: the table stays a dict
    assert cfg.model == {"width": 3} and isinstance(get_task(cfg, None), Echo)
    monkeypatch.setitem(TASKS, "echo2", "rins.tasks.lm:LMTask")  # an import path works too
    assert task_class("echo2").__name__ == "LMTask"


def test_importing_modules_registers_nothing():
    """Neither the trainer nor the LM task loads the vision stack; the table is complete before any import."""
    code = ("import sys, rins.train, rins.tasks\n"
            "assert 'rins.tasks.vision' not in sys.modules and 'rins.siglip' not in sys.modules\n"
            "before = dict(rins.tasks.TASKS)\n"
            "import rins.tasks.vision\n"
            "assert rins.tasks.TASKS == before and not hasattr(rins.train, 'register_task')\n"
            "print('ok')")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]


def _count_builds(monkeypatch):
    """Counters of LMConfig constructions and signature compilations (issue 26: each happens once a build)."""
    import rins.model as M

    counts = {"config": 0, "compile": 0}
    post, compile_plan = M.LMConfig.__post_init__, M.compile_plan

    def counted_post(self):
        counts["config"] += 1
        post(self)

    def counted_compile(*a, **k):
        counts["compile"] += 1
        return compile_plan(*a, **k)

    monkeypatch.setattr(M.LMConfig, "__post_init__", counted_post)
    monkeypatch.setattr(M, "compile_plan", counted_compile)
    return counts


@pytest.mark.parametrize("overrides", [["model.signature=A^2B"], ["model.signature=A^3B", "model.p_skip=0.5",
                                                                  "model.adapters=round"]])
def test_the_model_config_is_built_and_its_plan_compiled_once(monkeypatch, overrides):
    counts = _count_builds(monkeypatch)
    cfg = load_config("tiny", overrides=overrides)
    task = get_task(cfg, None)
    model = task.build_model()
    assert counts == {"config": 1, "compile": 1}  # (other depths compile their own plans when asked for)
    assert model.config is cfg.model  # the typed config loading made, used as it is


def test_a_vocabulary_the_data_changes_builds_the_config_again(monkeypatch):
    cfg = load_config("tiny", overrides=["model.signature=A^2B"])
    task = get_task(cfg, None)
    task.bundle = SimpleNamespace(vocab_size=cfg.data.vocab_size - 7)  # the tokenizer came out smaller
    counts = _count_builds(monkeypatch)
    model = task.build_model()
    assert model.config.vocab_size == cfg.data.vocab_size - 7 and counts == {"config": 1, "compile": 1}
    named = load_config("tiny", overrides=["model.signature=A^2B", f"model.vocab_size={cfg.data.vocab_size}"])
    task = get_task(named, None)
    task.bundle = SimpleNamespace(vocab_size=named.data.vocab_size + 1)  # more tokens than the model can embed
    with pytest.raises(ValueError, match="smaller than the tokenizer's"):
        task.build_model()


# FLOPs per step of every task, pinned to the values before issue 26 gave them one owner
# (rins.tasks.base.StepAccounting): bit for bit, since summaries and step counts are computed from them.
# (preset, overrides, batch size): (flops_per_step, realised_flops at steps 0, 1, 2), as float.hex
PINNED_STEP_FLOPS = {
    ("cpu-small", ("model.signature=A^3B", "model.p_skip=0.5")):
        ("0x1.e0c0000000002p+37", "0x1.e0c0000000000p+37", "0x1.3080000000000p+38", "0x1.6080000000000p+37"),
    ("cpu-small", ("model.signature=A^3B", "model.p_skip=0.5", "model.per_sequence_depth=true",
                   "model.adapters=round")):
        ("0x1.34579ed1b4c00p+38", "0x1.3500000000000p+38", "0x1.3500000000000p+38", "0x1.3500000000000p+38"),
    ("siglip-cpu", ("model.image.signature=A^3B", "model.image.p_skip=0.5", "model.text.signature=A^2B",
                    "model.text.p_skip=0.3", "model.text.per_sequence_depth=true")):
        ("0x1.15c9800000000p+32", "0x1.15c9800000000p+32", "0x1.2b29800000000p+32", "0x1.0069800000000p+32"),
    ("vit-cpu", ("model.signature=A^3B", "model.p_skip=0.5", "model.per_sequence_depth=true", "batch_size=5")):
        ("0x1.9665300000000p+26", "0x1.afdc900000000p+26", "0x1.afdc900000000p+26", "0x1.44fc900000000p+26"),
}


@pytest.mark.parametrize("preset,overrides", list(PINNED_STEP_FLOPS), ids=lambda v: v if isinstance(v, str) else "")
def test_step_flops_are_unchanged(preset, overrides):
    import torch

    cfg = load_config(preset, None, list(overrides))
    task = get_task(cfg, None)
    with torch.device("meta"):
        model = task.build_model()
    got = (task.flops_per_step(model, cfg.batch_size), *(task.realised_flops(model, s, cfg.batch_size)
                                                        for s in range(3)))
    assert [x.hex() for x in got] == list(PINNED_STEP_FLOPS[preset, overrides])
