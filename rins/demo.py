"""``rins demo``: the baseline ``AB``, RINS ``A^2B`` and stochastic RINS ``A^3B`` + adapters, trained at the
same training FLOPs on the default corpus, evaluated at every inference depth; a table, a plot and a
JSON summary, reported as measured whichever variant wins.

Its shape is size S of the long-training study (``configs/study-long.toml``: L = 6, d = 64, BPE 1024,
bf16, compiled blocks, each layout at its scanned learning rate) at one of the study's budgets, 2.2e13
FLOPs: ``AB`` takes ~1,500 steps, so the comparison is between trained models, not first steps.

On a CPU with two or more cores the three runs train at once, as separate single-thread processes (the study's
finding: tiny models use one core each far better than one run uses several); the demo prints their progress
from their logs, and each run's own output goes to ``OUT/<run>.out``.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .config import load_config
from .hardware import BF16_EMULATED, native_bf16
from .plots import model_color, plot_curves
from .runfiles import atomic_write_text
from .runs import is_complete, read_log
from .stopping import forward_stop_signals, own_process_group
from .tables import format_table
from .train import train

__all__ = ["DEMO_VARIANTS", "demo_procs", "run_demo"]

DEMO_VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("baseline AB", {"signature": "AB"}),
    ("RINS A^2B", {"signature": "A^2B"}),
    ("stoch. RINS A^3B p_s=0.5 + adapters", {"signature": "A^3B", "p_skip": 0.5, "adapters": "round"}),
]

# The demo's default shape: size S of the long-training study (configs/study-long.toml) on preset
# cpu-small, at the study's 2.2e13-FLOPs budget. A test keeps the two in step.
DEMO_PRESET = "cpu-small"
DEMO_SHAPE: dict[str, Any] = {
    "model.n_layers": 6, "model.d_model": 64, "model.n_heads": 2, "model.max_seq_len": 256, "model.adapter_rank": 4,
    "data.vocab_size": 1024, "data.seq_len": 256, "batch_size": 16, "dtype": "bfloat16", "compile": True,
    "n_evals": 12, "eval_batches": 16, "optim.lr": 4e-3, "optim.warmup_frac": 0.05, "budget.flops": 2.2e13,
}
# Each signature trains at its own optimum from the study's learning-rate scan (deterministic recursion
# prefers half of AB's rate: its weights are applied, and updated through, r times); demo shape only.
DEMO_LR: dict[str, float] = {"A^2B": 2e-3}


def demo_dtype() -> str:
    """The demo's dtype: bf16 (the study's) where matmuls run it natively, float32 on a CPU that would emulate it
    at ~1% of float32 speed (:mod:`rins.hardware`)."""
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    return str(DEMO_SHAPE["dtype"]) if native_bf16(dev) else "float32"


def demo_overrides(preset: str | None, model_kw: dict[str, Any]) -> list[str]:
    """``--set`` lines for one demo variant: the study's shape and learning rate when no preset is named."""
    ov = [f"model.{k}={v}" for k, v in model_kw.items()]
    if preset is None:
        ov = [f"{k}={json.dumps(v)}" for k, v in {**DEMO_SHAPE, "dtype": demo_dtype()}.items()] + ov
        if model_kw.get("p_skip", 0) == 0 and model_kw.get("signature") in DEMO_LR:
            ov.append(f"optim.lr={DEMO_LR[model_kw['signature']]}")
    return ov


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def demo_procs(n_runs: int, device: str | None = None, cores: int | None = None) -> int:
    """How many runs the demo trains at once: all of them on a CPU with two or more cores (single-thread
    processes; with more runs than cores the OS shares the cores, which still beats running them in turn), one
    at a time on a GPU or a single core."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    cores = cpu_cores() if cores is None else cores
    return 1 if device != "cpu" or cores < 2 else n_runs


def run_demo(out_dir: str | Path = "runs/demo", budget: float | None = None, preset: str | None = None,
             corpus: str | None = None, overrides: list[str] | None = None, fresh: bool = False,
             variants: list[tuple[str, dict[str, Any]]] | None = None, procs: int | None = None,
             poll_s: float = 30.0) -> dict[str, Any]:
    """Train every variant at the same training-FLOPs budget; write table.md, summary.json, curves.png.

    ``preset=None``: the demo's own shape (:data:`DEMO_SHAPE`, size S of the long-training study); a named
    preset is used as it is. ``overrides`` (``KEY=VALUE``) apply to every run, after the shape.
    ``procs``: runs trained at once, each in its own process with ``max(1, cores // procs)`` threads (unless
    ``overrides`` set ``threads``); default :func:`demo_procs`. ``poll_s``: seconds between progress lines."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    variants = variants or DEMO_VARIANTS
    base_preset = preset or DEMO_PRESET
    procs = demo_procs(len(variants)) if procs is None else procs
    if procs < 1:
        raise ValueError(f"procs must be 1 or more (runs trained at once), got {procs}")
    if budget is None:  # every demo is compute-matched: a preset's step/token budget becomes the FLOPs of AB
        budget = _flops_budget(load_config(base_preset, None, [*demo_overrides(preset, variants[0][1]),
                                                                *(overrides or [])]))
    if preset is None and demo_dtype() != DEMO_SHAPE["dtype"]:
        print(f"[rins demo] float32 instead of the study's bf16: {BF16_EMULATED.split(';')[0]}", flush=True)
    cfgs = []
    for label, model_kw in variants:
        ov = demo_overrides(preset, model_kw)
        if procs > 1:  # before the user's overrides, which may set threads themselves
            ov.append(f"threads={max(1, cpu_cores() // procs)}")
        ov += [*(overrides or []), f"out_dir={json.dumps(str(out))}", f"name={_slug(label)}"]
        if corpus:
            ov.append(f"data.corpus={json.dumps(corpus)}")
        ov.append(f"budget.flops={budget}")
        cfgs.append((label, load_config(base_preset, None, ov)))
    if procs > 1:
        _train_at_once(cfgs, procs, fresh, out, poll_s)
        fresh = False  # trained above: the loop below reads the finished runs' summaries
    rows = []
    runs = []
    for label, cfg in cfgs:
        if procs == 1:
            print(f"\n=== {label} ===", flush=True)
        s = train(cfg, resume=not fresh, quiet=procs > 1)
        s["variant"] = label
        rows.append(s)
        model = cfg.model if isinstance(cfg.model, dict) else cfg.model.to_dict()
        runs.append((label, cfg.run_dir(), model_color(model)))
    depths = sorted({int(k) for row in rows for k in row.get("val_loss_r", {})})
    table = format_table(rows, depths)
    base = rows[0]
    verdict = []
    for row in rows[1:]:
        best_r = min(row["val_loss_r"], key=lambda k: row["val_loss_r"][k]) if row["val_loss_r"] else None
        best = row["val_loss_r"][best_r] if best_r else row["val_loss"]
        delta = best - base["val_loss"]
        verdict.append(f"- {row['variant']}: best held-out loss {best:.4f} at r={best_r} vs baseline "
                       f"{base['val_loss']:.4f} ({'better' if delta < 0 else 'WORSE'} by {abs(delta):.4f} nats) "
                       f"at {row['flops'] / base['flops']:.3f}× the baseline's training FLOPs")
    text = ("## rins demo: compute-matched comparison\n\n" + table + "\n\n" + "\n".join(verdict) + "\n")
    print("\n" + text)
    atomic_write_text(out / "table.md", text)
    summary = {"rows": rows, "depths": depths}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, default=str))
    plot_curves([(label, read_log(run_dir), color) for label, run_dir, color in runs], out / "curves.png")
    print(f"wrote {out / 'table.md'}, {out / 'summary.json'}, {out / 'curves.png'}")
    return summary


