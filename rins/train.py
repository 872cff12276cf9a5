"""The compute-matched trainer: one loop over a *task* (LM, SigLIP, ViT classifier).

The budget in FLOPs becomes a number of steps through the model's matmul FLOPs per executed layer (:mod:`rins.flops`
says what is counted; the expected cost for stochastic depth); the schedule (:mod:`rins.schedule`) is laid out over
those steps. What a run starts from is :mod:`rins.resume`'s; the run directory's files are :mod:`rins.runs`'. Runs
log JSONL, checkpoint atomically, resume exactly, and stop on NaN/inf keeping the last good checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from .checkpoint import (
    CHECKPOINTS,
    PRE_DECAY,
    CheckpointError,
    check_architecture,
    check_rng_state,
    clean_stale_temp,
    clear_checkpoints,
    latest_checkpoint,
    load_state_into,
    restore_optimizer,
    save_checkpoint,
)
from .config import TrainConfig
from .distributed import DistContext, init_from_env
from .hardware import BF16_EMULATED, cxx_compiler, native_bf16
from .loggers import RunLogger, parse_loggers
from .resume import (
    RESUME_MAY_CHANGE,
    Checkpointed,
    ExtendError,
    init_tokenizer,
    read_init,
    resume_fingerprint,
    resume_point,
)
from .runfiles import RunFileError, ensure_dir, path_error
from .runs import (
    clear_run_files,
    lock_holder,
    log_path,
    read_run_summary,
    run_lock,
    truncate_log,
    write_run_config,
    write_run_summary_file,
)
from .schedule import BudgetError, decay_start, eval_schedule, lr_at, plan_steps
from .tasks import Task, autocast, get_task

__all__ = ["BudgetError", "NonFiniteError", "RunLockedError", "ExtendError", "train", "run_distributed",
           "launch_train", "plan_steps",
           "lr_at", "resolve_device", "eval_schedule", "format_eval", "resume_fingerprint", "RESUME_MAY_CHANGE"]


class RunLockedError(RuntimeError):
    """Another live process is training in this run directory (``RUN_DIR.lock`` is held)."""


class NonFiniteError(RuntimeError):
    """The loss, gradient, weights or validation loss became NaN/inf; the run stopped and kept its last good
    checkpoint (weights are checked after every optimizer step, so no checkpoint holds non-finite values)."""


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


def _all_finite(model: nn.Module, dist_ctx: Any = None) -> bool:
    """Whether every parameter is finite (this rank's shards under FSDP; all ranks agree under DDP/FSDP)."""
    flags = [torch.isfinite(p.to_local() if hasattr(p, "to_local") else p).all() for p in model.parameters()]
    ok = torch.stack(flags).all().float() if flags else torch.ones(())
    if dist_ctx:
        ok = dist_ctx.mean(ok)
    return bool(ok >= 1.0)


def _stopped(run_dir: Path, dtype: str, fix: str = "lower optim.lr") -> str:
    """The end of a non-finite error: what the run kept and what to change, true to this run (a float32 run is
    not told to use float32; a run without a checkpoint is not told to resume from one)."""
    ck = latest_checkpoint(run_dir)
    if dtype != "float32":
        fix += " or use dtype=float32"
    if ck is None:
        return f"the run stopped before its first checkpoint (none was written): {fix}, then train again"
    return f"the run stopped and keeps its last good checkpoint ({ck}): {fix}, then resume"


def _check_eval(res: dict[str, Any], step: int, run_dir: Path, dtype: str = "float32") -> None:
    losses = [res.get("val_loss"), *(res.get("val_loss_r") or {}).values()]
    if any(isinstance(v, float) and not math.isfinite(v) for v in losses):
        raise NonFiniteError(f"non-finite validation loss at step {step} ({res.get('val_loss_r') or res['val_loss']});"
                             f" {_stopped(run_dir, dtype)}")


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
          extend: bool = False, force: bool = False) -> dict[str, Any]:
    """Train ``cfg`` and return a summary (final losses at every depth, steps, tokens, FLOPs).

    The run directory is locked (``RUN_DIR.lock``, :func:`rins.runs.run_lock`, shared with ``rins sweep``) while
    it trains: a second process on the same run stops at once with :class:`RunLockedError` naming the holder; a
    lock left by a dead process is taken over. ``extend=True`` continues a finished (or interrupted) run whose
    config differs only in a larger budget: constant schedules from the last checkpoint, WSD from the checkpoint
    where the decay began (kept in ``RUN_DIR/pre_decay``), so that the result equals a run trained with the
    larger budget from the start (with the earlier warmup); cosine schedules raise :class:`ExtendError`.

    A run directory that already has checkpoints resumes from the newest complete one (with a clear
    error if its config differs). ``init_from`` initialises weights from another run (e.g. a converted
    Hugging Face model). ``stop_after`` ends this invocation after that many steps (checkpointing first),
    e.g. to fit a long run into preemptible jobs. ``dist_ctx`` is set by :func:`run_distributed`.
    ``verify=False`` skips the SHA-256 check of the checkpoint it resumes from (structural checks remain).
    A run whose memory estimate (:func:`rins.resources.training_bytes`) exceeds the device's memory is refused
    before anything is allocated, unless ``force``.
    A resumed run truncates ``log.jsonl`` to the checkpoint's step; ``resume=False`` deletes the run's
    checkpoints, log, summary and tokenizer first. Stale temporary files of killed writers are removed.
    """
    if dist_ctx is not None and dist_ctx.rank != 0:  # rank 0 holds the lock for the whole job
        return _train(cfg, resume, init_from, quiet, dist_ctx, stop_after, verify, extend)
    if not force:
        _check_memory(cfg)
    _check_run_paths(cfg.run_dir())
    try:
        lock = run_lock(cfg.run_dir(), reentrant=True)
        got = lock.__enter__()
    except OSError as e:
        raise path_error(e, "the run's lock file") from e
    with contextlib.ExitStack() as stack:
        stack.push(lock)
        if not got:
            raise RunLockedError(f"run directory {cfg.run_dir()} is in use by {lock_holder(cfg.run_dir())}; wait "
                                 "for it to finish or stop it, or train under another --name")
        return _train(cfg, resume, init_from, quiet, dist_ctx, stop_after, verify, extend)


