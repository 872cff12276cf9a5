"""The answer so far to "does RINS pay, and where?": per size, each recursive layout's compute-matched gap to `AB`
at every budget measured (paired by seed, ± 2 SE), and the verdict — the first budget where it is measured below
`AB`, or the largest where it is still behind. RESULTS.md's "crossing_answer" block, and its short form (one row per
layout: the gap at the largest budget and the verdict) in the README's "crossing_answer_short" block.

    .venv/bin/python tools/crossing_answer.py            # prints the blocks
    .venv/bin/python tools/crossing_answer.py --write    # rewrites them in RESULTS.md and the README

Budgets up to 4e14 are the long study's (results/study-long: bf16, each layout's main runs, rate scans left out);
larger ones are configs/crossing-fp32.toml's (results/crossing-fp32: float32, each layout at its best rate), marked
"fp32": the gap between two layouts trained in the same precision is compared, never a loss across precisions.
A gap counts as measured below `AB` when its paired mean + 2 SE is below zero (2+ seeds). A gap on one seed is
judged against the seed spread: 2 SD of the paired gap over the seeds of the nearest smaller budget (else any) with
2+ seeds, same size and layout; a negative one-seed gap beyond it is "below `AB` on one seed", within it "level with
`AB`" (a tie, not a crossing). "A tie not excluded" where the interval (or the one-seed spread) holds zero.
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
SHORT = "crossing_answer_short"  # the README's
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


def spreads(points: list[tuple[str, tuple[float, float | None, int]]]) -> list[tuple[float, str] | None]:
    """Per point, (2 SD of one seed's paired gap, the budget it was measured at) for a one-seed point: from the
    nearest smaller budget with 2+ seeds, else the nearest larger one; None for points of 2+ seeds or where no
    budget has 2+ seeds."""
    multi = [(k, budget, se2 * n ** 0.5) for k, (budget, (_, se2, n)) in enumerate(points) if se2 is not None]
    out: list[tuple[float, str] | None] = []
    for k, (_, (_, se2, _)) in enumerate(points):
        if se2 is not None or not multi:
            out.append(None)
            continue
        before = [m for m in multi if m[0] < k]
        _, budget, sd2 = before[-1] if before else multi[0]
        out.append((sd2, budget))
    return out


def verdict(points: list[tuple[str, tuple[float, float | None, int]]]) -> tuple[str, str]:
    """(verdict, kind): the first budget measured below `AB` (kind "below", or "one seed" on one seed beyond
    the seed spread or where none is known), else a one-seed gap below zero within the seed spread ("level"),
    else where it stands at the largest budget measured ("behind")."""
    level, spread_of = None, spreads(points)
    for (budget, (mean, se2, n)), spread in zip(points, spread_of, strict=True):
        if se2 is not None and mean + se2 < 0:
            return f"**below `AB` from {budget}** ({mean:+.3f} ± {se2:.3f}, {n} seeds)", "below"
        if se2 is None and mean < 0:
            if spread is None:
                return f"**below `AB` at {budget} on one seed** ({mean:+.3f}); more seeds to confirm", "one seed"
            sd2, at = spread
            if mean + sd2 < 0:
                return (f"**below `AB` at {budget} on one seed** ({mean:+.3f}, beyond the ±{sd2:.3f} seed spread "
                        f"measured at {at}); more seeds to confirm", "one seed")
            level = (f"**level with `AB` at {budget}** on one seed ({mean:+.3f}, within the ±{sd2:.3f} seed spread "
                     f"measured at {at}): a tie, not yet a crossing; more seeds to decide", "level")
    if level is not None and points[-1][1][0] < 0:
        return level
    (budget, (mean, se2, n)), spread = points[-1], spread_of[-1]
    if se2 is not None and mean - se2 < 0:
        return (f"below `AB` at no budget; at {budget} {mean:+.3f} ± {se2:.3f} ({n} seeds): a tie not excluded",
                "behind")
    if spread is not None and mean - spread[0] < 0:
        return (f"below `AB` at no budget; at {budget} {mean:+.3f} on one seed, within the ±{spread[0]:.3f} seed "
                f"spread measured at {spread[1]}: a tie not excluded", "behind")
    return f"behind at every budget measured, up to {budget} ({mean:+.3f}, {n} seed{'s' if n > 1 else ''})", "behind"


def _sizes(study: Path, fp32: Path) -> list[tuple[str, list[str], list[tuple[str, list, str, str]]]]:
    """Per size with runs: (size, budget column names, [(layout, its gap per column, verdict, kind)])."""
    out = []
    for size in ("S", "M"):
        cols = [(_budget(b), data) for b, data in sorted(_study_seeds(study, size).items())]
        cols += [(f"{_budget(b)} fp32", data) for b, data in sorted(_fp32_seeds(fp32, size).items())]
        if not cols:
            continue
        rows = []
        for label in LAYOUTS:
            gaps = [(name, gap(data.get(label, {}), data.get("AB", {}))) for name, data in cols]
            measured = [(name, g) for name, g in gaps if g is not None]
            if measured:
                rows.append((label, gaps, *verdict(measured)))
        out.append((size, [name for name, _ in cols], rows))
    return out


def headline(sizes: list[tuple[str, list[str], list[tuple[str, list, str, str]]]]) -> str:
    """The answer in a sentence: which layouts are below or level with `AB` where, or that nothing has crossed."""
    found: dict[str, list[str]] = {}
    for size, _, rows in sizes:
        for label, _, _, kind in rows:
            if kind != "behind":
                found.setdefault(kind, []).append(f"`{label}` at size {size}")
    if not found:
        return "**Nothing has crossed yet: no recursive layout is measured below `AB` at any budget, at either size.**"
    said = {"below": "**Measured below `AB`** (over seeds)", "one seed": "**Below `AB` on one seed**",
            "level": "**Level with `AB` on one seed**, within the seed spread (a tie, not yet a crossing)"}
    return (("" if "below" in found else "No recursive layout is yet measured below `AB` over seeds. ")
            + " ".join(f"{said[k]}: {', '.join(found[k])}." for k in said if k in found))


def block(study: Path = STUDY, fp32: Path = FP32) -> str:
    """The markdown block of RESULTS.md: the headline, then one table per size (every budget)."""
    sizes = _sizes(study, fp32)
    parts = []
    for size, cols, rows in sizes:
        head = "| layout | " + " | ".join(cols) + " | verdict |"
        body = [f"| `{label}` | " + " | ".join(_cell(g) for _, g in gaps) + f" | {v} |" for label, gaps, v, _ in rows]
        parts.append(f"**Size {size}** (Δ = layout − `AB`, nats, paired by seed; ± 2 SE (seeds)):\n\n{head}\n"
                     + "|---" * (len(cols) + 2) + "|\n" + "\n".join(body) + "\n")
    return headline(sizes) + "\n\n" + "\n".join(parts)


def _short(v: str, kind: str) -> str:
    """A verdict in a few words (the README's table gives the gap next to it)."""
    if kind == "below":
        return v.split(" (", 1)[0]  # "**below `AB` from BUDGET**"
    if kind == "one seed":
        return "**below `AB` on one seed**: more seeds to confirm"
    if kind == "level":
        return "**level** on one seed, within the seed spread: a tie"
    return "behind, a tie not excluded" if "tie not excluded" in v else "behind"


def summary(study: Path = STUDY, fp32: Path = FP32) -> str:
    """The README's short block: the headline and one row per size and layout (its gap at the largest budget
    measured, and the verdict)."""
    sizes = _sizes(study, fp32)
    rows = ["| size | layout | Δ vs `AB` at the largest budget measured (seeds) | verdict |", "|---|---|---|---|"]
    for size, _, layouts in sizes:
        for label, gaps, v, kind in layouts:
            name, last = [(name, g) for name, g in gaps if g is not None][-1]
            rows.append(f"| {size} | `{label}` | {name}: {_cell(last)} | {_short(v, kind)} |")
    return headline(sizes) + "\n\n" + "\n".join(rows) + "\n"


def main() -> None:
    if "--write" not in sys.argv:
        print(block() + "\n" + summary())
        return
    for name, blk, make in (("RESULTS.md", BLOCK, block), ("README.md", SHORT, summary)):
        path = ROOT / name
        path.write_text(write_block(path.read_text(), blk, make()))
        print(f"wrote the {blk} block of {path}")


if __name__ == "__main__":
    main()