def _train_child(cfg: Any, resume: bool, out_file: str) -> None:
    """One demo run in a worker process; its console output goes to ``out_file``. The worker is in its own
    process group: stop signals reach it once, forwarded by the parent (:mod:`rins.stopping`)."""
    own_process_group()
    with open(out_file, "a", encoding="utf-8") as fh:
        os.dup2(fh.fileno(), 1)
        os.dup2(fh.fileno(), 2)
        sys.stdout = sys.stderr = open(1, "w", encoding="utf-8", buffering=1, closefd=False)  # noqa: SIM115
        train(cfg, resume=resume)


def _train_at_once(cfgs: list[tuple[str, Any]], procs: int, fresh: bool, out: Path, poll_s: float) -> None:
    """Train the runs of ``cfgs`` that are not complete in up to ``procs`` worker processes; print their
    progress from their logs every ``poll_s`` seconds. A failed run raises, naming its output file; Ctrl-C
    lets every run checkpoint, then raises :class:`KeyboardInterrupt`."""
    todo = [(label, cfg) for label, cfg in cfgs if fresh or not is_complete(cfg.run_dir())]
    if not todo:
        return
    waiting, running, t0 = list(todo), [], time.time()
    threads = todo[0][1].threads
    print(f"[rins demo] training {len(todo)} runs, {min(procs, len(todo))} at once ({threads} thread"
          f"{'s' * (threads != 1)} each); each run's output: {out}/<run>.out", flush=True)
    with forward_stop_signals(lambda: [p.pid for _, _, p, _ in running if p.is_alive() and p.pid], "rins demo") \
            as stopped:
        try:
            _watch(waiting, running, procs, fresh, out, poll_s, t0, stopped)
        finally:  # stopped, or one run failed: the others checkpoint at their step end (or are ended) first
            for _, _, p, _ in running:
                p.join(timeout=120)
                if p.is_alive():
                    p.terminate()
    if stopped():
        raise KeyboardInterrupt


