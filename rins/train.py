"""The compute-matched trainer: one loop over a *task* (LM, SigLIP, ViT classifier).

The budget in FLOPs becomes a number of steps through the model's exact per-executed-layer count
(expected cost for stochastic depth); the schedule is laid out over those steps. Runs log JSONL,
checkpoint atomically, resume exactly, and stop on NaN/inf keeping the last good checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import sys
import time
import types
import warnings
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import (
    CheckpointError,
    atomic_write_text,
    check_rng_state,
    clean_stale_temp,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_state_into,
    restore_optimizer,
    save_checkpoint,
)
from .config import TrainConfig
from .loggers import RunLogger, parse_loggers
from .model import LMConfig, RecursiveLM, StackConfig, sample_depth

__all__ = ["BudgetError", "NonFiniteError", "RunLockedError", "ExtendError", "Task", "LMTask", "TASKS",
           "register_task", "train", "plan_steps",
           "lr_at", "resolve_device", "eval_schedule", "format_eval", "RESUME_MAY_CHANGE"]


class BudgetError(ValueError):
    """The budget cannot buy a single optimizer step."""


class RunLockedError(RuntimeError):
    """Another live process is training in this run directory (``RUN_DIR.lock`` is held)."""


class ExtendError(ValueError):
    """A run cannot be extended to the larger budget asked for (cosine schedule, no usable checkpoint...)."""


class NonFiniteError(RuntimeError):
    """The loss, gradient, weights or validation loss became NaN/inf; the run stopped and kept its last good
    checkpoint (weights are checked after every optimizer step, so no checkpoint holds non-finite values)."""


class Task(Protocol):
    """What the trainer needs from a kind of model + data."""

    name: str

    def prepare(self) -> None: ...
    def build_model(self) -> nn.Module: ...
    def train_batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> Any:
        """This rank's share (batch_size // world_size examples) of the global batch of ``step``."""
        ...
    def loss(self, model: nn.Module, batch: Any, step: int) -> torch.Tensor: ...
    def flops_per_step(self, model: nn.Module, batch_size: int) -> float: ...
    def units_per_step(self, batch_size: int) -> int: ...
    def eval_depths(self, model: nn.Module) -> list[int | None]: ...
    def evaluate(self, model: nn.Module, depths: list[int | None]) -> dict[str, Any]: ...


TASKS: dict[str, Callable[[TrainConfig, Path | None], Task]] = {}


def register_task(name: str, factory: Callable[[TrainConfig, Path | None], Task]) -> None:
    """Register a task factory under ``name`` (used by ``TrainConfig.task``)."""
    TASKS[name] = factory


def get_task(cfg: TrainConfig, run_dir: Path | None) -> Task:
    if cfg.task not in TASKS:
        with contextlib.suppress(ImportError):
            from . import tasks_vision  # noqa: F401  (registers "siglip" and "vit")
    if cfg.task not in TASKS:
        raise ValueError(f"unknown task {cfg.task!r}; registered: {sorted(TASKS)}")
    return TASKS[cfg.task](cfg, run_dir)


# ----------------------------------------------------------------------------------------------
# The language-model task


def default_depths(r_max: int | None) -> list[int | None]:
    """Inference depths evaluated by default: 1 … r_max + 1 (or the single plain depth)."""
    return [None] if not r_max else list(range(1, r_max + 2))


