"""The trainer's tasks: a kind of model + data behind the :class:`Task` protocol, named by ``TrainConfig.task``.

``TASKS`` is a plain table from a task name to its class, or to the class's import path
(``"package.module:Class"``, imported on first use so that the LM never loads the vision stack). To add a
task, write a class that follows :class:`Task` and put it into the table before its config is loaded::

    from rins.tasks import TASKS
    TASKS["my-task"] = MyTask          # or "my_package.my_module:MyTask"
    rins.train(rins.load_config(toml_path="my.toml"))   # with task = "my-task"

With a ``config_class`` (and ``model_config_from``, see :class:`Task`) its ``[model]`` table is typed on load;
without, ``TrainConfig.model`` stays the table's dict.

The modules: :mod:`rins.tasks.base` (the protocol and shared helpers), :mod:`rins.tasks.lm` (``"lm"``),
:mod:`rins.tasks.vision` (``"siglip"``, ``"vit"``). Nothing here imports the trainer.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from .base import Task, autocast, default_depths, depth_label

__all__ = ["TASKS", "Task", "autocast", "default_depths", "depth_label", "get_task", "task_class"]

TASKS: dict[str, type | str] = {
    "lm": "rins.tasks.lm:LMTask",
    "siglip": "rins.tasks.vision:SigLIPTask",
    "vit": "rins.tasks.vision:ViTClassifierTask",
}


def task_class(name: str) -> type:
    """The class registered as ``name`` in :data:`TASKS` (an import path is imported now)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))} (a new task goes into "
                         "rins.tasks.TASKS)")
    cls = TASKS[name]
    if isinstance(cls, str):
        module, _, attr = cls.partition(":")
        cls = getattr(importlib.import_module(module), attr)
    return cls


def get_task(cfg: Any, run_dir: Path | None) -> Task:
    """The task of ``cfg.task`` built for ``cfg`` (a :class:`rins.config.TrainConfig`) and ``run_dir``."""
    return task_class(cfg.task)(cfg, run_dir)
