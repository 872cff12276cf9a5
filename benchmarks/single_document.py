"""Time and peak memory of preparing ONE large single-line text file (issue #28: it used to be quadratic).

    nice -n 10 .venv/bin/python benchmarks/single_document.py --mb 2 4 8 16 --vocab-size 300

For each size a file of one line (``'the quick brown fox jumps '`` repeated) is written and prepared as
``rins train --data.corpus FILE`` does (``prepare_data``: split, BPE training on the train split, token
files), each size in a fresh process so that its peak resident memory (``ru_maxrss``) is its own. Prints a
Markdown table and draws seconds and peak memory against the file size (``--plot``, a PNG).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
from rins.data import prepare_data
t0 = time.perf_counter()
b = prepare_data(sys.argv[1], cache_dir=sys.argv[2], vocab_size=int(sys.argv[3]))
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_mib": ru.ru_maxrss / 1024,
                  "cpu_s": ru.ru_utime + ru.ru_stime,
                  "tokens": b.meta["n_train_tokens"] + b.meta["n_val_tokens"]}))
"""


def measure(mb: float, vocab_size: int, workdir: Path) -> dict:
    """Prepare a single-line file of ``mb`` MB in a fresh process; its seconds, peak MiB and tokens."""
    path = workdir / f"one-{mb:g}MB.txt"
    unit = "the quick brown fox jumps "
    path.write_text(unit * round(mb * 1e6 / len(unit)))
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(workdir / f"cache-{mb:g}"), str(vocab_size)],
                         capture_output=True, text=True, check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    path.unlink()
    return {"mb": mb, **row}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, nargs="+", default=[2, 4, 8, 16], help="file sizes in MB (1e6 bytes)")
    ap.add_argument("--vocab-size", type=int, default=300)
    ap.add_argument("--plot", default="docs/single_document.png", help="PNG to draw ('' for none)")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mb in a.mb:
            rows.append(measure(mb, a.vocab_size, Path(tmp)))
            r = rows[-1]
            print(f"{mb:g} MB: {r['seconds']:.1f} s wall, {r['cpu_s']:.1f} s CPU,"
                  f" peak {r['peak_mib']:.0f} MiB, {r['tokens']:,} tokens", flush=True)
    print(f"\ncommand: {shlex.join([Path(sys.executable).name, *sys.argv])}\n")
    print("| file (MB, one line) | wall (s) | CPU (s) | CPU s per MB | peak RSS (MiB) | tokens |\n"
          "|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mb']:g} | {r['seconds']:.1f} | {r['cpu_s']:.1f} | {r['cpu_s'] / r['mb']:.2f} | "
              f"{r['peak_mib']:.0f} | {r['tokens']:,} |")
    if a.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
        mbs = [r["mb"] for r in rows]
        ax[0].plot(mbs, [r["cpu_s"] for r in rows], "o-", label="CPU time")
        ax[0].plot(mbs, [r["seconds"] for r in rows], "s:", color="C2", label="wall time (shared machine)")
        k = rows[0]["cpu_s"] / rows[0]["mb"]
        ax[0].plot(mbs, [k * m for m in mbs], "--", color="gray", label="linear from the smallest")
        ax[0].set(xlabel="single-line file (MB)", ylabel="prepare_data (s)", title="time", ylim=(0, None))
        ax[0].legend()
        ax[1].plot(mbs, [r["peak_mib"] for r in rows], "o-", color="C1")
        ax[1].set(xlabel="single-line file (MB)", ylabel="peak RSS (MiB)", title="memory (whole process)",
                  ylim=(0, None))
        fig.suptitle(f"prepare_data on one single-line document (vocab {a.vocab_size})")
        fig.tight_layout()
        fig.savefig(a.plot, dpi=110)
        print(f"wrote {a.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