class LMTask:
    """Next-token prediction on a tokenised corpus (:mod:`rins.data`)."""

    name = "lm"

    def __init__(self, cfg: TrainConfig, run_dir: Path | None) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.bundle = None
        self.train_ds = self.val_ds = None

    def prepare(self) -> None:
        from .data import TokenDataset, prepare_data

        d = self.cfg.data
        self.bundle = prepare_data(d.corpus, d.cache_dir, d.vocab_size, d.val_fraction, self.cfg.seed,
                                   tokenizer=d.tokenizer)
        self.train_ds = TokenDataset(self.bundle.train_path, d.seq_len)
        self.val_ds = TokenDataset(self.bundle.val_path, d.seq_len)
        if self.run_dir is not None and not (self.run_dir / "tokenizer.json").exists():
            shutil.copyfile(self.bundle.tokenizer_path, self.run_dir / "tokenizer.json")

    base_model: dict[str, Any] | None = None  # set by --init: the initialising run's model config

    def model_config(self) -> LMConfig:
        """The LM config: ``cfg.model`` (vocab and length from the data), or with ``--init`` the initialising
        run's architecture with this config's recursion fields (signature, p_skip, adapters, …) on top."""
        m = dict(self.cfg.model)
        if self.base_model:
            recursion = {f.name for f in fields(StackConfig)}
            m = dict(self.base_model)
            for k, v in self.cfg.model.items():
                if k in recursion:
                    m[k] = v
                elif m.get(k, v) != v:
                    warnings.warn(f"--init: keeping the initialising model's {k}={m[k]!r} (config asks {v!r})",
                                  stacklevel=2)
        vocab = self.bundle.vocab_size if self.bundle is not None else self.cfg.data.vocab_size
        m.setdefault("vocab_size", vocab)
        m.setdefault("max_seq_len", self.cfg.data.seq_len)
        m.setdefault("depth_seed", self.cfg.seed)
        if m["vocab_size"] < vocab:
            raise ValueError(f"model.vocab_size={m['vocab_size']} is smaller than the tokenizer's {vocab}")
        if m["max_seq_len"] < self.cfg.data.seq_len:
            raise ValueError(f"model.max_seq_len={m['max_seq_len']} < data.seq_len={self.cfg.data.seq_len}")
        return LMConfig.from_dict(m)

    def build_model(self) -> RecursiveLM:
        return RecursiveLM(self.model_config())

    def train_batch(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1):
        """This rank's contiguous share of the global batch of ``step`` (the global batch depends only on
        (seed, step), so any world size and any grad_accum see the same examples)."""
        x, y = self.train_ds.get_batch(step, batch_size, self.cfg.seed)
        per = batch_size // world_size
        return x[rank * per:(rank + 1) * per], y[rank * per:(rank + 1) * per]

    def loss(self, model: nn.Module, batch: Any, step: int) -> torch.Tensor:
        x, y = batch
        if self.cfg.fused_loss:
            return model(x, step=step, targets=y)
        logits = model(x, step=step)
        return F.cross_entropy(logits.float().flatten(0, 1), y.flatten())

    def _core(self, model: nn.Module) -> RecursiveLM:
        return getattr(model, "module", model)

    def flops_per_step(self, model: nn.Module, batch_size: int) -> float:
        m = self._core(model)
        T = self.cfg.data.seq_len
        return m.flops_per_token(T, training=True, expected=True, batch_size=batch_size) * batch_size * T

    def realised_flops(self, model: nn.Module, step: int, batch_size: int) -> float:
        """FLOPs actually executed at ``step`` (the drawn depth for stochastic RINS)."""
        m = self._core(model)
        T = self.cfg.data.seq_len
        c = m.config
        r = None
        if m.r_max and c.p_skip > 0:
            d = sample_depth(m.r_max, c.p_skip, c.depth_seed, step, batch_size if c.per_sequence_depth else None)
            r = max(d) if isinstance(d, list) else d
        return m.flops_per_token(T, r=r, training=True) * batch_size * T

    def units_per_step(self, batch_size: int) -> int:
        return batch_size * self.cfg.data.seq_len

    def eval_depths(self, model: nn.Module) -> list[int | None]:
        return default_depths(self._core(model).r_max)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, depths: list[int | None]) -> dict[str, Any]:
        m = self._core(model)
        was = m.training
        m.eval()
        dev = next(m.parameters()).device
        losses: dict[str, float] = {}
        bs = max(1, min(self.cfg.batch_size, 16))
        for r in depths:
            tot, n = 0.0, 0
            for x, y in self.val_ds.iter_eval_batches(bs, self.cfg.eval_batches):
                x, y = x.to(dev), y.to(dev)
                with autocast(self.cfg, dev):
                    tot += m(x, r=r, targets=y, reduction="sum").item()
                n += y.numel()
            losses["default" if r is None else str(r)] = tot / n
        m.train(was)
        main = losses.get("default", losses.get(str(m.r_max)) if m.r_max else None)
        if main is None:
            main = next(iter(losses.values()))
        out: dict[str, Any] = {"val_loss": main, "val_loss_r": {k: v for k, v in losses.items() if k != "default"}}
        tpb = self.bundle.meta.get("n_val_tokens", 0) / max(1, self.bundle.meta.get("val_bytes", 0))
        if tpb > 0:
            out["val_bpb"] = main / math.log(2) * tpb
        return out


register_task("lm", LMTask)


# ----------------------------------------------------------------------------------------------
# Helpers


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; a clear error when CUDA is asked for but absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available; use --device cpu or auto")
    return dev


