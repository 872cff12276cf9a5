"""The answer so far to "does RINS pay, and where?": per size, each recursive layout's compute-matched gap to `AB`
at every budget measured (paired by seed, ± 2 SE), and the verdict — the first budget where it is measured below
`AB`, or the largest where it is still behind. RESULTS.md's "crossing_answer" block.

    .venv/bin/python tools/crossing_answer.py            # prints the block
    .venv/bin/python tools/crossing_answer.py --write    # rewrites it in RESULTS.md

Budgets up to 4e14 are the long study's (results/study-long: bf16, each layout's main runs, rate scans left out);
larger ones are configs/crossing-fp32.toml's (results/crossing-fp32: float32, each layout at its best rate), marked
"fp32": the gap between two layouts trained in the same precision is compared, never a loss across precisions.
A gap counts as measured below `AB` when its paired mean + 2 SE is below zero (2+ seeds), or, on one seed, when it
is negative (said so); "tie not excluded" when the interval of 2+ seeds holds zero.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rins.study_report import paired_diff  # noqa: E402
from tools import crossing_fp32  # noqa: E402
from tools.blocks import write_block  # noqa: E402

STUDY = ROOT / "results" / "study-long"
FP32 = ROOT / "results" / "crossing-fp32"
BLOCK = "crossing_answer"
LAYOUTS = ("A^2B", "AB^2C", "A^3B p_s=0.5 + round adapters", "(AB)^2", "A^3B")  # the study's, closest first


def _study_seeds(folder: Path, size: str) -> dict[float, dict[str, dict[int, float]]]:
    """budget -> label -> seed -> loss of the study's main runs (bf16) at ``size``."""
    out: dict[float, dict[str, dict[int, float]]] = {}
    for p in sorted(folder.glob(f"{size}_*.json")):
        s = json.loads(p.read_text())
        if s.get("format") != "rins-run-summary/1" or s.get("size") != size or s.get("lr_scan"):
            continue
        label = crossing_fp32._label(s["config"])
        out.setdefault(float(s["budget"]), {}).setdefault(label, {})[int(s["config"]["seed"])] = float(s["val_loss"])
    return out


def _fp32_seeds(folder: Path, size: str) -> dict[float, dict[str, dict[int, float]]]:
    """budget -> label -> seed -> loss of the float32 runs at ``size``, each layout at its best rate."""
    return {b: {label: {k: float(s["val_loss"]) for k, s in seeds.items()}
                for label, seeds in crossing_fp32.load_seeds(folder, size, b).items()}
            for b in crossing_fp32.budgets(folder, size)}


def gap(layout: dict[int, float], ab: dict[int, float]) -> tuple[float, float | None, int] | None:
    """(mean paired Δ, 2 SE or None on one seed, seeds) over the seeds both have; None without a common seed."""
    mean, se, d = paired_diff(layout, ab)
    if not d:
        return None
    return mean, (2 * se if len(d) > 1 else None), len(d)


def _budget(b: float) -> str:
    return f"{b:g}".replace("e+", "e")


def _cell(g: tuple[float, float | None, int] | None) -> str:
    if g is None:
        return ""
    mean, se2, n = g
    return f"{mean:+.3f} (1)" if se2 is None else f"{mean:+.3f} ± {se2:.3f} ({n})"


def verdict(points: list[tuple[str, tuple[float, float | None, int]]]) -> str:
    """The first budget measured below `AB`, else where it stands at the largest budget measured."""
    for budget, (mean, se2, n) in points:
        if se2 is not None and mean + se2 < 0:
            return f"**below `AB` from {budget}** ({mean:+.3f} ± {se2:.3f}, {n} seeds)"
        if se2 is None and mean < 0:
            return f"**below `AB` at {budget} on one seed** ({mean:+.3f}); more seeds to confirm"
    budget, (mean, se2, n) = points[-1]
    if se2 is not None and mean - se2 < 0:
        return f"below `AB` at no budget; at {budget} {mean:+.3f} ± {se2:.3f} ({n} seeds): a tie not excluded"
    return f"behind at every budget measured, up to {budget} ({mean:+.3f}, {n} seed{'s' if n > 1 else ''})"


def block(study: Path = STUDY, fp32: Path = FP32) -> str:
    """The markdown block: one table per size."""
    parts, below = [], []
    for size in ("S", "M"):
        cols = [(_budget(b), data) for b, data in sorted(_study_seeds(study, size).items())]
        cols += [(f"{_budget(b)} fp32", data) for b, data in sorted(_fp32_seeds(fp32, size).items())]
        if not cols:
            continue
        rows = []
        for label in LAYOUTS:
            gaps = [(name, gap(data.get(label, {}), data.get("AB", {}))) for name, data in cols]
            measured = [(name, g) for name, g in gaps if g is not None]
            if not measured:
                continue
            v = verdict(measured)
            if v.startswith("**below"):
                below.append(f"`{label}` at size {size}")
            rows.append(f"| `{label}` | " + " | ".join(_cell(g) for _, g in gaps) + f" | {v} |")
        head = "| layout | " + " | ".join(name for name, _ in cols) + " | verdict |"
        parts.append(f"**Size {size}** (Δ = layout − `AB`, nats, paired by seed; ± 2 SE (seeds)):\n\n{head}\n"
                     + "|---" * (len(cols) + 2) + "|\n" + "\n".join(rows) + "\n")
    head = ("**Measured below `AB`: " + ", ".join(below) + ".**" if below else
            "**Nothing has crossed yet: no recursive layout is measured below `AB` at any budget, at either size.**")
    return head + "\n\n" + "\n".join(parts)


def main() -> None:
    if "--write" not in sys.argv:
        print(block())
        return
    path = ROOT / "RESULTS.md"
    path.write_text(write_block(path.read_text(), BLOCK, block()))
    print(f"wrote the {BLOCK} block of {path}")


if __name__ == "__main__":
    main()