def _check_memory(cfg: TrainConfig) -> None:
    """Refuse an LM run that cannot fit the device (weights, gradients, AdamW, activations) before allocating it."""
    from .model import LMConfig
    from .resources import check_fits, training_bytes

    if isinstance(cfg.model, LMConfig):
        needed, detail = training_bytes(cfg)
        check_fits(needed, "training this config", detail, resolve_device(cfg.device),
                   "use a smaller model.d_model / model.n_layers / model.vocab_size or batch_size (or a larger "
                   "grad_accum), or pass --force to try anyway")


def _check_run_paths(run_dir: Path) -> None:
    """The run directory and the folders a run writes into it, created or checked up front: an error names the
    path and why (a file where a folder must be, no permission, a name too long), not only an errno."""
    ensure_dir(run_dir, "run directory")
    for sub in (CHECKPOINTS, PRE_DECAY):
        p = run_dir / sub
        if p.exists() and not p.is_dir():
            raise RunFileError(f"{p} exists and is not a folder (the run keeps its checkpoints there); move it "
                               "away, or train under another --name")


_PEAKS: dict[tuple[str, str], float] = {}


def peak_flops(device: torch.device, dtype: str) -> tuple[float, str]:
    """The peak FLOP/s that MFU is measured against, and where it came from: ``$RINS_PEAK_FLOPS`` ("configured",
    e.g. 989e12 for an H100's dense bf16), else the best of a few square matmuls in the run's dtype on its device
    and threads ("measured", once per process) — what the hardware delivers, not a datasheet figure."""
    env = os.environ.get("RINS_PEAK_FLOPS")
    if env:
        try:
            value = float(env)
        except ValueError:
            raise ValueError(f"RINS_PEAK_FLOPS={env!r} is not a number of FLOP/s (e.g. 989e12)") from None
        if value > 0:
            return value, "configured"
    key = (str(device), dtype)
    if key not in _PEAKS:
        n = 4096 if device.type == "cuda" else 512
        dt = torch.bfloat16 if dtype == "bfloat16" else torch.float32
        # constant operands: drawing random ones would move the global RNG, and a resumed run must draw exactly
        # what the uninterrupted run draws
        a = torch.full((n, n), 0.5, device=device, dtype=dt)
        b = torch.full((n, n), 0.25, device=device, dtype=dt)
        best = math.inf
        for _ in range(6):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t = time.perf_counter()
            a @ b
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best = min(best, time.perf_counter() - t)
        _PEAKS[key] = 2 * n ** 3 / max(best, 1e-9)
    return _PEAKS[key], "measured"


