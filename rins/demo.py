"""``rins demo``: the baseline ``AB``, RINS ``A^2B`` and stochastic RINS + adapters, trained at the
same training FLOPs on the default corpus, evaluated at every inference depth; a table, a plot and a
JSON summary, reported as measured whichever variant wins."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .checkpoint import atomic_write_text
from .config import load_config
from .train import train

__all__ = ["DEMO_VARIANTS", "run_demo", "format_table", "plot_curves", "read_log"]

DEMO_VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("baseline AB", {"signature": "AB"}),
    ("RINS A^2B", {"signature": "A^2B"}),
    ("stoch. RINS A^2B p_s=0.5 + adapters", {"signature": "A^2B", "p_skip": 0.5, "adapters": "round"}),
]


def read_log(run_dir: str | Path, event: str = "eval") -> list[dict[str, Any]]:
    """Records of one kind from RUN_DIR/log.jsonl (the last record per step wins, for resumed runs)."""
    path = Path(run_dir) / "log.jsonl"
    by_step: dict[int, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line of a killed run
            if rec.get("event") == event:
                by_step[int(rec["step"])] = rec
    return [by_step[k] for k in sorted(by_step)]


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


def plot_curves(runs: list[tuple[str, str | Path]], out_png: str | Path, x: str = "flops",
                title: str = "held-out loss vs training FLOPs") -> None:
    """Plot validation loss (at the trained depth) against training FLOPs for several runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, rd in runs:
        recs = read_log(rd)
        if recs:
            ax.plot([r[x] for r in recs], [r["val_loss"] for r in recs], marker="o", ms=3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("training FLOPs" if x == "flops" else x)
    ax.set_ylabel("held-out loss (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)


def run_demo(out_dir: str | Path = "runs/demo", budget: float | None = None, preset: str = "cpu-small",
             corpus: str | None = None, overrides: list[str] | None = None, fresh: bool = False,
             variants: list[tuple[str, dict[str, Any]]] | None = None) -> dict[str, Any]:
    """Train every variant at the same training-FLOPs budget; write table.md, summary.json, curves.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    runs = []
    variants = variants or DEMO_VARIANTS
    for label, model_kw in variants:
        ov = list(overrides or [])
        ov += [f"model.{k}={v}" for k, v in model_kw.items()]
        ov += [f"out_dir={json.dumps(str(out))}", f"name={_slug(label)}"]
        if corpus:
            ov.append(f"data.corpus={json.dumps(corpus)}")
        if budget is not None:
            ov.append(f"budget.flops={budget}")
        cfg = load_config(preset, None, ov)
        print(f"\n=== {label} ===", flush=True)
        s = train(cfg, resume=not fresh)
        s["variant"] = label
        rows.append(s)
        runs.append((label, cfg.run_dir()))
    depths = sorted({int(k) for row in rows for k in row.get("val_loss_r", {})})
    table = format_table(rows, depths)
    base = rows[0]
    verdict = []
    for row in rows[1:]:
        best_r = min(row["val_loss_r"], key=lambda k: row["val_loss_r"][k]) if row["val_loss_r"] else None
        best = row["val_loss_r"][best_r] if best_r else row["val_loss"]
        delta = best - base["val_loss"]
        verdict.append(f"- {row['variant']}: best held-out loss {best:.4f} at r={best_r} vs baseline "
                       f"{base['val_loss']:.4f} ({'better' if delta < 0 else 'WORSE'} by {abs(delta):.4f} nats) "
                       f"at {row['flops'] / base['flops']:.3f}× the baseline's training FLOPs")
    text = ("## rins demo: compute-matched comparison\n\n" + table + "\n\n" + "\n".join(verdict) + "\n")
    print("\n" + text)
    atomic_write_text(out / "table.md", text)
    summary = {"rows": rows, "depths": depths}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1, default=str))
    plot_curves(runs, out / "curves.png")
    print(f"wrote {out / 'table.md'}, {out / 'summary.json'}, {out / 'curves.png'}")
    return summary


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower()).strip("-").replace("--", "-")
