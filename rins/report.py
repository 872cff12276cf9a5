"""``rins report``: a Markdown report with tables, plots and plain-words verdicts from trained runs.

Input: run directories (``config.json`` + ``log.jsonl`` + ``summary.json``), committed run summaries
(``results/<study>/<run>.json``, :mod:`rins.runs`), or folders holding either (a sweep's ``out_dir`` or
``results_dir``): the report needs nothing but the summaries. Output (``--out DIR``): ``report.md``,
``report.json`` (every number the report states, by section) and PNG plots. ``report.md`` holds, in order:

1. the runs found (and the incomplete ones left out) and a summary: one line per claim with its verdict;
2. every run (params, steps, tokens, realised training FLOPs, final loss), with a compute-matching check;
3. the study section (:mod:`rins.study_report`): the learning-rate scan, then per model size the loss of every
   layout at every budget (mean ± sd over seeds), where RINS crosses below ``AB``, the out-of-sample checks,
   the loss at equal tokens and the evaluations on other data;
4. loss vs training FLOPs per layout (a plot per size and budget, final loss vs budget, a table);
5. the six claims (:mod:`rins.claims`, docs/method.md §9), each with a verdict computed from the numbers:
   RINS vs AB, RAO and middle at equal FLOPs; the best depth r by size and budget; the ranking of all
   layouts; scaling-law fits (β, c, ε∞); stochastic RINS at every inference depth; no-regret at r = 1;
6. with ``--adaptive-evals``: loss against FLOPs per token for adaptive depth (:mod:`rins.adaptive_report`).

Differences smaller than ``--margin`` nats (default 0.01) are called ties, not wins: one seed and a
few thousand held-out tokens cannot resolve less.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from .claims import (
    CLAIMS,
    best_depth_by_size_and_budget,
    layout_ranking,
    no_regret_at_depth_one,
    rins_vs_other_families,
    scaling_law_fits,
    stochastic_depth_tradeoff,
)
from .plots import plot_curves, plot_finals, run_color
from .runs import RunInfo, family, group_runs, load_runs
from .study_report import study_section
from .tables import budget_label, format_count, format_float, md_table

__all__ = ["build_report", "add_report_arguments", "cmd_report"]


# ----------------------------------------------------------------------------------------------
# Sections (the claims' are in rins.claims, the study's in rins.study_report)


def _runs_section(runs: list[RunInfo]) -> tuple[str, dict[str, Any]]:
    rows = []
    for r in sorted(runs, key=lambda r: (r.size, r.budget or 0, r.family != "baseline", r.name)):
        rows.append([r.name, r.layout, r.family, r.size, format_count(r.params), budget_label(r.budget),
                     format_count(r.steps), format_count(r.tokens), f"{r.flops:.3g}" if r.flops else "n/a",
                     format_float(r.val_loss)])
    dev = []
    for r in runs:
        if r.budget:
            dev.append(abs(r.flops - r.budget) / r.budget)
    worst = max(dev) if dev else math.nan
    text = ("## Runs\n\n" + md_table(["run", "layout", "family", "size", "params", "budget (FLOPs)", "steps",
                                       "tokens", "realised train FLOPs", "final loss"], rows) + "\n\n")
    if dev:
        text += (f"Compute matching: every run trains for `budget.flops` FLOPs counted per executed layer "
                 f"application (training = 3 × forward, expected cost for stochastic depth); the largest "
                 f"deviation of realised from budgeted FLOPs is **{100 * worst:.1f}%** (under one optimizer step, "
                 "plus the random depth draws of stochastic runs).\n\n")
    return text, {"max_rel_flops_deviation": worst, "n_runs": len(runs)}


def _curves_section(runs: list[RunInfo], out: Path, x: str) -> tuple[str, dict[str, Any]]:
    text = "## Loss vs training compute, per layout\n\n"
    data: dict[str, Any] = {}
    named = [r for r in runs if r.deterministic and r.family != "other"]
    for (size,), rs in sorted(group_runs(named, "size").items()):
        budgets = sorted({r.budget for r in rs if r.budget})
        for b in budgets:
            at = sorted((r for r in rs if r.budget == b), key=lambda r: (r.cost, r.signature))
            png = out / f"curves_{size}_C{b:.3g}.png"
            plot_curves([(f"{r.layout} [{r.family}]", r.curve, run_color(r)) for r in at], png, x=x,
                        title=f"{size}: held-out loss vs {x} at budget {b:.3g} FLOPs")
            text += f"![loss vs {x}, {size}, budget {b:.3g}]({png.name})\n\n"
        if len(budgets) > 1:
            png = out / f"finals_{size}.png"
            plot_finals(rs, png, f"{size}: final held-out loss vs training budget")
            text += f"![final loss vs budget, {size}]({png.name})\n\n"
        layouts = sorted({(r.family != "baseline", r.cost, r.signature, r.degree) for r in rs})
        head = ["layout", "family", "cost ×"] + [f"loss @ {b:.3g}" for b in budgets]
        best = {b: min(r.val_loss for r in rs if r.budget == b) for b in budgets}
        rows = []
        for _, cost, sig, deg in layouts:
            cells = []
            for b in budgets:
                m = [r for r in rs if r.signature == sig and r.degree == deg and r.budget == b]
                v = m[0].val_loss if m else None
                cells.append("–" if v is None else (f"**{v:.4f}**" if v == best[b] else f"{v:.4f}"))
                data.setdefault(size, {}).setdefault(sig, {})[budget_label(b)] = v
            rows.append([sig, family(sig, deg), f"{cost:.2f}"] + cells)
        text += (f"Final held-out loss (nats/token, trained depth) of the named layouts, model {size} "
                 "(best per budget in bold; `cost ×` = executed layers / distinct layers):\n\n"
                 + md_table(head, rows) + "\n\n")
    return text, data


# ----------------------------------------------------------------------------------------------
# Driver


def build_report(paths: list[str | Path], out: str | Path, x: str = "flops", margin: float = 0.01,
                 n_boot: int = 200, title: str = "RINS study report",
                 adaptive_evals: list[str | Path] | None = None) -> dict[str, Any]:
    """Write ``report.md``, ``report.json`` and PNG plots for the runs under ``paths`` into ``out``;
    ``adaptive_evals`` (``rins eval --adaptive --json`` files) add loss against FLOPs per token for adaptive
    depth (:mod:`rins.adaptive_report`)."""
    if x not in ("flops", "tokens"):
        raise ValueError(f"x must be 'flops' or 'tokens', got {x!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    all_runs, skipped = load_runs(paths)
    if not all_runs:
        raise ValueError(f"no complete run found under {[str(p) for p in paths]}")
    scan = [r for r in all_runs if r.lr_scan]
    holdout = [r for r in all_runs if r.holdout and not r.lr_scan]
    every_seed = [r for r in all_runs if not (r.lr_scan or r.holdout)]
    runs = _seed_means(every_seed)  # the claims compare layouts by their mean over seeds
    n_seeds = max((len({r.seed for r in every_seed if r.key[:-1] == q.key[:-1]}) for q in runs), default=0)
    parts = [f"# {title}\n\n{len(all_runs)} complete runs from {', '.join(str(p) for p in paths)}"
             + (f" ({len(scan)} of them a learning-rate scan)" if scan else "")
             + (f" ({len(holdout)} out-of-sample check(s), left out of the fits and claims)" if holdout else "")
             + (f"; {len(skipped)} incomplete run(s) left out: {', '.join(skipped)}" if skipped else "") + ".\n"
             f"Loss = held-out next-token cross-entropy (nats/token). Ties: |Δ| ≤ {margin} nats."
             + (f" Layouts with several seeds (up to {n_seeds}) enter the claims by their mean." if n_seeds > 1 else "")
             + "\n\n"]
    data: dict[str, Any] = {"x": x, "margin": margin}
    sections = [
        ("runs", lambda: _runs_section(every_seed + scan + holdout)),
        ("study", lambda: study_section(every_seed, scan, n_boot, margin, holdout)),
        ("curves", lambda: _curves_section(runs, out, x)),
        ("claim1", lambda: rins_vs_other_families(runs, margin)),
        ("claim2", lambda: best_depth_by_size_and_budget(runs, margin)),
        ("claim3", lambda: layout_ranking(runs, out, margin)),
        ("claim4", lambda: scaling_law_fits(runs, x, n_boot, margin)),
        ("claim5", lambda: stochastic_depth_tradeoff(runs, out, margin)),
        ("claim6", lambda: no_regret_at_depth_one(runs, margin)),
    ]
    if adaptive_evals:
        from .adaptive_report import adaptive_section

        sections.append(("adaptive", lambda: adaptive_section(adaptive_evals, out, margin)))
    summary = []
    for key, fn in sections:
        t, d = fn()
        parts.append(t)
        data[key] = d
        if key in CLAIMS:
            found = [ln.removeprefix("Verdict: ").removeprefix("- ") for ln in t.splitlines()
                     if ln.startswith(("Verdict:", "Not tested"))]
            summary.append(f"- **{CLAIMS[key]}**: " + (" / ".join(found) or "no verdict"))
            data[key]["summary"] = found
    parts.insert(1, "## Summary (docs/method.md §9)\n\n" + "\n".join(summary) + "\n\n")
    data["runs"] = [{"name": r.name, "run_dir": str(r.run_dir), "layout": r.layout, "family": r.family,
                     "signature": r.signature, "degree": r.degree, "p_skip": r.p_skip, "adapters": r.adapters,
                     "size": r.size, "budget": r.budget, "seed": r.seed, "params": r.params, "steps": r.steps,
                     "tokens": r.tokens, "flops": r.flops, "val_loss": r.val_loss, "val_loss_r": r.val_loss_r}
                    for r in all_runs]
    text = "".join(parts)
    (out / "report.md").write_text(text)
    (out / "report.json").write_text(json.dumps(data, indent=1, default=_json_default))
    return {"text": text, "data": data, "out": str(out)}


def _seed_means(runs: list[RunInfo]) -> list[RunInfo]:
    """One run per grid point over seeds: the lowest seed's record with the mean final losses."""
    import dataclasses

    groups: dict[tuple, list[RunInfo]] = defaultdict(list)
    for r in runs:
        groups[(*r.key[:-1], r.budget)].append(r)
    out = []
    for rs in groups.values():
        rs = sorted(rs, key=lambda r: r.seed)
        if len(rs) == 1:
            out.append(rs[0])
            continue
        keys = set.intersection(*(set(r.val_loss_r) for r in rs))
        out.append(dataclasses.replace(rs[0], n_seeds=len(rs), val_loss=sum(r.val_loss for r in rs) / len(rs),
                                       val_loss_r={k: sum(r.val_loss_r[k] for r in rs) / len(rs) for k in keys}))
    return out