@dataclass
class _Pace:
    """Speed of this invocation for the log and the console: units (tokens) and FLOPs per second, MFU, elapsed
    seconds and the ETA of the remaining steps."""

    t0: float
    step0: int
    units0: int
    flops0: float
    peak: float
    unit: str  # "tok" (LM) or "ex" (vision: examples)

    def record(self, run: _RunState) -> dict[str, float]:
        dt = max(time.time() - self.t0, 1e-9)
        done = run.step - self.step0
        flops_per_s = (run.flops - self.flops0) / dt
        rec = {"units_per_s": (run.tokens - self.units0) / dt, "flops_per_s": flops_per_s,
               "mfu": flops_per_s / self.peak, "elapsed_s": dt,
               "eta_s": (run.total - run.step) * dt / done if done else math.nan}
        if self.unit == "tok":
            rec["tokens_per_s"] = rec["units_per_s"]
        return rec

    def line(self, rec: dict[str, float]) -> str:
        eta = "?" if not math.isfinite(rec["eta_s"]) else _hms(rec["eta_s"])
        return (f"{rec['units_per_s']:,.0f} {self.unit}/s, MFU {100 * rec['mfu']:.1f}%, elapsed "
                f"{_hms(rec['elapsed_s'])}, ETA {eta}")


def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


@dataclass
class _RunState:
    """One invocation's state, handed from each named step of the loop to the next."""

    cfg: TrainConfig
    run_dir: Path
    dist_ctx: Any
    console: Callable[..., None]  # prints a line on the main rank unless quiet (else does nothing)
    device: torch.device
    task: Task
    model: nn.Module  # what the loop calls: the DDP/FSDP wrapper under --dist (set by _place)
    core: nn.Module  # the user model (under FSDP2 it holds the sharded parameters)
    rank: int = 0
    world: int = 1
    quiet: bool = False  # no console output (the log is written all the same)
    opt: torch.optim.Optimizer | None = None
    flops_per_step: float = 0.0  # expected training FLOPs of one step (what the budget is divided by)
    units_per_step: int = 0  # tokens (LM) or examples (vision) per step
    total: int = 0  # steps the budget buys
    step: int = 0  # steps done
    tokens: int = 0
    flops: float = 0.0  # FLOPs executed (drawn depths under stochastic RINS)
    ck: Path | None = None  # the checkpoint resumed from
    pace: _Pace | None = None  # speed, elapsed time and ETA of this invocation (set by _loop)
    init: Checkpointed | None = None  # the --init checkpoint, read once by _setup, loaded by _restore
    compiled: bool = False  # the blocks run through torch.compile (compile_decision)
    compile_note: str = ""  # why (or why not), for the start lines

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.core.parameters())


def _train(cfg: TrainConfig, resume: bool, init_from: str | None, quiet: bool, dist_ctx: Any,
           stop_after: int | None, verify: bool, extend: bool) -> dict[str, Any]:
    run = _setup(cfg, resume, init_from, quiet, dist_ctx, verify)
    resumed = _restore(run, resume, verify, extend)
    _place(run)
    _make_optimizer(run, resumed)
    return _loop(run, stop_after)


# -- setup -------------------------------------------------------------------------------------


def _setup(cfg: TrainConfig, resume: bool, init_from: str | None, quiet: bool, dist_ctx: Any,
           verify: bool) -> _RunState:
    """The run directory, the device, the seeds, the task (its data prepared) and the freshly built model."""
    rank = dist_ctx.rank if dist_ctx else 0
    world = dist_ctx.world_size if dist_ctx else 1
    console = (lambda *a: None) if (quiet or rank != 0) else (lambda *a: print(*a, flush=True))
    run_dir = cfg.run_dir()
    if rank == 0:
        _clear_run_dir(run_dir, resume)
    if dist_ctx:
        dist_ctx.barrier()
    device = dist_ctx.device if dist_ctx else resolve_device(cfg.device)
    if cfg.batch_size % (cfg.grad_accum * world):
        raise ValueError(f"batch_size={cfg.batch_size} must be divisible by grad_accum × world size = "
                         f"{cfg.grad_accum * world}")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    init = None
    if init_from:
        # continue from another run (e.g. `rins convert`): its architecture and tokenizer, unless overridden
        init = read_init(init_from, verify=verify)
        init_tok = init_tokenizer(init_from)
        if cfg.task == "lm" and cfg.data.tokenizer is None and init_tok is not None:
            cfg = replace(cfg, data=replace(cfg.data, tokenizer=str(init_tok)))
    task = get_task(cfg, run_dir)
    if init is not None and hasattr(task, "base_model"):
        task.base_model = {k: v for k, v in (init.architecture or {}).items() if k not in ("p_skip", "depth_seed")}
    if rank == 0:  # rank 0 downloads and tokenises first; the others then read its cache
        task.prepare()
    if dist_ctx:
        dist_ctx.barrier()
        if rank != 0:
            task.prepare()
    model = task.build_model()
    if init is not None and cfg.task == "lm":
        # --init keeps the initialising run's architecture: config.json must record the model actually trained
        cfg = replace(cfg, model=core_config_dict(model))
    return _RunState(cfg, run_dir, dist_ctx, console, device, task, model, model, rank, world, quiet, init=init)


