"""The study's training steps, this code against an older commit, side by side in one run.

    .venv/bin/python benchmarks/vs_commit.py [--old ef16e0a] [--sweep configs/study-long.toml] [--sizes S,M]
        [--layout AB] [--procs 2] [--rounds 2] [--steps 40] [--set 'dtype="float32"']

Each side trains the sweep file's run through its own command line (``python -m rins.cli train``, the real
loop: data, autocast, compiled blocks, fused loss, clipping, AdamW), with the sweep's ``[base]``, the size's
fields and the layout passed identically to both as ``--set`` lines, as ``--procs`` concurrent processes of
``--threads`` threads each (the way ``rins sweep --procs 2 --threads 1`` fills a 2-core machine). The old side
is ``git archive``d from ``--old`` into a temporary folder and imported from there. Tokens/s is read from the
moments each process's ``log.jsonl`` train records appear, over the steps after ``--warmup`` (compilation and
data loading excluded; no evaluation or checkpoint falls in the window); the processes' rates are added. Sides
alternate old, new, new, old, … and the best round of each side is kept. The float32 or bf16 matmul peak (the
run's dtype, one thread) is measured in the same run for MFU; the load average is recorded before and after.
Writes the "Study steps against an older commit" section of BENCHMARKS.md (``--no-write``: print only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

ROOT = common.ROOT


def flatten(table: dict[str, Any], prefix: str = "") -> list[str]:
    """``KEY=VALUE`` lines (TOML values, JSON-encoded) for every leaf of a nested table."""
    out = []
    for k, v in table.items():
        if isinstance(v, dict):
            out += flatten(v, f"{prefix}{k}.")
        else:
            out.append(f"{prefix}{k}={json.dumps(v)}")
    return out


def study_overrides(sweep: Path, size: str, layout: str, extra: list[str]) -> tuple[str | None, list[str]]:
    """The preset and ``--set`` lines of the sweep's ``[base]`` + ``[sizes.SIZE]`` + layout (+ ``extra``)."""
    spec = tomllib.loads(sweep.read_text())
    base = dict(spec.get("base", {}))
    preset = base.pop("preset", None)
    sizes = spec.get("sizes", {})
    if size not in sizes:
        raise SystemExit(f"size {size!r} is not in {sweep} (its sizes: {', '.join(sizes) or 'none'})")
    return preset, [*flatten(base), *flatten(sizes[size], "model."), f"model.signature={json.dumps(layout)}", *extra]


def old_tree(commit: str, dest: Path) -> Path:
    """The files of ``commit`` (``git archive``) under ``dest``."""
    tar = dest / "old.tar"
    with open(tar, "wb") as fh:
        subprocess.run(["git", "-C", str(ROOT), "archive", commit], stdout=fh, check=True)
    tree = dest / "old"
    with tarfile.open(tar) as tf:
        tf.extractall(tree, filter="data")
    tar.unlink()
    return tree


