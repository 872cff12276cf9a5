"""Where a live training process spends its time, from a py-spy sample of it: no second run, no instrumentation.

    py-spy record -p PID -r 20 -d 60 --native -f raw -o spy.txt     # PID: a `rins train` / `rins sweep` worker
    .venv/bin/python benchmarks/spy_breakdown.py spy.txt [--graphs /tmp/torchinductor_$USER]

py-spy (``pip install py-spy``, a separate tool, not a dependency) samples the process from outside at ``-r`` Hz,
so a study's worker can be profiled while it trains, at no cost to it beyond the sampling. This sorts the samples
of the training loop's thread (its stack holds ``_loop``; idle helper threads are left out) into kernel classes.
Native stacks through MKL often lose their middle frames, so a sample inside a compiled block is classed by the
line of Inductor's generated graph it stands on (read from ``--graphs``, the Inductor cache the run compiled
into): ``extern_kernels.mm`` / ``addmm`` / ``bmm`` are dense matmuls, the flash-attention ops attention (with the
GEMMs they call), ``cpp_fused_*`` the compiled elementwise kernels. Outside the compiled blocks, the sample's own
frames decide (loss head, AdamW, autograd's accumulation, Python). Prints each class's share of the samples.
"""

from __future__ import annotations

import argparse
import getpass
import re
import tempfile
from collections import Counter
from pathlib import Path

GRAPH_FRAME = re.compile(r"\(([A-Za-z0-9_]+\.py):(\d+)\)")


def _graph_line(frame: str, graphs: Path, cache: dict[str, list[str] | None]) -> str | None:
    """The source line of Inductor's generated graph a frame ``Runner.call (c3x...py:487)`` stands on."""
    m = GRAPH_FRAME.search(frame)
    if not m or not frame.startswith("Runner.call"):
        return None
    name, line = m.group(1), int(m.group(2))
    if name not in cache:
        hits = list(graphs.glob(f"*/{name}"))
        cache[name] = hits[0].read_text().splitlines() if hits else None
    lines = cache[name]
    return lines[line - 1] if lines and 0 < line <= len(lines) else None


def classify(stack: str, graphs: Path, cache: dict[str, list[str] | None]) -> str:
    """The kernel class of one sampled stack (frames joined by ';', outermost first)."""
    frames = stack.split(";")
    for f in reversed(frames):  # the innermost generated-graph line, if the sample is inside a compiled block
        src = _graph_line(f, graphs, cache)
        if src is None:
            continue
        if "flash_attention" in src:
            return "attention, backward (flash kernel)" if "backward" in src else "attention, forward (flash kernel)"
        if re.search(r"extern_kernels\.(mm|addmm|bmm|baddbmm)\(", src):
            return "dense matmuls in the blocks (GEMM)"
        if "cpp_fused" in src:
            return "compiled elementwise (norms, RoPE, SwiGLU, residuals)"
        return "other work in the blocks"
    if "flash_attention" in stack:
        return "attention, backward (flash kernel)" if "backward" in stack else "attention, forward (flash kernel)"
    if "losses.py" in stack:
        return "fused head + loss (its GEMMs included)"
    if "adam" in stack.lower():
        return "AdamW"
    leaf = frames[-1]
    if "gemm" in leaf or "mkl_blas" in leaf:
        return "other GEMMs (embedding gradient, ...)"
    if ".py:" in leaf:
        return "Python"
    return "other native code (autograd, copies, clipping)"


def breakdown(lines: list[str], graphs: Path, marker: str = "_loop") -> tuple[int, Counter]:
    """(samples of the thread whose stack holds ``marker``, class -> samples) from py-spy's raw lines."""
    total, out, cache = 0, Counter(), {}
    for line in lines:
        if not line.strip():
            continue
        stack, n = line.rstrip().rsplit(" ", 1)
        if marker in stack:
            total += int(n)
            out[classify(stack, graphs, cache)] += int(n)
    return total, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("raw", help="py-spy record -f raw output")
    ap.add_argument("--graphs", default=str(Path(tempfile.gettempdir()) / f"torchinductor_{getpass.getuser()}"),
                    help="Inductor's cache folder, where the run's generated graphs are (default: torch's own)")
    ap.add_argument("--marker", default="_loop", help="a frame name on the training thread's stack")
    a = ap.parse_args()
    total, out = breakdown(Path(a.raw).read_text().splitlines(), Path(a.graphs), a.marker)
    if not total:
        raise SystemExit(f"no sample of {a.raw} has a frame {a.marker!r}: was the process training?")
    print(f"{total} samples of the training thread")
    for name, n in out.most_common():
        print(f"{100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