def _clear_run_dir(run_dir: Path, resume: bool) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_temp(run_dir)
    if not resume:  # start over: nothing of the old run may leak in (a tokenizer of another vocabulary...)
        clear_checkpoints(run_dir)
        clear_run_files(run_dir)


# -- restore -----------------------------------------------------------------------------------


def _restore(run: _RunState, resume: bool, verify: bool, extend: bool
             ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Load the newest checkpoint of the run directory (its config and architecture must match this run's:
    :mod:`rins.resume`), or the ``--init`` checkpoint's weights; record config.json. Returns the resumed
    checkpoint's (optimizer tensors, metadata), or None for a fresh start."""
    cfg = run.cfg
    point = None
    if resume:
        def steps_of(c: TrainConfig) -> int:
            task = run.task
            return plan_steps(c, task.flops_per_step(run.model, c.batch_size), task.units_per_step(c.batch_size))

        point = resume_point(run.run_dir, cfg, extend=extend, verify=verify, distributed=bool(run.dist_ctx),
                             steps_of=steps_of, console=run.console)
    resumed = None
    if point is not None:
        # the model as this run built it, in the JSON form meta.json records (tuples as lists)
        check_architecture(point.path, point.architecture, json.loads(json.dumps(core_config_dict(run.core))),
                           "this run's")
        load_state_into(run.model, point.weights, str(point.path))
        meta = point.meta
        run.step, run.tokens, run.flops = int(meta["step"]), int(meta.get("tokens", 0)), float(meta.get("flops", 0.0))
        run.ck, resumed = point.path, (point.opt_tensors, meta)
    elif run.init is not None:
        load_state_into(run.model, run.init.weights, f"--init {run.init.path}", allow_missing=("stack.adapters.",))
    run.init = None  # its weights are in the model now (or a checkpoint's are): do not hold them twice
    if run.is_main:
        truncate_log(run.run_dir, run.step)
        write_run_config(run.run_dir, cfg.to_dict())
    return resumed


COMPILE_AUTO_MIN_STEPS = 300  # compile = "auto": the one-off compile (~30-60 s on a CPU) is repaid from here on


def compile_decision(setting: bool | str, device: torch.device, steps: int) -> tuple[bool, str]:
    """Whether a run compiles its blocks, and why (for the log). ``setting`` is the config's ``compile``:
    True (warns and trains eager on a CPU without a C++ compiler: inductor builds C++ kernels there, and the
    first step would fail deep inside torch), False, or "auto": on CUDA, or on a CPU with a C++ compiler, for
    runs of at least :data:`COMPILE_AUTO_MIN_STEPS` steps (compiled blocks were 7-37% faster per step at the
    CPU shapes measured, BENCHMARKS.md; a short run would spend more on compiling than it saves)."""
    if setting is False:
        return False, "compile = false"
    if setting is True:
        if device.type != "cpu" or cxx_compiler():
            return True, "compile = true"
        warnings.warn("compile = true needs a C++ compiler on CPU (set $CXX or install g++/clang++); none found, so "
                      "this run trains its blocks uncompiled (slower, same model and FLOPs)", stacklevel=3)
        return False, "compile = true, but no C++ compiler"
    if device.type not in ("cpu", "cuda"):
        return False, f"compile = auto: not on {device.type}"
    if device.type == "cpu" and not cxx_compiler():
        return False, "compile = auto: no C++ compiler (set $CXX or install g++/clang++ to compile)"
    if steps < COMPILE_AUTO_MIN_STEPS:
        return False, f"compile = auto: {steps} steps, fewer than the {COMPILE_AUTO_MIN_STEPS} that repay compiling"
    return True, "compile = auto"


def _place(run: _RunState) -> None:
    """Move the model to its device, compile its blocks, wrap it for DDP/FSDP; turn the budget into steps."""
    cfg = run.cfg
    run.model.to(run.device)
    if cfg.dtype == "bfloat16" and not native_bf16(run.device):
        warnings.warn(f"dtype = bfloat16 on {run.device}: {BF16_EMULATED}", stacklevel=3)
    run.flops_per_step = run.task.flops_per_step(run.core, cfg.batch_size)
    run.units_per_step = run.task.units_per_step(cfg.batch_size)
    run.total = plan_steps(cfg, run.flops_per_step, run.units_per_step)
    run.compiled, run.compile_note = compile_decision(cfg.compile, run.device, run.total)
    blocks = list(getattr(getattr(run.core, "stack", None), "blocks", []))
    if run.compiled and not blocks:  # e.g. the vision towers: not compiled by the trainer
        run.compiled, run.compile_note = False, f"{run.compile_note}, but this task's model has no block stack"
    for blk in blocks if run.compiled else []:
        blk.compile(dynamic=False)
    if run.dist_ctx:
        run.model = run.dist_ctx.wrap(run.model)
    if run.step > run.total:
        raise CheckpointError(f"checkpoint {run.ck} is at step {run.step}, beyond this run's {run.total} steps; it "
                              "belongs to another budget or was modified (delete it, or --no-resume)")


def _make_optimizer(run: _RunState, resumed: tuple[dict[str, Any], dict[str, Any]] | None) -> None:
    """AdamW over the model's parameter groups; a resumed run restores its state and the torch RNG."""
    core, o = run.core, run.cfg.optim
    # fused AdamW: one kernel over all parameters (its row in BENCHMARKS.md's throughput table)
    fused = o.fused if o.fused is not None else run.device.type in ("cuda", "cpu")
    # the same groups under DDP / FSDP2 (FSDP2 shards in place, so ``core`` holds the DTensor parameters):
    # identical optimisation and an optimizer state that any world size can resume
    groups = core.param_groups(o.weight_decay) if hasattr(core, "param_groups") else run.model.parameters()
    run.opt = torch.optim.AdamW(groups, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps,
                                weight_decay=o.weight_decay, fused=fused or None)
    if resumed is None:
        return
    opt_tensors, meta = resumed
    if run.dist_ctx:
        run.dist_ctx.restore_optimizer(run.model, run.opt, opt_tensors, meta)
    else:
        restore_optimizer(run.opt, opt_tensors, meta)
    if "rng.torch" in opt_tensors:
        check_rng_state(opt_tensors["rng.torch"], str(run.ck))
        torch.set_rng_state(opt_tensors["rng.torch"])


# -- the loop ----------------------------------------------------------------------------------


def _loop(run: _RunState, stop_after: int | None) -> dict[str, Any]:
    """Optimise, log, evaluate and checkpoint step by step to the end of the budget (or ``stop_after``)."""
    cfg, start_step = run.cfg, run.step
    evals = set(eval_schedule(run.total, cfg.n_evals))
    pre_decay = decay_start(run.total, cfg.optim) if cfg.optim.schedule == "wsd" else None
    depths = cfg.eval_depths or run.task.eval_depths(run.core)
    logger, bar = _announce(run)
    # FSDP shards the weights: every rank must take part in an evaluation forward (all-gathers)
    eval_here = run.is_main or bool(run.dist_ctx and run.dist_ctx.kind == "fsdp")
    last_eval: dict[str, Any] = {}
    if run.step >= run.total:  # already complete: report the finished run
        prev = read_run_summary(run.run_dir)
        if prev:
            logger.close()
            return prev
        last_eval = run.task.evaluate(run.model, depths) if eval_here else {}
        _check_eval(last_eval, run.step, run.run_dir, run.cfg.dtype)
    t0 = time.time()
    peak, source = peak_flops(run.device, cfg.dtype)
    if run.is_main and run.step < run.total:
        run.console(f"[rins] MFU is measured against {peak:.3g} FLOP/s ({source}"
                + (": a matmul in the run's dtype; set RINS_PEAK_FLOPS to use a datasheet peak)" if source == "measured"
                   else ", RINS_PEAK_FLOPS)"))
    run.pace = _Pace(t0, run.step, run.tokens, run.flops, peak, "tok" if cfg.task == "lm" else "ex")
    run.model.train()
    stop = _StopOnInterrupt()  # on every rank: one rank's signal stops all at the same step (requested)
    try:
        while run.step < run.total:
            t_step = time.time()
            loss, gnorm, lr = _optimise(run)
            if run.compiled and run.step == start_step + 1 and run.is_main:  # what the compile cost, once
                run.console(f"[rins] first step {time.time() - t_step:.1f} s, compiling the blocks included")
            _log_step(run, logger, bar, loss, gnorm, lr)
            if run.step in evals:
                # intermediate points: the trained depth only (the learning curve); the last: every depth
                at = depths if (run.step == run.total or cfg.eval_all_depths) else [None]
                last_eval = _evaluate(run, at, eval_here, logger, bar)
            interrupted = stop.requested(run)
            stopping = interrupted or (stop_after is not None and run.step - start_step >= stop_after)
            _save(run, stopping, pre_decay)
            if interrupted:
                raise TrainingInterrupted(run.run_dir, run.step, run.total)
            if stopping:
                break
    finally:
        stop.restore()
        if bar is not None:
            bar.close()
        logger.close()
    return _summarise(run, last_eval, time.time() - t0)


def _announce(run: _RunState) -> tuple[RunLogger, Any]:
    """Say what the run is, open its logger (a fresh run logs a start record) and the progress bar."""
    cfg, core, console = run.cfg, run.core, run.console
    flops_per_step, units_per_step, total = run.flops_per_step, run.units_per_step, run.total
    console(f"[rins] run {cfg.name}: task={cfg.task} signature={getattr(core.config, 'signature', '?')} "
        f"params={run.params:,} device={run.device} dtype={cfg.dtype} world={run.world}")
    split = _train_units(run)
    console(f"[rins] FLOPs/step={flops_per_step:.4g} (expected) units/step={units_per_step:,} steps={total:,} "
        f"tokens={total * units_per_step:,} total FLOPs={total * flops_per_step:.4g}"
        + (f" = {total * units_per_step / split:.3g} passes over the training split ({split:,} "
           f"{'tokens' if cfg.task == 'lm' else 'examples'})" if split else "")
        + (f"; resuming at step {run.step}" if run.step else ""))
    console(f"[rins] blocks {'compiled' if run.compiled else 'eager'} ({run.compile_note})")
    logger = RunLogger(log_path(run.run_dir), run.is_main, parse_loggers(cfg.loggers), run.step, cfg.to_dict())
    if run.is_main and run.step == 0:
        logger.log({"event": "start", "params": run.params, "flops_per_step": flops_per_step,
                    "units_per_step": units_per_step, "steps": total, "total_flops": total * flops_per_step,
                    "config": cfg.to_dict()})
    bar = None
    if run.is_main and cfg.progress and not run.quiet:
        try:
            from tqdm import tqdm

            if sys.stderr.isatty():
                bar = tqdm(total=total, initial=run.step, unit="step", dynamic_ncols=True, file=sys.stderr)
        except ImportError:
            bar = None
    return logger, bar


# -- optimise ----------------------------------------------------------------------------------


def _optimise(run: _RunState) -> tuple[torch.Tensor, torch.Tensor, float]:
    """One optimizer step over the global batch of ``run.step`` (this rank's share, in ``grad_accum``
    micro-batches); stops with :class:`NonFiniteError` before a non-finite update could be checkpointed.
    Returns (mean loss over all ranks, gradient norm, learning rate)."""
    cfg, step, model = run.cfg, run.step, run.model
    lr = lr_at(step, run.total, cfg.optim)
    for g in run.opt.param_groups:
        g["lr"] = lr
    loss_sum = 0.0
    local = run.task.train_batch(step, cfg.batch_size, run.rank, run.world)  # this rank's share of the step
    for k in range(cfg.grad_accum):
        batch = _to_device(_micro_batch(local, k, cfg.grad_accum), run.device)
        sync = contextlib.nullcontext()
        if run.dist_ctx and k < cfg.grad_accum - 1:
            sync = run.dist_ctx.no_sync(model)
        with sync:  # FSDP2 reads the sync flag in backward, so backward runs inside it
            with autocast(cfg, run.device):
                loss = run.task.loss(model, batch, step)
            (loss / cfg.grad_accum).backward()
        loss_sum += loss.detach().float()
    loss_val = loss_sum / cfg.grad_accum
    if run.dist_ctx:
        loss_val = run.dist_ctx.mean(loss_val)
    gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(),
                                           cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else float("inf"))
    if hasattr(gnorm, "full_tensor"):  # FSDP2: a DTensor norm
        gnorm = gnorm.full_tensor()
    if not (torch.isfinite(loss_val) and torch.isfinite(gnorm)):
        raise NonFiniteError(
            f"non-finite {'loss' if not torch.isfinite(loss_val) else 'gradient norm'} at step {step + 1} "
            f"(loss={float(loss_val)}, grad_norm={float(gnorm)}); {_stopped(run.run_dir, cfg.dtype)}"
        )
    run.opt.step()
    run.opt.zero_grad(set_to_none=True)
    if not _all_finite(run.core, run.dist_ctx):  # e.g. a NaN learning rate: no checkpoint may hold these weights
        raise NonFiniteError(
            f"non-finite weights after the optimizer step at step {step + 1} (lr={lr}); "
            f"{_stopped(run.run_dir, run.cfg.dtype, 'check optim.* (lr, min_lr_ratio, eps)')}"
        )
    realised = getattr(run.task, "realised_flops", None)
    run.step += 1
    run.tokens += run.units_per_step
    run.flops += realised(run.core, step, cfg.batch_size) if realised else run.flops_per_step
    return loss_val, gnorm, lr


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run at the end of a step, after checkpointing it: rerunning the command resumes it."""

    def __init__(self, run_dir: Path, step: int, total: int) -> None:
        super().__init__(f"interrupted at step {step}/{total}; checkpointed in {run_dir}")
        self.run_dir, self.step, self.total = run_dir, step, total


class _StopOnInterrupt:
    """The first Ctrl-C (SIGINT) or SIGTERM (a scheduler's ``scancel``, ``docker stop``, a plain ``kill``) asks the
    loop to stop at the end of the current step and checkpoint; a second Ctrl-C, :data:`AGAIN_AFTER_S` seconds
    or more after the first, interrupts at once. A SIGINT sooner than that is the same Ctrl-C delivered twice (a
    terminal signals the whole process group and a launcher such as ``torchrun`` forwards it to its workers as
    well), and a later SIGTERM only repeats the request. Only in a process's main thread (signal handlers live
    there); under data parallelism every rank listens, and a signal to any of them stops them all at the same
    step (:meth:`requested`)."""

    AGAIN_AFTER_S = 1.0

    def __init__(self) -> None:
        self._hit: float | None = None  # when the first signal came
        self._old: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum: int, frame: Any) -> None:
        if self._hit is not None:
            if signum == signal.SIGINT and time.monotonic() - self._hit >= self.AGAIN_AFTER_S:
                raise KeyboardInterrupt  # the user's second Ctrl-C
            return  # the same request again: the stop is under way
        self._hit = time.monotonic()
        what = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        print(f"\n[rins] {what}: stopping after this step and checkpointing (Ctrl-C again to stop at once)",
              file=sys.stderr, flush=True)

    def requested(self, run: _RunState) -> bool:
        hit = self._hit is not None
        if run.dist_ctx:  # every rank stops at the same step (the checkpoint is collective)
            hit = bool(run.dist_ctx.mean(torch.tensor(float(hit), device=run.device)) > 0)
        return hit

    def restore(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}


def _log_step(run: _RunState, logger: RunLogger, bar: Any, loss: torch.Tensor, gnorm: torch.Tensor, lr: float) -> None:
    """Advance the progress bar (which shows elapsed time and ETA itself); a train record every ``log_every`` steps
    (and at the first and last) with the speed, MFU, elapsed seconds and ETA, also as a plain line off a terminal."""
    step, total = run.step, run.total
    logged = step % run.cfg.log_every == 0 or step == total or step == 1
    if bar is not None:
        bar.update(1)
        if logged:
            pace = run.pace.record(run)
            bar.set_postfix_str(f"loss {float(loss):.3f}, {pace['units_per_s']:,.0f} {run.pace.unit}/s, "
                                f"MFU {100 * pace['mfu']:.1f}%")
    if logged:
        pace = run.pace.record(run)
        rec = {"event": "train", "step": step, "loss": float(loss), "lr": lr, "tokens": run.tokens,
               "flops": run.flops, "grad_norm": float(gnorm), **pace}
        logger.log(rec)
        if bar is None:
            run.console(f"[rins] step {step}/{total} loss {float(loss):.4f} lr {lr:.2e} {run.pace.line(pace)}")


# -- evaluate ----------------------------------------------------------------------------------


def _evaluate(run: _RunState, depths: list[int | None], eval_here: bool, logger: RunLogger, bar: Any) -> dict[str, Any]:
    """Evaluate at ``depths``, stop on a non-finite loss, log the result and print its line."""
    res = run.task.evaluate(run.model, depths) if eval_here else {}
    _check_eval(res, run.step, run.run_dir, run.cfg.dtype)
    if run.is_main:
        logger.log({"event": "eval", "step": run.step, "tokens": run.tokens, "flops": run.flops, **res})
        line = format_eval(run.step, run.total, res, getattr(run.core, "r_max", None))
        if bar is not None:
            bar.write(line, file=sys.stderr)  # above the bar, which stays on the last line
        else:
            run.console(line)
    if run.dist_ctx:
        run.dist_ctx.barrier()
    return res


# -- checkpoint --------------------------------------------------------------------------------


def _save(run: _RunState, stopping: bool, pre_decay: int | None) -> None:
    """Checkpoint every ``ckpt_every`` steps, at the end and before stopping; keep a WSD run's pre-decay state."""
    step = run.step
    if step % run.cfg.ckpt_every == 0 or step == run.total or stopping:
        _checkpoint(run, run.run_dir)
    if step == pre_decay and step < run.total:  # the state a longer run would share (rins train --extend)
        _checkpoint(run, run.run_dir / PRE_DECAY, keep_last=1)


