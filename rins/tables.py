"""Markdown tables and number formats of ``rins report``'s sections (:mod:`rins.report`, :mod:`rins.claims`)
and of ``rins demo``'s table. Pure Python."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["budget_label", "format_count", "format_float", "format_table", "md_table"]


def md_table(head: list[str], rows: list[list[str]]) -> str:
    """A Markdown table: the header row, the rule, one line per row (no trailing newline)."""
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def format_float(v: float | None, digits: int = 4) -> str:
    """``v`` with ``digits`` decimals; "–" for a missing or non-finite value."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{digits}f}"


def format_count(v: int | None) -> str:
    """A count for a table; a field the run did not record (0 / None) is "n/a", not a made-up 0."""
    return f"{v:,}" if v else "n/a"


def budget_label(b: float | None) -> str:
    """A FLOPs budget as ``3e+13`` (three significant digits); "?" when the run has none."""
    return "?" if b is None else f"{b:.3g}"


def format_table(rows: list[dict[str, Any]], depths: list[int]) -> str:
    """Markdown table: one row per variant, held-out loss at every depth r (best per column in bold).

    A model without recursion (e.g. ``AB``) has one loss whatever r is asked for; it fills every column."""

    def at(row: dict[str, Any], r: int) -> float | None:
        by_r = row.get("val_loss_r") or {}
        return by_r.get(str(r)) if by_r else row.get("val_loss")

    head = "| variant | params | steps | tokens | train FLOPs | " + " | ".join(f"loss r={r}" for r in depths) + " |"
    sep = "|" + "---|" * (5 + len(depths))
    best = {r: min((v for row in rows if (v := at(row, r)) is not None), default=math.inf) for r in depths}
    lines = [head, sep]
    for row in rows:
        cells = []
        for r in depths:
            v = at(row, r)
            if v is None:
                cells.append("–")
            else:
                cells.append(f"**{v:.4f}**" if v == best[r] else f"{v:.4f}")
        lines.append(f"| {row['variant']} | {row['params']:,} | {row['steps']:,} | {row['tokens']:,} | "
                     f"{row['flops']:.3g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
