"""Attention kernels at the cpu-small shape: ``F.scaled_dot_product_attention`` vs ``rins.model.eager_attention``.

Times one causal attention forward + backward per layer (batch 16, 4 heads, T = 256, head_dim 64) in
float32 and bf16, eager and under ``torch.compile``, round-robin (best of ``--repeats`` rounds), and the
largest gradient error of each against a float64 reference. This is the measurement behind
``attn_impl="auto"`` (eager attention for bf16 on CPU). Usage::

    flock /tmp/rins-cpu.lock .venv/bin/python benchmarks/attention.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from rins.model import eager_attention  # noqa: E402


def sdpa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def eager(q, k, v):
    return eager_attention(q, k, v, None, True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=5, help="calls per timed round")
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds (best kept)")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    B, H, T, D = common.CPU_SMALL_BATCH, common.CPU_SMALL["n_heads"], common.CPU_SMALL_SEQ, 64
    g = torch.Generator().manual_seed(0)
    base = [torch.randn(B, H, T, D, generator=g, dtype=torch.float64) for _ in range(4)]
    q64, k64, v64 = (t.clone().requires_grad_() for t in base[:3])
    sdpa(q64, k64, v64).backward(base[3])
    ref = [t.grad for t in (q64, k64, v64)]
    load0 = common.loadavg()

    calls, errors = {}, {}
    for dt in (torch.float32, torch.bfloat16):
        q, k, v = (t.to(dev, dt).requires_grad_() for t in base[:3])
        go = base[3].to(dev, dt)
        for name, fn in (("SDPA (flash)", sdpa), ("eager", eager)):
            for compiled in (False, True):
                f = torch.compile(fn, dynamic=False) if compiled else fn

                def call(f=f, q=q, k=k, v=v, go=go):
                    for t in (q, k, v):
                        t.grad = None
                    f(q, k, v).backward(go)

                key = (str(dt).removeprefix("torch."), name, "compiled" if compiled else "eager mode")
                call()
                errors[key] = max((t.grad.double().cpu() - r).abs().max().item() for t, r in zip((q, k, v), ref))
                calls[key] = call
    best = {k: float("inf") for k in calls}
    for _ in range(a.repeats):
        for key, fn in calls.items():
            best[key] = min(best[key], common.time_fn(fn, 1, a.iters, common.sync_fn(dev)))
    load1 = common.loadavg()
    rows = [[*key, f"{best[key] * 1e3:.1f}", f"{errors[key]:.4f}"] for key in calls]
    for r in rows:
        print("[bench]", r, flush=True)
    body = "\n".join([
        f"One causal attention forward + backward, batch {B} × {H} heads × T {T} × head_dim {D} (one cpu-small "
        f"layer); best of {a.repeats} rounds of {a.iters} calls, round-robin. Gradient error: largest absolute "
        "difference of dq, dk, dv from a float64 SDPA reference.",
        f"Machine: {common.machine()}. Load average before / after: {load0} / {load1}.",
        "",
        common.table(["dtype", "kernel", "mode", "ms per layer (fwd + bwd)", "grad error vs float64"], rows),
    ])
    if not a.no_write:
        common.update_section(f"attention-{dev.type}", f"Attention kernels ({dev.type})", body)


if __name__ == "__main__":
    main()