def _checkpoint(run: _RunState, where: Path, keep_last: int | None = None) -> None:
    keep = run.cfg.keep_last if keep_last is None else keep_last
    meta = {"tokens": run.tokens, "flops": run.flops, "name": run.cfg.name}
    if run.dist_ctx:
        run.dist_ctx.save_checkpoint(where, run.step, run.model, run.opt, meta, keep)
        return
    save_checkpoint(where, run.step, run.core, run.opt, meta, keep_last=keep)


def _train_units(run: _RunState) -> int | None:
    """Tokens (or examples) in the training split, where the task says (``Task.train_units``)."""
    units = getattr(run.task, "train_units", None)
    return units() if callable(units) else None


def _summarise(run: _RunState, last_eval: dict[str, Any], seconds: float) -> dict[str, Any]:
    summary = {"name": run.cfg.name, "run_dir": str(run.run_dir), "signature": getattr(run.core.config, "signature",
                                                                                     None),
               "params": run.params, "steps": run.total, "tokens": run.tokens, "flops": run.flops,
               "flops_per_step": run.flops_per_step, "seconds": seconds, "complete": run.step >= run.total,
               **last_eval}
    split = _train_units(run)
    if split:  # how often the run saw its data: beyond a few passes a compute-matched comparison measures memory
        summary.update(train_units=split, passes=run.tokens / split)
    ident = getattr(run.task, "data_identity", None)
    if callable(ident) and ident() is not None:  # which data, with its source versions: comparable across machines
        summary["data_identity"] = ident()
    if run.is_main:
        write_run_summary_file(run.run_dir, summary)
    return summary


