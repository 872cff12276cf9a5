"""What the trainer needs from a kind of model + data (the :class:`Task` protocol), and helpers every task shares."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from ..distributed import unwrap
from ..plan import default_depths  # re-exported: rins.tasks.default_depths

__all__ = ["StepAccounting", "Task", "autocast", "default_depths", "depth_label"]


class Task(Protocol):
    """A kind of model + data the trainer can run: built from ``(cfg, run_dir)`` (a :class:`rins.config.TrainConfig`
    and the run directory, or None outside a run).

    A task may also define ``realised_flops(model, step, batch_size)`` (the FLOPs executed at ``step``, e.g. at
    the drawn depth of stochastic RINS; without it the trainer counts the expected ``flops_per_step``; the
    built-in tasks take both, and ``units_per_step``, from :class:`StepAccounting`), and a
    typed model config: ``config_class`` (the dataclass ``TrainConfig.model`` holds) with the classmethod
    ``model_config_from(fields, cfg)`` (that dataclass from the fields a ``[model]`` table names, with the
    defaults the task derives from ``cfg``'s data and seed); without them ``TrainConfig.model`` stays a dict.
    """

    name: str

    def __init__(self, cfg: Any, run_dir: Path | None) -> None: ...
    def prepare(self) -> None:
        """Load (download, tokenise, cache) the data; called once per process before :meth:`build_model`."""
        ...
    def build_model(self) -> nn.Module: ...
    def train_batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> Any:
        """This rank's share (batch_size // world_size examples) of the global batch of ``step``."""
        ...
    def loss(self, model: nn.Module, batch: Any, step: int) -> torch.Tensor: ...
    def flops_per_step(self, model: nn.Module, batch_size: int) -> float:
        """Expected training FLOPs of one optimizer step (what a FLOPs budget is divided by)."""
        # per unit × batch × units per example, in this order: float products are not associative bit for bit, and
        # summaries and step counts hold these numbers
        ...
    def units_per_step(self, batch_size: int) -> int:
        """Tokens (LM) or examples (vision) per optimizer step (what a token budget is divided by)."""
        ...
    def eval_depths(self, model: nn.Module) -> list[int | None]: ...
    def evaluate(self, model: nn.Module, depths: list[int | None]) -> dict[str, Any]:
        """``val_loss`` (at the trained depth), ``val_loss_r`` ({depth: loss}) and task-specific metrics."""
        ...


class StepAccounting:
    """What the trainer counts per optimizer step, the same way for every task: units (tokens or examples) and
    training FLOPs (:mod:`rins.flops`), from two hooks the task defines — ``units_per_example()`` (tokens per
    sequence, or 1) and ``unit_training_flops(model, batch_size, step)`` (the unwrapped model's training FLOPs
    per unit: at the expected depth for ``step=None``, else at the depth drawn at ``step``)."""

    def units_per_example(self) -> int:
        raise NotImplementedError

    def unit_training_flops(self, model: nn.Module, batch_size: int, step: int | None = None) -> float:
        raise NotImplementedError

    def units_per_step(self, batch_size: int) -> int:
        """Tokens (LM) or examples (vision) per optimizer step (what a token budget is divided by)."""
        return batch_size * self.units_per_example()

    def flops_per_step(self, model: nn.Module, batch_size: int) -> float:
        """Expected training FLOPs of one optimizer step (what a FLOPs budget is divided by)."""
        # per unit × batch × units per example, in this order: float products are not associative bit for bit, and
        # summaries and step counts hold these numbers
        return self.unit_training_flops(unwrap(model), batch_size) * batch_size * self.units_per_example()

    def train_units(self) -> int | None:
        """Units (tokens or examples) in the training split, once :meth:`prepare` has run (None before): a run
        reading ``tokens`` of them makes ``tokens / train_units()`` passes over it."""
        return None

    def data_identity(self) -> dict[str, Any] | None:
        """What names the training data's content (corpus, tokenizer settings, source versions), once
        :meth:`prepare` has run: recorded in the run's summary, so a run resumed on another machine, or two runs
        compared across machines, can be checked to have read the same data. None where the task cannot say."""
        return None

    def realised_flops(self, model: nn.Module, step: int, batch_size: int) -> float:
        """Training FLOPs executed at ``step`` (at the drawn depth under stochastic RINS)."""
        return self.unit_training_flops(unwrap(model), batch_size, step) * batch_size * self.units_per_example()


def depth_label(r: int | None) -> str:
    """The key of depth ``r`` in a task's per-depth results ("default": the trained depth)."""
    return "default" if r is None else str(r)


def autocast(cfg: Any, device: torch.device):
    """The forward's autocast context for ``cfg.dtype`` ("float32": none, "bfloat16": bf16 autocast)."""
    if cfg.dtype == "float32":
        return contextlib.nullcontext()
    if cfg.dtype != "bfloat16":
        raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {cfg.dtype!r}")
    return torch.autocast(device.type, dtype=torch.bfloat16)
