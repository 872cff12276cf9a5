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