def core_config_dict(model: nn.Module) -> dict[str, Any] | None:
    """The model's config as saved into checkpoints (``model.config.to_dict()``), or None."""
    c = getattr(model, "config", None)
    return c.to_dict() if hasattr(c, "to_dict") else None


def _micro_batch(batch: Any, k: int, n: int) -> Any:
    """The k-th of n equal slices (along dim 0) of a batch (tensor, tuple/list or dict of tensors)."""
    if n == 1:
        return batch
    if isinstance(batch, torch.Tensor):
        size = batch.shape[0] // n
        return batch[k * size:(k + 1) * size]
    if isinstance(batch, tuple | list):
        return type(batch)(_micro_batch(b, k, n) for b in batch)
    if isinstance(batch, dict):
        return {key: _micro_batch(v, k, n) for key, v in batch.items()}
    return batch


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple | list):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


# ----------------------------------------------------------------------------------------------
# Data-parallel runs under torchrun (the parts below the trainer live in rins.distributed)


def run_distributed(cfg: TrainConfig, kind: str = "ddp", *, resume: bool = True, init_from: str | None = None,
                    stop_after: int | None = None, quiet: bool = False, mixed_precision: Any = None
                    ) -> dict[str, Any]:
    """Train ``cfg`` data-parallel (``kind``: ``"ddp"`` or ``"fsdp"``) on this process's rank; returns the run
    summary (rank 0's is complete).

    Initialises the process group from the torchrun environment if needed and destroys it afterwards
    only if it created it.
    """
    dev, created = init_from_env(cfg.device)
    try:
        ctx = DistContext(kind, dev, mixed_precision)
        return train(cfg, resume=resume, init_from=init_from, quiet=quiet, dist_ctx=ctx, stop_after=stop_after)
    finally:
        if created:
            dist.destroy_process_group()


def launch_train(cfg: TrainConfig, resume: bool = True, init_from: str | None = None, kind: str = "ddp",
                 stop_after: int | None = None) -> int:
    """Entry point of ``rins train --dist ddp|fsdp`` under torchrun; rank 0 prints the summary. Returns 0."""
    s = run_distributed(cfg, kind, resume=resume, init_from=init_from, stop_after=stop_after)
    if int(os.environ.get("RANK", 0)) == 0:
        print(json.dumps({k: s[k] for k in ("name", "steps", "tokens", "flops", "val_loss", "val_loss_r")
                          if k in s}, indent=1))
    return 0


class _CallableModule(types.ModuleType):
    """``rins.train`` is this module, and calling it runs :func:`train`: ``rins.train(cfg)`` works whether or not
    the submodule was imported first (an import binds the package attribute ``train`` to the module)."""

    def __call__(self, cfg: TrainConfig, **kwargs: Any) -> dict[str, Any]:
        return train(cfg, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
