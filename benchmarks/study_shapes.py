"""Training throughput at the long study's shapes (small d, where CPU efficiency is worst), to choose how
the study runs: dtype, compile, batch, threads per process, and processes per machine.

    .venv/bin/python benchmarks/study_shapes.py [--steps 4] [--repeats 3]

Shapes: `S` and `M` of ``configs/study-long.toml`` (L=6, d=64 / 128, V=1024, T=256). In one process, every
variant is timed round-robin (best round kept) with 1 and 2 torch threads; then the best 1-thread
variant runs as two concurrent processes (one thread each) and their tokens/s are added — the way
``rins sweep --procs 2`` uses a 2-core machine. The bf16 matmul peak is measured in the same run with
the same thread counts, and MFU = model FLOPs/token (per executed layer) × tokens/s / that peak.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from rins.model import LMConfig, RecursiveLM  # noqa: E402

SHAPES = {"S": {"d_model": 64, "n_heads": 2}, "M": {"d_model": 128, "n_heads": 4}}
BASE = {"n_layers": 6, "vocab_size": 1024, "max_seq_len": 256}
T = 256


def stepper(shape: str, dtype: str, compile_blocks: bool, batch: int):
    torch.manual_seed(0)
    m = RecursiveLM(LMConfig(**BASE, **SHAPES[shape]))
    if compile_blocks:
        for blk in m.stack.blocks:
            blk.compile(dynamic=False)
    fpt = m.flops_per_token(T, training=True)
    return common.make_train_step(m, dtype, torch.device("cpu"), batch, T, BASE["vocab_size"], fused=True,
                                  fused_loss=True), fpt


def child(a: argparse.Namespace) -> None:
    """One process of the two-process measurement: prints its best tokens/s as JSON."""
    torch.set_num_threads(1)
    fn, _ = stepper(a.shape, a.dtype, a.compile, a.batch)
    common.time_fn(fn, 3, 1)
    best = min(common.time_fn(fn, 0, a.steps) for _ in range(a.repeats))
    print(json.dumps({"tps": a.batch * T / best}))


def two_procs(shape: str, dtype: str, comp: bool, batch: int, steps: int, repeats: int) -> float:
    cmd = [sys.executable, __file__, "--child", "--shape", shape, "--dtype", dtype, "--batch", str(batch),
           "--steps", str(steps), "--repeats", str(repeats)] + (["--compile"] if comp else [])
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [p.communicate()[0] for p in procs]
    return sum(json.loads(o.strip().splitlines()[-1])["tps"] for o in outs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shapes", default="S,M")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--shape", default="S", help=argparse.SUPPRESS)
    ap.add_argument("--dtype", default="bfloat16", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=16, help=argparse.SUPPRESS)
    ap.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a)
        return
    load0 = common.loadavg()
    variants = [("float32", False, 16), ("bfloat16", False, 16), ("bfloat16", True, 16), ("bfloat16", False, 32),
                ("float32", False, 32)]
    peaks, rows = {}, []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        peaks[threads] = common.matmul_peak(torch.bfloat16, seconds=0.5)
    for shape in a.shapes.split(","):
        for threads in (1, 2):
            torch.set_num_threads(threads)
            fns = {}
            for dt, comp, batch in variants:
                fns[(dt, comp, batch)] = stepper(shape, dt, comp, batch)
                common.time_fn(fns[(dt, comp, batch)][0], 3, 1)
            best = {k: float("inf") for k in fns}
            for _ in range(a.repeats):
                for k, (fn, _) in fns.items():
                    best[k] = min(best[k], common.time_fn(fn, 0, a.steps))
            peaks[threads] = max(peaks[threads], common.matmul_peak(torch.bfloat16, seconds=0.5))
            for (dt, comp, batch), s in best.items():
                tps = batch * T / s
                fpt = fns[(dt, comp, batch)][1]
                rows.append([shape, f"1 × {threads}", dt.replace("bfloat", "bf").replace("float", "fp"),
                             "yes" if comp else "no", batch, f"{tps:,.0f}", f"{fpt * tps / 1e9:.1f}",
                             f"{100 * fpt * tps / peaks[threads]:.1f}%"])
                print("[bench]", rows[-1], flush=True)
        # two single-thread processes, the best 1-thread variant of this shape
        one = [r for r in rows if r[0] == shape and r[1] == "1 × 1"]
        top = max(one, key=lambda r: float(r[5].replace(",", "")))
        dt = "bfloat16" if top[2] == "bf16" else "float32"
        tps = two_procs(shape, dt, top[3] == "yes", int(top[4]), a.steps, a.repeats)
        fpt = stepper(shape, dt, False, 1)[1]
        rows.append([shape, "2 × 1", top[2], top[3], top[4], f"{tps:,.0f}", f"{fpt * tps / 1e9:.1f}",
                     f"{100 * fpt * tps / peaks[2]:.1f}%"])
        print("[bench]", rows[-1], flush=True)
    load1 = common.loadavg()
    body = [
        "Shapes of `configs/study-long.toml` (L=6, V=1024, T=256; S: d=64, M: d=128), the full optimizer step "
        "of `rins.train` (autocast, fused head + loss, backward, clipping, fused AdamW). `procs × threads`: "
        "`1 × k` is one process with k torch threads; `2 × 1` is two concurrent single-thread processes "
        "(tokens/s added), as `rins sweep --procs 2 --threads 1` runs.",
        f"bf16 matmul peak, same run: {peaks[1] / 1e9:.0f} GFLOP/s with 1 thread, {peaks[2] / 1e9:.0f} with 2 "
        f"(MFU of `1 × 1` rows uses the first, all others the second). Machine: {common.machine()}. "
        f"Load average before / after: {load0} / {load1}.",
        "",
        common.table(["shape", "procs × threads", "dtype", "compile", "batch", "tokens/s", "GFLOP/s", "MFU"], rows),
    ]
    print("\n".join(body))
    if not a.no_write:
        common.update_section("study-shapes", "Training throughput at the long study's shapes", "\n".join(body))


if __name__ == "__main__":
    main()