def autocast(cfg: TrainConfig, device: torch.device):
    if cfg.dtype == "float32":
        return contextlib.nullcontext()
    if cfg.dtype != "bfloat16":
        raise ValueError(f"dtype must be 'float32' or 'bfloat16', got {cfg.dtype!r}")
    return torch.autocast(device.type, dtype=torch.bfloat16)


def plan_steps(cfg: TrainConfig, flops_per_step: float, units_per_step: int) -> int:
    """Number of optimizer steps the budget buys (compute-matched when given in FLOPs)."""
    b = cfg.budget
    if b.flops is not None:
        if b.flops <= 0:
            raise BudgetError(f"budget.flops must be > 0, got {b.flops}")
        steps = int(b.flops // flops_per_step)
        if steps < 1:
            raise BudgetError(
                f"budget of {b.flops:.3g} FLOPs is too small for one step ({flops_per_step:.3g} FLOPs per step); "
                "raise budget.flops or lower batch_size / data.seq_len"
            )
        return steps
    if b.tokens is not None:
        steps = int(b.tokens // units_per_step)
        if steps < 1:
            raise BudgetError(f"budget of {b.tokens} tokens is less than one step ({units_per_step} tokens)")
        return steps
    if b.steps is not None:
        if b.steps < 1:
            raise BudgetError(f"budget.steps must be >= 1, got {b.steps}")
        return int(b.steps)
    raise BudgetError("no budget: set budget.flops, budget.tokens or budget.steps")


def lr_at(step: int, total: int, o) -> float:
    """Learning rate at ``step`` (0-based) of ``total``: linear warmup, then cosine / WSD / constant."""
    warm = max(1, int(round(o.warmup_frac * total))) if o.warmup_frac > 0 else 0
    if step < warm:
        return o.lr * (step + 1) / warm
    lo = o.lr * o.min_lr_ratio
    if o.schedule == "constant":
        return o.lr
    if o.schedule == "cosine":
        t = (step - warm) / max(1, total - warm - 1)
        return lo + 0.5 * (o.lr - lo) * (1 + math.cos(math.pi * min(1.0, t)))
    if o.schedule == "wsd":
        decay = max(1, int(round(o.cooldown_frac * total)))
        start = total - decay
        if step < start:
            return o.lr
        return o.lr + (lo - o.lr) * (step - start + 1) / decay
    raise ValueError(f"unknown schedule {o.schedule!r}; use cosine, wsd or constant")


def eval_schedule(total: int, n: int) -> list[int]:
    """Steps (1-based, after the update) at which to evaluate: geometric spacing, always incl. the last."""
    if n <= 1 or total <= 1:
        return [total]
    pts = {max(1, int(round(total ** (i / (n - 1))))) for i in range(n)}
    pts |= {total}
    return sorted(p for p in pts if p <= total)


# Config fields a resumed run may change: where it writes, how often it logs, evaluates and checkpoints, and
# which hardware runs it (device and thread count may change the last bits of the arithmetic). Every other
# field (model, data, optim, budget, batch, seed, dtype, fused_loss, compile, ...) must match the checkpoint.
RESUME_MAY_CHANGE = ("name", "out_dir", "device", "threads", "progress", "log_every", "ckpt_every", "keep_last",
                     "n_evals", "eval_batches", "eval_depths", "eval_all_depths", "data.cache_dir", "loggers")


def _config_signature(cfg: TrainConfig) -> dict[str, Any]:
    """The fields a resumed run must share with the checkpoint, flattened (``optim.lr``, ``model``, ...)."""
    flat: dict[str, Any] = {}
    for k, v in cfg.to_dict().items():
        if isinstance(v, dict) and k != "model":
            flat.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            flat[k] = v
    return {k: v for k, v in flat.items() if k not in RESUME_MAY_CHANGE}


def _truncate_log(path: Path, step: int) -> None:
    """Keep the log records up to ``step`` (the resumed checkpoint): steps that a killed run logged after its
    last checkpoint are run again, and must not appear twice. A torn last line is dropped too."""
    if not path.exists():
        return
    if step == 0:
        path.unlink()
        return
    keep = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and not (isinstance(rec.get("step"), int) and rec["step"] > step):
            keep.append(line)
    atomic_write_text(path, "".join(x + "\n" for x in keep))


def _all_finite(model: nn.Module, dist_ctx: Any = None) -> bool:
    """Whether every parameter is finite (this rank's shards under FSDP; all ranks agree under DDP/FSDP)."""
    flags = [torch.isfinite(p.to_local() if hasattr(p, "to_local") else p).all() for p in model.parameters()]
    ok = torch.stack(flags).all().float() if flags else torch.ones(())
    if dist_ctx:
        ok = dist_ctx.mean(ok)
    return bool(ok >= 1.0)


def _check_eval(res: dict[str, Any], step: int, run_dir: Path) -> None:
    losses = [res.get("val_loss"), *(res.get("val_loss_r") or {}).values()]
    if any(isinstance(v, float) and not math.isfinite(v) for v in losses):
        raise NonFiniteError(f"non-finite validation loss at step {step} ({res.get('val_loss_r') or res['val_loss']});"
                             f" the run stopped and keeps its last good checkpoint ({latest_checkpoint(run_dir)}); "
                             "try dtype=float32 or a lower optim.lr")


def format_eval(step: int, total: int, res: dict[str, Any], r: int | None = None) -> str:
    """One console line for an evaluation: the main loss (at the trained depth ``r``), each depth's loss
    labelled ``r=K``, 4 decimals."""
    parts = [f"[rins] eval step {step}/{total}:"]
    if isinstance(res.get("val_loss"), float):
        parts.append(f"val_loss{f' (r={r})' if r else ''} {res['val_loss']:.4f}")
    by_r = res.get("val_loss_r") or {}
    if len(by_r) > 1 or (by_r and not isinstance(res.get("val_loss"), float)):
        parts.append("(" + ", ".join(f"r={k} {v:.4f}" for k, v in by_r.items()) + ")")
    if isinstance(res.get("val_bpb"), float):
        parts.append(f"bpb {res['val_bpb']:.4f}")
    for k, v in res.items():  # other tasks' scalar metrics (accuracy, retrieval, ...)
        if k not in ("val_loss", "val_loss_r", "val_bpb") and isinstance(v, float):
            parts.append(f"{k} {v:.4f}")
    return " ".join(parts)


# ----------------------------------------------------------------------------------------------
# The loop


def train(cfg: TrainConfig, *, resume: bool = True, init_from: str | None = None, quiet: bool = False,
          dist_ctx: Any = None, stop_after: int | None = None, verify: bool = True,
          extend: bool = False) -> dict[str, Any]:
    """Train ``cfg`` and return a summary (final losses at every depth, steps, tokens, FLOPs).

    The run directory is locked (``RUN_DIR.lock``, shared with ``rins sweep``) while it trains: a second
    process on the same run stops at once with :class:`RunLockedError` naming the holder; a lock left by a
    dead process is taken over. ``extend=True`` continues a finished (or interrupted) run whose config
    differs only in a larger budget: constant schedules from the last checkpoint, WSD from the checkpoint
    where the decay began (kept in ``RUN_DIR/pre_decay``), so that the result equals a run trained with the
    larger budget from the start (with the earlier warmup); cosine schedules raise :class:`ExtendError`.

    A run directory that already has checkpoints resumes from the newest complete one (with a clear
    error if its config differs). ``init_from`` initialises weights from another run (e.g. a converted
    Hugging Face model). ``stop_after`` ends this invocation after that many steps (checkpointing first),
    e.g. to fit a long run into preemptible jobs. ``dist_ctx`` is set by :mod:`rins.distributed`.
    ``verify=False`` skips the SHA-256 check of the checkpoint it resumes from (structural checks remain).
    A resumed run truncates ``log.jsonl`` to the checkpoint's step; ``resume=False`` deletes the run's
    checkpoints, log, summary and tokenizer first. Stale temporary files of killed writers are removed.
    """
    if dist_ctx is not None and dist_ctx.rank != 0:  # rank 0 holds the lock for the whole job
        return _train(cfg, resume, init_from, quiet, dist_ctx, stop_after, verify, extend)
    from .sweep import lock_holder, run_lock

    with run_lock(cfg.run_dir(), reentrant=True) as got:
        if not got:
            raise RunLockedError(f"run directory {cfg.run_dir()} is in use by {lock_holder(cfg.run_dir())}; wait "
                                 "for it to finish or stop it, or train under another --name")
        return _train(cfg, resume, init_from, quiet, dist_ctx, stop_after, verify, extend)


PRE_DECAY = "pre_decay"  # RUN_DIR/pre_decay/checkpoints/: a WSD run's state where its decay began (for --extend)


def _train(cfg: TrainConfig, resume: bool, init_from: str | None, quiet: bool, dist_ctx: Any,
           stop_after: int | None, verify: bool, extend: bool) -> dict[str, Any]:
    rank = dist_ctx.rank if dist_ctx else 0
    world = dist_ctx.world_size if dist_ctx else 1
    is_main = rank == 0
    say = (lambda *a: None) if (quiet or not is_main) else (lambda *a: print(*a, flush=True))
    run_dir = cfg.run_dir()
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        clean_stale_temp(run_dir)
        if not resume:  # start over: nothing of the old run may leak in (a tokenizer of another vocabulary...)
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
            shutil.rmtree(run_dir / PRE_DECAY, ignore_errors=True)
            for f in ("log.jsonl", "summary.json", "tokenizer.json"):
                (run_dir / f).unlink(missing_ok=True)
    if dist_ctx:
        dist_ctx.barrier()
    device = dist_ctx.device if dist_ctx else resolve_device(cfg.device)
    if cfg.batch_size % (cfg.grad_accum * world):
        raise ValueError(f"batch_size={cfg.batch_size} must be divisible by grad_accum × world size = "
                         f"{cfg.grad_accum * world}")

    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    init_meta = None
    if init_from:
        # continue from another run (e.g. `rins convert`): its architecture and tokenizer, unless overridden
        _, _, init_meta = load_checkpoint(init_from, verify=verify)
        init_tok = Path(init_from) / "tokenizer.json"
        if cfg.task == "lm" and cfg.data.tokenizer is None and init_tok.is_file():
            cfg = replace(cfg, data=replace(cfg.data, tokenizer=str(init_tok)))
    task = get_task(cfg, run_dir)
    if init_meta is not None and hasattr(task, "base_model"):
        task.base_model = {k: v for k, v in init_meta.get("model_config", {}).items()
                           if k not in ("p_skip", "depth_seed")}
    if is_main:
        task.prepare()
    if dist_ctx:
        dist_ctx.barrier()
        if not is_main:
            task.prepare()
    model = task.build_model()
    if init_meta is not None and cfg.task == "lm":
        # --init keeps the initialising run's architecture: config.json must record the model actually trained
        cfg = replace(cfg, model=core_config_dict(model))

    # -- resume / init -------------------------------------------------------------------------
    start_step, tokens_seen, flops_seen = 0, 0, 0.0
    ck = latest_checkpoint(run_dir) if resume else None
    saved_cfg_path = run_dir / "config.json"
    if ck is not None:
        old_cfg = TrainConfig.from_dict(json.loads(saved_cfg_path.read_text())) if saved_cfg_path.exists() else None
        if extend and old_cfg is not None and old_cfg.budget != cfg.budget:
            if dist_ctx:
                raise ExtendError("extend a run on one process (rins train --extend), then resume it with --dist")
            if _config_signature(replace(old_cfg, budget=cfg.budget)) == _config_signature(cfg):
                ck = _extension_checkpoint(cfg, old_cfg, run_dir, task.flops_per_step(model, cfg.batch_size),
                                           task.units_per_step(cfg.batch_size), say)
                old_cfg = replace(old_cfg, budget=cfg.budget)
        weights, opt_tensors, meta = load_checkpoint(ck, verify=verify)
        if old_cfg is not None:
            old_sig, new_sig = _config_signature(old_cfg), _config_signature(cfg)
            if old_sig != new_sig:
                diff = sorted(set(old_sig) | set(new_sig), key=str)
                diff = [k for k in diff if old_sig.get(k) != new_sig.get(k)]
                shown = "; ".join(f"{k}: {old_sig.get(k)!r} -> {new_sig.get(k)!r}" for k in diff[:4])
                if all(k.startswith("budget.") for k in diff) and not extend:
                    shown += " (to continue it to a larger budget: rins train --extend, train(..., extend=True))"
                raise CheckpointError(
                    f"run directory {run_dir} holds a run with a different config (differs in {diff}: {shown}); "
                    f"only {', '.join(RESUME_MAY_CHANGE)} may change on resume (and budget.* with --extend); use "
                    "another name/out_dir, or pass --no-resume to start over"
                )
        saved_arch = meta.get("model_config")
        own_arch = json.loads(json.dumps(core_config_dict(model)))
        if saved_arch is not None and own_arch is not None and saved_arch != own_arch:
            diff = sorted(k for k in set(saved_arch) | set(own_arch) if saved_arch.get(k) != own_arch.get(k))
            raise CheckpointError(f"checkpoint {ck}: its model config differs from this run's in {diff}; the "
                                  "checkpoint belongs to another run or was modified (delete it, or --no-resume)")
        load_state_into(model, weights, str(ck))
        start_step = int(meta["step"])
        tokens_seen = int(meta.get("tokens", 0))
        flops_seen = float(meta.get("flops", 0.0))
    elif init_from:
        w, _, _ = load_checkpoint(init_from, verify=verify)
        load_state_into(model, w, f"--init {init_from}", allow_missing=("stack.adapters.",))
    if is_main:
        _truncate_log(run_dir / "log.jsonl", start_step)
        atomic_write_text(saved_cfg_path, json.dumps(cfg.to_dict(), indent=1))

    model.to(device)
    core = model
    if cfg.compile:
        for blk in getattr(getattr(core, "stack", None), "blocks", []):
            blk.compile(dynamic=False)
    if dist_ctx:
        model = dist_ctx.wrap(model)

    fps = task.flops_per_step(core, cfg.batch_size)
    ups = task.units_per_step(cfg.batch_size)
    total = plan_steps(cfg, fps, ups)
    if start_step > total:
        raise CheckpointError(f"checkpoint {ck} is at step {start_step}, beyond this run's {total} steps; it belongs "
                              "to another budget or was modified (delete it, or --no-resume)")
    params = sum(p.numel() for p in core.parameters())
    # fused AdamW: one kernel over all parameters (its row in BENCHMARKS.md's throughput table)
    fused = cfg.optim.fused if cfg.optim.fused is not None else device.type in ("cuda", "cpu")
    # the same groups under DDP / FSDP2 (FSDP2 shards in place, so ``core`` holds the DTensor parameters):
    # identical optimisation and an optimizer state that any world size can resume
    groups = core.param_groups(cfg.optim.weight_decay) if hasattr(core, "param_groups") else model.parameters()
    opt = torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=(cfg.optim.beta1, cfg.optim.beta2),
                            eps=cfg.optim.eps, weight_decay=cfg.optim.weight_decay, fused=fused or None)
    if ck is not None:
        if dist_ctx:
            dist_ctx.restore_optimizer(model, opt, opt_tensors, meta)
        else:
            restore_optimizer(opt, opt_tensors, meta)
        if "rng.torch" in opt_tensors:
            check_rng_state(opt_tensors["rng.torch"], str(ck))
            torch.set_rng_state(opt_tensors["rng.torch"])
    evals = set(eval_schedule(total, cfg.n_evals))
    pre_decay = _decay_start(total, cfg.optim) if cfg.optim.schedule == "wsd" else None
    depths = cfg.eval_depths or task.eval_depths(core)

    say(f"[rins] run {cfg.name}: task={cfg.task} signature={getattr(core.config, 'signature', '?')} "
        f"params={params:,} device={device} dtype={cfg.dtype} world={world}")
    say(f"[rins] FLOPs/step={fps:.4g} (expected) units/step={ups:,} steps={total:,} "
        f"tokens={total * ups:,} total FLOPs={total * fps:.4g}" + (f"; resuming at step {start_step}"
                                                                   if start_step else ""))
    logger = RunLogger(run_dir / "log.jsonl", is_main, parse_loggers(cfg.loggers), start_step, cfg.to_dict())
    if is_main and start_step == 0:
        logger.log({"event": "start", "params": params, "flops_per_step": fps, "units_per_step": ups,
                    "steps": total, "total_flops": total * fps, "config": cfg.to_dict()})
    bar = None
    if is_main and cfg.progress and not quiet:
        try:
            from tqdm import tqdm

            if sys.stderr.isatty():
                bar = tqdm(total=total, initial=start_step, unit="step", dynamic_ncols=True, file=sys.stderr)
        except ImportError:
            bar = None

    realised = getattr(task, "realised_flops", None)
    # FSDP shards the weights: every rank must take part in an evaluation forward (all-gathers)
    eval_here = is_main or bool(dist_ctx and dist_ctx.kind == "fsdp")
    last_eval: dict[str, Any] = {}
    if start_step >= total:  # already complete: report the finished run
        prev = run_dir / "summary.json"
        if prev.exists():
            logger.close()
            return json.loads(prev.read_text())
        last_eval = task.evaluate(model, depths) if eval_here else {}
        _check_eval(last_eval, start_step, run_dir)
    t0 = time.time()
    units_run = 0
    model.train()
    step = start_step
    try:
        while step < total:
            lr = lr_at(step, total, cfg.optim)
            for g in opt.param_groups:
                g["lr"] = lr
            loss_sum = 0.0
            local = task.train_batch(step, cfg.batch_size, rank, world)  # this rank's share of the step
            for k in range(cfg.grad_accum):
                batch = _to(_micro(local, k, cfg.grad_accum), device)
                sync = contextlib.nullcontext()
                if dist_ctx and k < cfg.grad_accum - 1:
                    sync = dist_ctx.no_sync(model)
                with sync:  # FSDP2 reads the sync flag in backward, so backward runs inside it
                    with autocast(cfg, device):
                        loss = task.loss(model, batch, step)
                    (loss / cfg.grad_accum).backward()
                loss_sum += loss.detach().float()
            loss_val = loss_sum / cfg.grad_accum
            if dist_ctx:
                loss_val = dist_ctx.mean(loss_val)
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(),
                                                   cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf"))
            if hasattr(gnorm, "full_tensor"):  # FSDP2: a DTensor norm
                gnorm = gnorm.full_tensor()
            if not (torch.isfinite(loss_val) and torch.isfinite(gnorm)):
                raise NonFiniteError(
                    f"non-finite {'loss' if not torch.isfinite(loss_val) else 'gradient norm'} at step {step + 1} "
                    f"(loss={float(loss_val)}, grad_norm={float(gnorm)}); the run stopped and keeps its last good "
                    f"checkpoint ({latest_checkpoint(run_dir)}). Lower optim.lr or use float32, then resume."
                )
            opt.step()
            opt.zero_grad(set_to_none=True)
            if not _all_finite(core, dist_ctx):  # e.g. a NaN learning rate: no checkpoint may hold these weights
                raise NonFiniteError(
                    f"non-finite weights after the optimizer step at step {step + 1} (lr={lr}); the run stopped "
                    f"and keeps its last good checkpoint ({latest_checkpoint(run_dir)}). Check optim.* "
                    "(lr, min_lr_ratio, eps), then resume."
                )
            step += 1
            tokens_seen += ups
            units_run += ups
            flops_seen += realised(core, step - 1, cfg.batch_size) if realised else fps
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss_val):.3f}")
            if step % cfg.log_every == 0 or step == total or step == 1:
                dt = time.time() - t0
                rec = {"event": "train", "step": step, "loss": float(loss_val), "lr": lr, "tokens": tokens_seen,
                       "flops": flops_seen, "grad_norm": float(gnorm), "units_per_s": units_run / max(dt, 1e-9)}
                logger.log(rec)
                if bar is None:
                    say(f"[rins] step {step}/{total} loss {float(loss_val):.4f} lr {lr:.2e} "
                        f"{rec['units_per_s']:.0f} units/s")
            if step in evals:
                # intermediate points: the trained depth only (the learning curve); the last: every depth
                at = depths if (step == total or cfg.eval_all_depths) else [None]
                last_eval = task.evaluate(model, at) if eval_here else {}
                _check_eval(last_eval, step, run_dir)
                if is_main:
                    logger.log({"event": "eval", "step": step, "tokens": tokens_seen, "flops": flops_seen,
                                **last_eval})
                    line = format_eval(step, total, last_eval, getattr(core, "r_max", None))
                    if bar is not None:
                        bar.write(line, file=sys.stderr)  # above the bar, which stays on the last line
                    else:
                        say(line)
                if dist_ctx:
                    dist_ctx.barrier()
            stopping = stop_after is not None and step - start_step >= stop_after
            if step % cfg.ckpt_every == 0 or step == total or stopping:
                _checkpoint(cfg, run_dir, step, core, opt, tokens_seen, flops_seen, dist_ctx, model)
            if step == pre_decay and step < total:  # the state a longer run would share (rins train --extend)
                _checkpoint(cfg, run_dir / PRE_DECAY, step, core, opt, tokens_seen, flops_seen, dist_ctx, model, 1)
            if stopping:
                break
    finally:
        if bar is not None:
            bar.close()
        logger.close()
    dt = time.time() - t0
    summary = {"name": cfg.name, "run_dir": str(run_dir), "signature": getattr(core.config, "signature", None),
               "params": params, "steps": total, "tokens": tokens_seen, "flops": flops_seen,
               "flops_per_step": fps, "seconds": dt, "complete": step >= total, **last_eval}
    if is_main:
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1))
    return summary