def _json_default(o: Any) -> Any:
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):
        return o.item()
    return str(o)


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``rins report`` (on the sub-parser :mod:`rins.cli` builds), run by :func:`cmd_report`."""
    p.description = "Markdown report with plots and verdicts from runs."
    p.add_argument("paths", nargs="+", help="run directories or folders of run directories (a sweep out_dir)")
    p.add_argument("--out", required=True, help="output folder for report.md, report.json and PNGs")
    p.add_argument("--x", choices=("flops", "tokens"), default="flops", help="abscissa of curves and fits")
    p.add_argument("--margin", type=float, default=0.01, help="loss differences ≤ this (nats) are ties")
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples of the fits")
    p.add_argument("--title", default="RINS study report", help="the report's heading")
    p.add_argument("--adaptive-evals", nargs="+", default=None, metavar="JSON",
                   help="files of `rins eval RUN --adaptive ... --json`: adds loss against FLOPs per token, fixed "
                   "r as points and adaptive depth as curves, paired over seeds")
    p.set_defaults(func=cmd_report)


def cmd_report(a: argparse.Namespace) -> int:
    """``rins report RUNS_OR_SWEEP_DIR... --out DIR [--x flops|tokens] [--margin M] [--n-boot N]``: 0 when the
    report was written, 2 when there was nothing to report (message on stderr)."""
    try:
        res = build_report(a.paths, a.out, a.x, a.margin, a.n_boot, a.title, a.adaptive_evals)
    except (ValueError, FileNotFoundError) as e:
        print(f"rins report: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {Path(res['out']) / 'report.md'} ({len(res['data']['runs'])} runs)")
    return 0
