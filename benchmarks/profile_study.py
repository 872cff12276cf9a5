"""Where a study training step spends its time: torch.profiler over the real ``rins.train`` loop.

    .venv/bin/python benchmarks/profile_study.py --size M --layout 'A^2B' [--steps 40] [--skip 20]

Builds the run as ``configs/study-long.toml`` does (its [base] and [sizes.*]: bf16, compiled blocks) on the sweep's
own corpus, on ``--threads`` threads (default 1, as the sweep's workers); ``--set KEY=VALUE`` overrides a field
(e.g. ``--set 'dtype="float32"' --set compile=false``). Profiles ``--steps`` optimizer steps after ``--skip``
warm-up steps (compilation) and prints the top operators by self CPU time, then by total CPU time (which puts the
step, forward and backward at the top).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import tomllib
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, record_function

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rins import train as train_mod  # noqa: E402
from rins.sweep import load_sweep  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sweep", default=str(ROOT / "configs/study-long.toml"))
    ap.add_argument("--size", default="M")
    ap.add_argument("--layout", default="A^2B")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--skip", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], help="override KEY=VALUE (TOML value), e.g. compile=false")
    ap.add_argument("--rows", type=int, default=30)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sw = load_sweep(a.sweep)
    spec = next(r for r in sw.runs if r.size == a.size and r.signature == a.layout and r.p_skip == 0)
    cfg = spec.train_config()
    out = Path(tempfile.mkdtemp())
    cfg.out_dir, cfg.name = str(out), "prof"
    cfg.budget.flops, cfg.budget.steps = None, a.skip + a.steps
    cfg.n_evals, cfg.ckpt_every, cfg.log_every = 1, 10**9, 50
    for kv in a.set:
        k, v = kv.split("=", 1)
        val = tomllib.loads(f"x = {v}")["x"]
        obj = cfg
        *path, last = k.split(".")
        for p in path:
            obj = getattr(obj, p)
        setattr(obj, last, val)
    orig = train_mod._optimise
    state = {"n": 0, "prof": None}

    def wrapped(run):
        state["n"] += 1
        if state["n"] == a.skip + 1:
            state["prof"] = profile(activities=[ProfilerActivity.CPU], record_shapes=False)
            state["prof"].__enter__()
        with record_function("## step"):
            res = orig(run)
        if state["n"] == a.skip + a.steps:
            state["prof"].__exit__(None, None, None)
        return res

    train_mod._optimise = wrapped
    train_mod.train(cfg, quiet=True)
    prof = state["prof"]
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=a.rows))
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=a.rows))


if __name__ == "__main__":
    main()