def core_config_dict(model: nn.Module) -> dict[str, Any] | None:
    """The model's config as saved into checkpoints (``model.config.to_dict()``), or None."""
    c = getattr(model, "config", None)
    return c.to_dict() if hasattr(c, "to_dict") else None


def _checkpoint(cfg, run_dir, step, core, opt, tokens, flops, dist_ctx, wrapped, keep_last=None) -> None:
    keep = cfg.keep_last if keep_last is None else keep_last
    if dist_ctx:
        dist_ctx.save_checkpoint(run_dir, step, wrapped, opt, {"tokens": tokens, "flops": flops, "name": cfg.name},
                                 keep)
        return
    save_checkpoint(run_dir, step, core, opt, {"tokens": tokens, "flops": flops, "name": cfg.name}, keep_last=keep)


def _decay_start(total: int, o) -> int:
    """Steps done when a WSD schedule's decay begins (the learning rate of step index ``start`` decays)."""
    return total - max(1, int(round(o.cooldown_frac * total)))


def _extension_checkpoint(cfg: TrainConfig, old: TrainConfig, run_dir: Path, fps: float, ups: int,
                          say: Callable[..., None]) -> Path:
    """The checkpoint from which ``old``'s run continues as the run of ``cfg`` (a larger budget); later
    checkpoints (the old decay) are deleted, the old summary kept as ``summary_step{N}.json``."""
    o = cfg.optim
    if o.schedule == "cosine":
        raise ExtendError("a cosine schedule cannot be extended: its learning rate at every step depends on the "
                          "run's total length, so the steps already taken are not those of the longer run; train "
                          "the longer run from scratch (optim.schedule=wsd or constant runs can be extended)")
    old_total, new_total = plan_steps(old, fps, ups), plan_steps(cfg, fps, ups)
    if new_total <= old_total:
        raise ExtendError(f"--extend needs a larger budget: the new one buys {new_total} steps, the run has "
                          f"{old_total}")
    # the last step count up to which both plans share every learning rate
    anchor = _decay_start(old_total, o) if o.schedule == "wsd" else old_total
    warm = max(1, int(round(o.warmup_frac * new_total))) if o.warmup_frac > 0 else 0
    found = [(int(p.name.split("_")[1]), p) for p in list_checkpoints(run_dir) + list_checkpoints(run_dir / PRE_DECAY)]
    usable = sorted((s, p) for s, p in found if warm <= s <= anchor and (p / "meta.json").is_file())
    if not usable:
        raise ExtendError(f"{run_dir} keeps no checkpoint between step {warm} (the longer run's warmup) and step "
                          f"{anchor} (where the learning rate began to decay), so it cannot be extended exactly; "
                          "train the longer run from scratch")
    step, src = usable[-1]
    ckdir = run_dir / "checkpoints"
    for s, p in found:
        if s > step and p.parent == ckdir:
            shutil.rmtree(p)  # the old run's decay: the longer run re-runs it at its own end
    dst = ckdir / src.name
    if not dst.is_dir():
        shutil.copytree(src, dst)
    atomic_write_text(ckdir / "LATEST", dst.name)
    if (run_dir / "summary.json").exists():
        (run_dir / "summary.json").replace(run_dir / f"summary_step{old_total}.json")
    say(f"[rins] extending {old_total} to {new_total} steps from the checkpoint at step {step}")
    return dst


def _micro(batch: Any, k: int, n: int) -> Any:
    """The k-th of n equal slices (along dim 0) of a batch (tensor, tuple/list or dict of tensors)."""
    if n == 1:
        return batch
    if isinstance(batch, torch.Tensor):
        size = batch.shape[0] // n
        return batch[k * size:(k + 1) * size]
    if isinstance(batch, tuple | list):
        return type(batch)(_micro(b, k, n) for b in batch)
    if isinstance(batch, dict):
        return {key: _micro(v, k, n) for key, v in batch.items()}
    return batch


def _to(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple | list):
        return type(batch)(_to(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to(v, device) for k, v in batch.items()}
    return batch



class _CallableModule(types.ModuleType):
    """``rins.train`` is this module, and calling it runs :func:`train`: ``rins.train(cfg)`` works whether or not
    the submodule was imported first (an import binds the package attribute ``train`` to the module)."""

    def __call__(self, cfg: TrainConfig, **kwargs: Any) -> dict[str, Any]:
        return train(cfg, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