def _watch(waiting: list[tuple[str, Any]], running: list[tuple[str, Any, Any, Path]], procs: int, fresh: bool,
           out: Path, poll_s: float, t0: float, stopped: Callable[[], bool]) -> None:
    """Start the ``waiting`` runs, up to ``procs`` at once, and report each as it ends, until every run is done
    or ``stopped()``; a failed run raises (after asking the others to stop), naming its output file."""
    ctx = mp.get_context("spawn")  # a fresh interpreter: no forked torch thread pools or locks
    last, seen = 0.0, {}
    while (waiting or running) and not stopped():
        while waiting and len(running) < procs:
            label, cfg = waiting.pop(0)
            out_file = out / f"{cfg.name}.out"
            p = ctx.Process(target=_train_child, args=(cfg, not fresh, str(out_file)), name=cfg.name)
            p.start()
            running.append((label, cfg, p, out_file))
        time.sleep(min(1.0, poll_s))
        for item in list(running):
            label, cfg, p, out_file = item
            if p.is_alive():
                continue
            running.remove(item)
            if p.exitcode != 0:
                for _, _, q, _ in running:  # the others checkpoint at their step end and stop
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(q.pid, signal.SIGINT)
                tail = out_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-5:]
                raise RuntimeError(f"demo run {label!r} failed (exit code {p.exitcode}); its output is in "
                                   f"{out_file}, ending:\n" + "\n".join(tail))
            ev = read_log(cfg.run_dir(), "eval")
            print(f"[rins demo] {label}: done after {time.time() - t0:.0f} s"
                  + (f", held-out loss {ev[-1]['val_loss']:.4f}" if ev and "val_loss" in ev[-1] else ""),
                  flush=True)
        if running and time.time() - last >= poll_s:
            last = time.time()
            print(f"[rins demo] {_progress([(lb, c) for lb, c, _, _ in running], t0, seen)}", flush=True)


def _progress(running: list[tuple[str, Any]], t0: float, seen: dict[str, tuple[float, int]]) -> str:
    """``elapsed 1m30s: baseline AB 500/1539, ... steps; ETA 4m10s`` from the running runs' logs. The ETA is
    each run's remaining steps at its rate since the previous line (``seen``: name -> (time, step), updated),
    so the compile and data preparation at the start do not inflate it."""
    parts, etas, now = [], [], time.time()
    for label, cfg in running:
        start, tr = read_log(cfg.run_dir(), "start"), read_log(cfg.run_dir(), "train")
        total = start[-1].get("steps") if start else None
        step = tr[-1]["step"] if tr else 0
        parts.append(f"{label} {step}/{total if total else '?'}")
        t_prev, s_prev = seen.get(cfg.name, (now, step))
        if total and step > s_prev:
            etas.append((total - step) * (now - t_prev) / (step - s_prev))
        if step > s_prev or cfg.name not in seen:
            seen[cfg.name] = (now, step)
    eta = f"; ETA {_mmss(max(etas))}" if etas and len(etas) == len(running) else ""
    return f"elapsed {_mmss(now - t0)}: " + ", ".join(parts) + f" steps{eta}"


def _mmss(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m}m{s:02d}s"


def _flops_budget(cfg) -> float:
    """The training FLOPs of ``cfg``'s budget (for a budget in steps or tokens: what the model spends)."""
    import torch

    from .schedule import plan_steps
    from .tasks import get_task

    if cfg.budget.flops is not None:
        return float(cfg.budget.flops)
    task = get_task(cfg, None)
    with torch.device("meta"):
        model = task.build_model()
    fps = task.flops_per_step(model, cfg.batch_size)
    return float(plan_steps(cfg, fps, task.units_per_step(cfg.batch_size)) * fps)


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-").replace("--", "-")
