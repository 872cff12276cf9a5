"""Shared helpers for the benchmark scripts: peak FLOP/s, timing, machine notes, BENCHMARKS.md sections.

Benchmarks are scripts, never timed tests. Each script measures its variants side by side in one
process and replaces its own section of ``BENCHMARKS.md`` (between ``<!-- begin:NAME -->`` and
``<!-- end:NAME -->``) with a table and the exact command that produced it.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH_MD = ROOT / "BENCHMARKS.md"

# Dense bf16 tensor-core peaks from the vendor datasheets (no sparsity), FLOP/s.
GPU_BF16_PEAK = {
    "H200": 989e12,
    "H100 SXM": 989e12,
    "H100 PCIe": 756e12,
    "H100 NVL": 835e12,
    "H100": 989e12,
    "A100": 312e12,
    "A10G": 70e12,
    "L4": 121e12,
    "L40S": 362e12,
}


def gpu_bf16_peak(name: str | None = None) -> float:
    """Datasheet bf16 peak of the current (or named) CUDA device; ValueError if unknown."""
    name = name or torch.cuda.get_device_name()
    for key in sorted(GPU_BF16_PEAK, key=len, reverse=True):
        if key.lower() in name.lower():
            return GPU_BF16_PEAK[key]
    raise ValueError(f"no datasheet bf16 peak for {name!r}; add it to GPU_BF16_PEAK")


def matmul_peak(dtype: torch.dtype = torch.bfloat16, sizes: tuple[int, ...] = (1024, 2048, 3072),
                seconds: float = 1.5, device: str = "cpu") -> float:
    """Measured matmul FLOP/s: the best of square matmuls of several sizes (each run ~``seconds``)."""
    best = 0.0
    for n in sizes:
        a = torch.randn(n, n, dtype=dtype, device=device)
        b = torch.randn(n, n, dtype=dtype, device=device)
        a @ b  # warm-up
        reps, t0 = 0, time.perf_counter()
        while True:
            a @ b
            reps += 1
            if device != "cpu":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            if dt > seconds:
                break
        best = max(best, 2 * n**3 * reps / dt)
    return best


def peak_flops(device: torch.device) -> tuple[float, str]:
    """(bf16 peak FLOP/s, how it was obtained): measured on CPU, datasheet on GPU."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return gpu_bf16_peak(name), f"datasheet bf16 dense peak of {name}"
    return matmul_peak(torch.bfloat16), "measured bf16 matmul peak (best of 1024/2048/3072 square matmuls)"


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine() -> str:
    """One line about the machine: CPU/GPU, cores, threads, torch version, load average."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{cpu} ({os.cpu_count()} cores, torch threads {torch.get_num_threads()}){gpu}, "
            f"torch {torch.__version__}, Python {platform.python_version()}")


def time_fn(fn: Callable[[], object], warmup: int, iters: int, sync: Callable[[], None] | None = None,
            repeats: int = 1) -> float:
    """Seconds per call: ``warmup`` calls, then the best (min) mean over ``repeats`` blocks of ``iters``."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        if sync:
            sync()
        best = min(best, (time.perf_counter() - t0) / iters)
    return best


def command_line() -> str:
    """The command that ran this script, relative to the repository root (as run: no lock wrapper is
    claimed; on a shared machine wrap it in ``flock /tmp/rins-cpu.lock``)."""
    argv = [os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]
    return ".venv/bin/python " + " ".join(shlex.quote(a) for a in argv)


def table(header: list[str], rows: list[list[object]]) -> str:
    """A markdown table."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def update_section(name: str, title: str, body: str, command: str | None = None, path: Path = BENCH_MD) -> None:
    """Replace (or append) the section ``name`` of BENCHMARKS.md with ``title`` + ``body`` + the command that
    produced it (default: this process's :func:`command_line`)."""
    begin, end = f"<!-- begin:{name} -->", f"<!-- end:{name} -->"
    body = f"{body.rstrip()}\n\nCommand: `{command or command_line()}`"
    block = f"{begin}\n## {title}\n\n{body}\n{end}"
    text = path.read_text() if path.exists() else (
        "# Benchmarks\n\nProduced by the scripts in `benchmarks/` (each rewrites its own section below). "
        "CPU timings are taken on a 2-core machine (run alone, or under `flock /tmp/rins-cpu.lock` when others "
        "share it); the load average at the time of each run is recorded with it. Figures vary ±15% between "
        "runs.\n\n")
    pat = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = pat.sub(lambda _: block, text) if pat.search(text) else text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
    print(f"[bench] updated section '{name}' of {path}")


# ----------------------------------------------------------------------------------------------
# Training steps (the loop of rins.train: autocast forward, fp32 cross-entropy, backward, clip, AdamW)

CPU_SMALL = dict(vocab_size=8192, n_layers=6, d_model=256, n_heads=4, max_seq_len=256)  # the cpu-small preset
CPU_SMALL_BATCH, CPU_SMALL_SEQ = 16, 256


def autocast_ctx(device: torch.device, dtype: str):
    import contextlib

    if dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def make_train_step(model: torch.nn.Module, dtype: str, device: torch.device, batch: int, seq: int,
                    vocab: int, fused: bool | None = None, lr: float = 1e-3,
                    logits_fn: Callable | None = None, r: int | None = None,
                    fused_loss: bool = False) -> Callable[[], float]:
    """A closure running one optimizer step of ``model`` on a fixed random batch; returns the loss.

    ``fused_loss`` (a :class:`rins.RecursiveLM` only): the loss comes from ``model(x, r, targets=y)`` (the
    chunked head + cross-entropy that ``rins.train`` uses); otherwise from ``F.cross_entropy`` over the
    float32 logits.
    """
    import torch.nn.functional as F

    model.train().to(device)
    groups = model.param_groups(0.1) if hasattr(model, "param_groups") else [
        {"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": 0.1},
        {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0}]
    if fused is None:
        fused = device.type == "cuda"
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95), fused=fused or None)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, vocab, (batch, seq), generator=g).to(device)
    y = torch.randint(0, vocab, (batch, seq), generator=g).to(device)
    logits_fn = logits_fn or (lambda m, t: m(t, r))

    def step() -> float:
        with autocast_ctx(device, dtype):
            if fused_loss:
                loss = model(x, r, targets=y)
            else:
                logits = logits_fn(model, x)
        if not fused_loss:
            loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    return step


def sync_fn(device: torch.device) -> Callable[[], None] | None:
    return torch.cuda.synchronize if device.type == "cuda" else None
