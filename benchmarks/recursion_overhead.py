"""Recursion overhead: time per executed-layer FLOP of ``A^rB`` vs a plain model with as many executed
layers (unshared weights). Target ratio ≤ 1.03.

``A^2B`` on 6 layers executes 9 layer applications, so it is compared with a plain 9-layer ``AB``;
``A^3B`` (12 applications) with a plain 12-layer model. Both have identical FLOPs per token (checked),
so the ratio is the ratio of step times. Full training steps at the cpu-small shape, timed round-robin.
Usage::

    flock /tmp/rins-cpu.lock .venv/bin/python benchmarks/recursion_overhead.py [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from rins.model import LMConfig, RecursiveLM  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rs", default="2,3", help="recursion exponents to test")
    ap.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--batch", type=int, default=common.CPU_SMALL_BATCH)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    B, T, V = a.batch, common.CPU_SMALL_SEQ, common.CPU_SMALL["vocab_size"]
    L = common.CPU_SMALL["n_layers"]
    load0 = common.loadavg()
    pairs = []
    for r in (int(x) for x in a.rs.split(",")):
        n_exec = (L // 2) * r + L - L // 2
        pairs.append((f"A^{r}B (L={L})", {"signature": f"A^{r}B"}, f"plain AB (L={n_exec})",
                      {"signature": "AB", "n_layers": n_exec,
                                                            "block_sizes": (n_exec - n_exec // 2, n_exec // 2)}))
    models, steppers = {}, {}
    for rec, rec_kw, plain, plain_kw in pairs:
        for label, kw in ((rec, rec_kw), (plain, plain_kw)):
            torch.manual_seed(0)
            m = RecursiveLM(LMConfig(**{**common.CPU_SMALL, **kw}))
            models[label] = m
            steppers[label] = common.make_train_step(m, a.dtype, dev, B, T, V, fused_loss=True)  # as rins.train
            common.time_fn(steppers[label], 2, 1, common.sync_fn(dev))
    best = {k: float("inf") for k in steppers}
    for _ in range(a.repeats):
        for label, fn in steppers.items():
            best[label] = min(best[label], common.time_fn(fn, 0, a.steps, common.sync_fn(dev)))
    load1 = common.loadavg()
    rows, ok = [], True
    for rec, _, plain, _ in pairs:
        fr = models[rec].flops_per_token(T, training=True)
        fp = models[plain].flops_per_token(T, training=True)
        assert abs(fr - fp) < 1e-6 * fp, (fr, fp)
        ratio = (best[rec] / fr) / (best[plain] / fp)
        ok &= ratio <= 1.03
        n_rec, n_plain = models[rec].num_parameters() / 1e6, models[plain].num_parameters() / 1e6
        rows.append([rec, plain, f"{n_rec:.2f} M / {n_plain:.2f} M",
                     f"{fr / 1e6:.1f} M", f"{best[rec] * 1e3:.0f}", f"{best[plain] * 1e3:.0f}", f"{ratio:.3f}"])
        print("[bench]", rows[-1], flush=True)
    body = "\n".join([
        f"Full training steps, {a.dtype} {'autocast' if a.dtype == 'bfloat16' else ''} eager, batch {B} × T {T}, "
        f"cpu-small widths. Ratio = (step time / FLOPs per token) of the recursive model over that of the plain "
        f"model with the same executed layers (best of {a.repeats} rounds of {a.steps} steps, round-robin).",
        f"Machine: {common.machine()}. Load average before / after: {load0} / {load1}.",
        "",
        common.table(["recursive", "plain (unshared)", "params rec / plain", "train FLOPs/token",
                      "rec ms/step", "plain ms/step", "time per FLOP ratio"], rows),
        "",
        f"Target ratio ≤ 1.03: **{'met' if ok else 'not met'}**.",
    ])
    if not a.no_write:
        common.update_section(f"recursion-overhead-{dev.type}", f"Recursion overhead ({dev.type})", body)


if __name__ == "__main__":
    main()