def side_env(tree: Path, threads: int) -> dict[str, str]:
    """The environment that imports ``rins`` from ``tree`` (ahead of the installed package)."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(threads)}
    got = subprocess.run([sys.executable, "-c", "import rins; print(rins.__file__)"], cwd=tree, env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    if not Path(got).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"rins imports from {got}, not from {tree}: cannot time that tree")
    return env


def time_side(tree: Path, env: dict[str, str], preset: str | None, ov: list[str], procs: int, threads: int,
              steps: int, warmup: int, work: Path, tag: str) -> tuple[float, float]:
    """Train ``procs`` runs at once in ``tree``; (tokens/s added over the processes, seconds per step of one)."""
    runs, handles = [], []
    for i in range(procs):
        name = f"{tag}-{i}"
        cmd = [sys.executable, "-m", "rins.cli", "train", *(["--preset", preset] if preset else [])]
        for kv in [*ov, f"budget.steps={steps + warmup}", "n_evals=1", "eval_batches=1", "log_every=5",
                   f"ckpt_every={10**6}", "progress=false", f"threads={threads}", f"out_dir={json.dumps(str(work))}",
                   f"name={json.dumps(name)}"]:
            cmd += ["--set", kv]
        log = open(work / f"{name}.out", "w")  # noqa: SIM115
        handles.append(log)
        runs.append((subprocess.Popen(cmd, cwd=tree, env=env, stdout=log, stderr=subprocess.STDOUT),
                     work / name / "log.jsonl", {}))
    done = [0] * len(runs)  # bytes of each log already read: the poller parses only new, complete lines
    while any(p.poll() is None for p, _, _ in runs):  # note the moment each train record appears
        for i, (_, path, seen) in enumerate(runs):
            if not path.exists():
                continue
            with open(path, "rb") as fh:
                fh.seek(done[i])
                new = fh.read()
            whole = new[:new.rfind(b"\n") + 1]
            done[i] += len(whole)
            for line in whole.decode().splitlines():
                rec = json.loads(line)
                if rec.get("event") == "train":
                    seen.setdefault(rec["step"], (time.perf_counter(), rec["tokens"]))
        time.sleep(0.01)
    for h in handles:
        h.close()
    rates, per_step = [], []
    for p, path, seen in runs:
        if p.returncode != 0:
            raise SystemExit(f"{tag}: training failed (exit {p.returncode}); see {path.parent}.out")
        window = sorted(s for s in seen if warmup <= s < steps + warmup)  # the last record may share a moment
        if len(window) < 2:  # with the final evaluation's start
            raise SystemExit(f"{tag}: too few train records after warm-up ({len(window)}); raise --steps")
        (t0, n0), (t1, n1) = seen[window[0]], seen[window[-1]]
        rates.append((n1 - n0) / (t1 - t0))
        per_step.append((t1 - t0) / (window[-1] - window[0]))
    return sum(rates), sum(per_step) / len(per_step)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", default="ef16e0a", help="the commit to compare with (default: ef16e0a)")
    ap.add_argument("--sweep", type=Path, default=ROOT / "configs/study-long.toml",
                    help="the sweep file whose [base] and [sizes.*] define the runs (read from this tree)")
    ap.add_argument("--sizes", default="S,M")
    ap.add_argument("--layout", default="AB", help="model.signature of the timed run (default AB)")
    ap.add_argument("--procs", type=int, default=2, help="concurrent processes per side (default 2, as the sweep)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    ap.add_argument("--steps", type=int, default=40, help="timed steps per process (after --warmup)")
    ap.add_argument("--warmup", type=int, default=10, help="steps before timing (compilation, first batches)")
    ap.add_argument("--rounds", type=int, default=2, help="rounds; a round times each side once, order alternating")
    ap.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                    help="a field for both sides, after the sweep's (e.g. 'dtype=\"float32\"')")
    ap.add_argument("--no-write", action="store_true", help="print the table; leave BENCHMARKS.md alone")
    a = ap.parse_args()
    load0 = common.loadavg()
    new = ROOT
    with tempfile.TemporaryDirectory(prefix="rins-vs-commit-") as tmp:
        tmpd = Path(tmp)
        old = old_tree(a.old, tmpd)
        sides = {"old": (old, side_env(old, a.threads)), "new": (new, side_env(new, a.threads))}
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--",
                                "rins", "configs", "pyproject.toml"],  # the code and configs timed, not results
                               capture_output=True, text=True, check=True).stdout.strip()
        label = {"old": a.old, "new": head + (" + uncommitted code changes" if dirty else "")}
        rows, dtypes = [], set()
        for size in a.sizes.split(","):
            preset, ov = study_overrides(a.sweep, size, a.layout, a.extra)
            dtype = next((json.loads(kv.split("=", 1)[1]) for kv in reversed(ov) if kv.startswith("dtype=")),
                         "float32")
            dtypes.add(dtype)
            best: dict[str, tuple[float, float]] = {"old": (0.0, 0.0), "new": (0.0, 0.0)}
            every: dict[str, list[float]] = {"old": [], "new": []}
            for rnd in range(a.rounds):
                order = ("old", "new") if rnd % 2 == 0 else ("new", "old")
                for side in order:
                    tree, env = sides[side]
                    work = tmpd / f"{size}-{side}-{rnd}"
                    work.mkdir()
                    tps, sps = time_side(tree, env, preset, ov, a.procs, a.threads, a.steps, a.warmup, work,
                                         f"{size}-{side}")
                    every[side].append(tps)
                    best[side] = max(best[side], (tps, sps))
                    print(f"[bench] {size} {side} round {rnd + 1}: {tps:,.0f} tokens/s ({1e3 * sps:.0f} ms/step "
                          f"per process)", flush=True)
            rows.append((size, dtype, best, every))
        torch.set_num_threads(1)
        peaks = {dt: common.matmul_peak(getattr(torch, dt), seconds=0.5) for dt in dtypes}
    load1 = common.loadavg()
    table = []
    for size, dtype, best, every in rows:
        fpt = _flops_per_token(a.sweep, size, a.layout)
        mfu = {s: fpt * best[s][0] / (a.procs * a.threads * peaks[dtype]) for s in best}
        table.append([size, a.layout, dtype, *(f"{best[s][0]:,.0f} ({', '.join(f'{v:,.0f}' for v in every[s])})"
                                               for s in ("old", "new")),
                      f"{100 * mfu['old']:.1f}% / {100 * mfu['new']:.1f}%",
                      f"**{best['new'][0] / best['old'][0]:.2f}×**"])
    body = "\n".join([
        f"`rins train` on the sweep file `{os.path.relpath(a.sweep, ROOT)}`'s [base] and sizes, {a.procs} concurrent "
        f"process{'es' * (a.procs != 1)} × {a.threads} thread{'s' * (a.threads != 1)} per side, tokens/s added over "
        f"the processes over {a.steps} steps after {a.warmup} warm-up steps; best of {a.rounds} alternating rounds "
        f"(every round in brackets). old = `{label['old']}`, new = `{label['new']}`. Matmul peak in the same run, "
        f"one thread: {', '.join(f'{dt} {p / 1e9:.0f} GFLOP/s' for dt, p in peaks.items())} (MFU = FLOPs/token per "
        f"executed layer × tokens/s / (processes × threads × peak)). Machine: {common.machine()}. Load average "
        f"before / after: {load0} / {load1}.",
        "",
        common.table(["size", "layout", "dtype", "old tokens/s", "new tokens/s", "MFU old / new", "new / old"], table),
    ])
    print(body)
    if not a.no_write:
        common.update_section("vs-commit", "Study steps against an older commit", body)


def _flops_per_token(sweep: Path, size: str, layout: str) -> float:
    """Training FLOPs per token (per executed layer) of the sweep's run at ``size`` with ``layout``: this
    tree's task accounting, on the ``meta`` device (no data, no weights)."""
    from rins.config import load_config
    from rins.tasks import get_task

    preset, ov = study_overrides(sweep, size, layout, [])
    cfg = load_config(preset, None, ov)
    task = get_task(cfg, None)
    with torch.device("meta"):
        model = task.build_model()
    return task.flops_per_step(model, cfg.batch_size) / task.units_per_step(cfg.batch_size)


if __name__ == "__main__":
    main()
