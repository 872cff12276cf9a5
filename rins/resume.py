"""Resuming a run: from its newest checkpoint, extended to a larger budget, or initialised from another run.

The trainer (:mod:`rins.train`) keeps the loop; this module decides what a run starts from and refuses what it must
not: a checkpoint of another config (:func:`resume_fingerprint`, :data:`RESUME_MAY_CHANGE`, :func:`check_same_config`),
of another architecture (:func:`rins.checkpoint.check_architecture`), or a budget extension that cannot be exact
(:class:`ExtendError`). Each checkpoint is read once (:func:`resume_point`, :func:`read_init`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from .checkpoint import (
    CHECKPOINTS,
    PRE_DECAY,
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    mark_latest,
)
from .config import TrainConfig, load_run_config
from .runs import archive_run_summary, is_run_dir, tokenizer_file
from .schedule import decay_start

__all__ = ["RESUME_MAY_CHANGE", "Checkpointed", "ExtendError", "check_same_config", "init_tokenizer", "read_init",
           "resume_fingerprint", "resume_point"]


class ExtendError(ValueError):
    """A run cannot be extended to the larger budget asked for (cosine schedule, no usable checkpoint...)."""


@dataclass
class Checkpointed:
    """A checkpoint as read once: where it is, its weights, optimizer tensors (empty for ``--init``) and meta."""

    path: Path
    weights: dict[str, torch.Tensor]
    opt_tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]

    @property
    def architecture(self) -> dict[str, Any] | None:
        """The model config the checkpoint was written with (``meta.json``'s ``model_config``), if recorded."""
        return self.meta.get("model_config")


# Config fields a resumed run may change: where it writes, how often it logs, evaluates and checkpoints, and
# which hardware runs it (device and thread count may change the last bits of the arithmetic). Every other
# field (model, data, optim, budget, batch, seed, dtype, fused_loss, compile, ...) must match the checkpoint.
RESUME_MAY_CHANGE = ("name", "out_dir", "device", "threads", "progress", "log_every", "ckpt_every", "keep_last",
                     "n_evals", "eval_batches", "eval_depths", "eval_all_depths", "data.cache_dir", "loggers",
                     "compile")  # compiled blocks compute the same model (runs made before "auto" resume under it)


def resume_fingerprint(cfg: TrainConfig) -> dict[str, Any]:
    """The config fields a resumed run must share with the run that wrote its checkpoint, flattened
    (``optim.lr``, ``model``, ...): every field but :data:`RESUME_MAY_CHANGE`."""
    flat: dict[str, Any] = {}
    for k, v in cfg.to_dict().items():
        if isinstance(v, dict) and k != "model":
            flat.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            flat[k] = v
    return {k: v for k, v in flat.items() if k not in RESUME_MAY_CHANGE}


def read_init(init_from: str | Path, verify: bool = True) -> Checkpointed:
    """The checkpoint (or run directory's newest one) that ``--init`` starts a run from, read once."""
    weights, _, meta = load_checkpoint(init_from, verify=verify)
    return Checkpointed(Path(init_from), weights, {}, meta)


def init_tokenizer(init_from: str | Path) -> Path | None:
    """The tokenizer of the run ``--init`` starts from, if that is a run directory that keeps one."""
    tok = tokenizer_file(init_from)
    return tok if tok.is_file() else None


def resume_point(run_dir: Path, cfg: TrainConfig, *, extend: bool, verify: bool, distributed: bool,
                 steps_of: Callable[[TrainConfig], int], console: Callable[..., None]) -> Checkpointed | None:
    """The newest checkpoint of ``run_dir``, read once, that a run of ``cfg`` resumes from; None for a fresh start.

    Its run's config must match ``cfg`` (:func:`check_same_config`). With ``extend`` and a larger budget the run
    continues from its last checkpoint before the old schedule's decay (:class:`ExtendError` when that cannot be
    exact); ``steps_of`` gives the steps a config's budget buys."""
    ck = latest_checkpoint(run_dir)
    if ck is None:
        return None
    old_cfg = load_run_config(run_dir) if is_run_dir(run_dir) else None
    if extend and old_cfg is not None and old_cfg.budget != cfg.budget:
        if distributed:
            raise ExtendError("extend a run on one process (rins train --extend), then resume it with --dist")
        if resume_fingerprint(replace(old_cfg, budget=cfg.budget)) == resume_fingerprint(cfg):
            ck = _extension_checkpoint(cfg, old_cfg, run_dir, steps_of, console)
            old_cfg = replace(old_cfg, budget=cfg.budget)
        # else: more than the budget differs, which check_same_config reports
    weights, opt_tensors, meta = load_checkpoint(ck, verify=verify)
    if old_cfg is not None:
        check_same_config(old_cfg, cfg, run_dir, extend)
    return Checkpointed(ck, weights, opt_tensors, meta)


def check_same_config(old_cfg: TrainConfig, cfg: TrainConfig, run_dir: Path, extend: bool) -> None:
    """Refuse to resume ``run_dir`` (trained with ``old_cfg``) as ``cfg`` when they differ in more than
    :data:`RESUME_MAY_CHANGE` (and, with ``extend``, the budget); the error names the fields and the way out."""
    old_fp, new_fp = resume_fingerprint(old_cfg), resume_fingerprint(cfg)
    if old_fp == new_fp:
        return
    diff = [k for k in sorted(set(old_fp) | set(new_fp), key=str) if old_fp.get(k) != new_fp.get(k)]
    shown = "; ".join(f"{k}: {old_fp.get(k)!r} -> {new_fp.get(k)!r}" for k in diff[:4])
    if all(k.startswith("budget.") for k in diff) and not extend:
        if old_cfg.optim.schedule == "cosine":  # --extend refuses cosine runs: do not send the user there
            shown += (" (a cosine schedule cannot be extended, its every learning rate depends on the total length: "
                      "train the larger budget as a new run, e.g. --name NEW; wsd or constant runs can be extended "
                      "with --extend)")
        else:
            shown += " (to continue it to a larger budget: rins train --extend, train(..., extend=True))"
    raise CheckpointError(
        f"run directory {run_dir} holds a run with a different config (differs in {diff}: {shown}); "
        f"only {', '.join(RESUME_MAY_CHANGE)} may change on resume (and budget.* with --extend); use "
        "another name/out_dir, or pass --no-resume to start over"
    )


def _extension_checkpoint(cfg: TrainConfig, old: TrainConfig, run_dir: Path, steps_of: Callable[[TrainConfig], int],
                          console: Callable[..., None]) -> Path:
    """The checkpoint from which ``old``'s run continues as the run of ``cfg`` (a larger budget); later
    checkpoints (the old decay) are deleted, the old summary kept as ``summary_step{N}.json``."""
    o = cfg.optim
    if o.schedule == "cosine":
        raise ExtendError("a cosine schedule cannot be extended: its learning rate at every step depends on the "
                          "run's total length, so the steps already taken are not those of the longer run; train "
                          "the longer run from scratch (optim.schedule=wsd or constant runs can be extended)")
    old_total, new_total = steps_of(old), steps_of(cfg)
    if new_total <= old_total:
        raise ExtendError(f"--extend needs a larger budget: the new one buys {new_total} steps, the run has "
                          f"{old_total}")
    # the last step count up to which both plans share every learning rate
    anchor = decay_start(old_total, o) if o.schedule == "wsd" else old_total
    warm = max(1, int(round(o.warmup_frac * new_total))) if o.warmup_frac > 0 else 0
    found = [(int(p.name.split("_")[1]), p) for p in list_checkpoints(run_dir) + list_checkpoints(run_dir / PRE_DECAY)]
    usable = sorted((s, p) for s, p in found if warm <= s <= anchor and (p / "meta.json").is_file())
    if not usable:
        raise ExtendError(f"{run_dir} keeps no checkpoint between step {warm} (the longer run's warmup) and step "
                          f"{anchor} (where the learning rate began to decay), so it cannot be extended exactly; "
                          "train the longer run from scratch")
    step, src = usable[-1]
    ckdir = run_dir / CHECKPOINTS
    for s, p in found:
        if s > step and p.parent == ckdir:
            shutil.rmtree(p)  # the old run's decay: the longer run re-runs it at its own end
    dst = ckdir / src.name
    if not dst.is_dir():
        shutil.copytree(src, dst)
    mark_latest(dst)
    archive_run_summary(run_dir, old_total)
    console(f"[rins] extending {old_total} to {new_total} steps from the checkpoint at step {step}")
    return dst
