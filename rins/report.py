"""``rins report``: a Markdown report with tables, plots and plain-words verdicts from trained runs.

Input: run directories (``config.json`` + ``log.jsonl`` + ``summary.json``), committed run summaries
(``results/<study>/<run>.json``, :mod:`rins.runs`), or folders holding either (a sweep's ``out_dir`` or
``results_dir``): the report needs nothing but the summaries. Output (``--out DIR``): ``report.md``,
``report.json`` (every number the report states) and PNG plots. Sections, each with a verdict computed
from the numbers (docs/method.md §9):

1. every run (params, steps, tokens, realised training FLOPs), with a compute-matching check;
2. loss vs training FLOPs per layout, and the final loss of every layout at every budget;
3. claim 1: RINS ``A^rB`` vs ``AB``, RAO ``(AB)^r`` and middle ``AB^rC`` at equal FLOPs;
4. claim 2: the best recursion depth r per model size and budget;
5. claim 3: the ranking of all layouts at the budget with the most layouts, by family;
6. claim 4: scaling-law fits (β, c, ε∞) with bootstrap CIs and the extrapolation error;
7. claim 5: loss vs inference depth r for stochastic RINS at several p_s;
8. claim 6: stochastic RINS + adapters at r = 1 vs the compute-matched baseline (no-regret).

Differences smaller than ``--margin`` nats (default 0.01) are called ties, not wins: one seed and a
few thousand held-out tokens cannot resolve less.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .runs import RunRecord, find_runs, read_run

__all__ = ["RunInfo", "family", "load_runs", "build_report", "add_report_arguments", "cmd_report",
           "format_table", "plot_curves"]

CLAIMS = {
    "claim1": "1. RINS beats AB, RAO and middle at equal FLOPs",
    "claim2": "2. best r depends on size and budget",
    "claim3": "3. RINS near the top of the layout ranking",
    "claim4": "4. RINS has lower ε∞ and larger c",
    "claim5": "5. stochastic RINS: flexibility vs peak",
    "claim6": "6. no-regret at r = 1 with adapters",
}
# One colour per layout in every figure (report, demo, benchmarks): the plain layouts by family and depth, the
# stochastic ones in pink (no adapters) or dark brown (adapters) shades that darken with p_s.
_LAYOUT_COLORS = {"AB": "black", "A^2B": "tab:red", "A^3B": "tab:orange", "A^4B": "darkred",
                  "(AB)^2": "tab:blue", "(AB)^3": "navy", "AB^2C": "tab:green", "AB^3C": "darkgreen",
                  "(ABC)^2": "tab:purple", "ABA": "tab:cyan"}
_OTHER_COLORS = ("tab:gray", "tab:olive", "tab:cyan", "slateblue", "teal", "goldenrod")


def layout_color(signature: str, degree: int = 1, p_skip: float = 0.0, adapters: str = "none") -> Any:
    """The colour of a layout, the same in every rins figure (a layout keeps its colour across plots)."""
    if p_skip > 0 or adapters != "none":
        from matplotlib import colormaps

        p = min(max(p_skip, 0.0), 1.0)
        if adapters == "none":
            return colormaps["RdPu"](0.45 + 0.5 * p)
        return colormaps["YlOrBr"](0.75 + 0.25 * p)  # dark browns: apart from A^3B's orange
    if degree == 1 and signature in _LAYOUT_COLORS:
        return _LAYOUT_COLORS[signature]
    import zlib

    return _OTHER_COLORS[zlib.crc32(f"{signature}@{degree}".encode()) % len(_OTHER_COLORS)]


_FAMILY_RE = [
    ("baseline", re.compile(r"^AB$")),
    ("RINS", re.compile(r"^A\^(\d+)B$")),
    ("RAO", re.compile(r"^\(AB\)\^(\d+)$")),
    ("middle", re.compile(r"^AB\^(\d+)C$")),
    ("cycle", re.compile(r"^\(ABC\)\^(\d+)$")),
]


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


def plot_curves(curves: list[tuple], out_png: str | Path, x: str = "flops",
                title: str = "held-out loss vs training FLOPs") -> None:
    """Plot held-out loss (at the trained depth) against training FLOPs (or ``x``) for several runs, each
    given as ``(label, eval records)`` (:func:`rins.runs.read_log`, or a run summary's ``curve``) or
    ``(label, eval records, colour)`` (:func:`layout_color`); the legend sits beside the axes."""
    fig, ax = _new_figure()
    for label, recs, *color in curves:
        recs = [r for r in recs if r.get(x) is not None and r.get("val_loss") is not None]
        if recs:
            ax.plot([r[x] for r in recs], [r["val_loss"] for r in recs], marker="o", ms=3, label=label,
                    color=color[0] if color else None)
    log_axis(ax, "x")
    ax.set_xlabel("training FLOPs" if x == "flops" else x)
    ax.set_ylabel("held-out loss (nats/token)")
    _finish(fig, ax, out_png, title, legend_size=8)


def _short_number(v: float, _pos: Any = None) -> str:
    """A tick label: ``2e12``, ``1.55e13``, ``300``, ``0.02`` (at most three significant digits, no ``e+``)."""
    if v == 0:
        return "0"
    if 1e-2 <= abs(v) < 1e4:
        text = f"{v:.3g}"
        return f"{v:.0f}" if "e" in text else text  # 1000, not 1e+03
    mant, exp = f"{v:.2e}".split("e")
    mant = mant.rstrip("0").rstrip(".")
    return f"{mant}e{int(exp)}"


def log_ticks(lo: float, hi: float) -> list[float]:
    """Readable major ticks of a log axis over [lo, hi]: decades (every k-th, at most 7) when there are three or
    more, else 1-3, 1-2-5 or 1-1.5-2-3-5-7 multiples, whichever first gives three; always at least two ticks."""
    if not (0 < lo < hi and math.isfinite(hi)):
        return []
    e0, e1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for subs in ((1,), (1, 3), (1, 2, 5), (1, 1.5, 2, 3, 5, 7)):
        ticks = sorted({float(f"{m * 10.0 ** e:.3g}") for e in range(e0, e1 + 1) for m in subs})
        ticks = [t for t in ticks if lo <= t <= hi]
        if subs == (1,):
            ticks = ticks[::max(1, math.ceil(len(ticks) / 7))]
        if len(ticks) >= 3:
            return ticks
    if len(ticks) < 2:  # a very short range: its ends and middle, rounded
        ticks = sorted({float(f"{t:.3g}") for t in (lo * 1.002, math.sqrt(lo * hi), hi / 1.002)})
        ticks = [t for t in ticks if lo <= t <= hi] or [float(f"{math.sqrt(lo * hi):.2g}")]
    return ticks


def log_axis(ax: Any, axis: str = "x") -> None:
    """Put ``axis`` on a log scale with labels readable at every range (:func:`log_ticks`, compact numbers,
    no minor labels). Call after plotting the data."""
    from matplotlib import ticker

    getattr(ax, f"set_{axis}scale")("log")
    ax.autoscale_view()
    lo, hi = ax.get_xlim() if axis == "x" else ax.get_ylim()
    a = ax.xaxis if axis == "x" else ax.yaxis
    ticks = log_ticks(min(lo, hi), max(lo, hi))
    if ticks:
        a.set_major_locator(ticker.FixedLocator(ticks))
    a.set_major_formatter(ticker.FuncFormatter(_short_number))
    a.set_minor_formatter(ticker.NullFormatter())
    (ax.set_xlim if axis == "x" else ax.set_ylim)(lo, hi)


def style_axes(ax: Any, title: str | None = None, legend_size: int | None = 7) -> None:
    """The look shared by every rins plot (report, demo, SigLIP study): light grid below the data, no top or
    right frame, 9-point title, small legend beside the axes (never over a curve; save with
    ``bbox_inches="tight"``)."""
    if title is not None:
        ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=8)
    if legend_size and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=legend_size, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def family(signature: str, degree: int = 1) -> str:
    """Family of a layout: ``baseline`` (AB), ``RINS`` (A^rB), ``RAO`` ((AB)^r), ``middle`` (AB^rC),
    ``cycle`` ((ABC)^k) or ``other``; degree > 1 is always ``other`` (a nested variant)."""
    if degree != 1:
        return "other"
    for name, rx in _FAMILY_RE:
        if rx.match(signature):
            return name
    return "other"


@dataclass
class RunInfo:
    """What the report needs from one run (a run directory or a committed run summary)."""

    name: str
    run_dir: Path
    signature: str
    degree: int
    p_skip: float
    adapters: str
    size: str
    budget: float | None
    seed: int
    n_layers: int
    complete: bool
    params: int = 0
    steps: int = 0
    tokens: int = 0
    flops: float = 0.0
    val_loss: float = math.nan
    val_loss_r: dict[str, float] = field(default_factory=dict)
    warmup_steps: int = 0
    vocab_size: int = 0
    curve: list[dict[str, Any]] = field(default_factory=list)  # held-out eval records (step, tokens, flops, loss)
    lr: float = math.nan
    lr_scan: bool = False  # from a learning-rate scan grid: reported in its own section, not in the claims
    holdout: bool = False  # from an out-of-sample grid: compared with the main runs' fitted curve, not fitted
    non_embedding_params: int | None = None  # None: unknown (printed "n/a", never a made-up 0)
    val_bpb: float = math.nan
    evals: dict[str, Any] = field(default_factory=dict)  # extra evaluations: {data spec: {"results": [...]}}
    n_seeds: int = 1  # > 1: a mean over seeds (see _seed_means); seed is then the lowest of them

    @property
    def family(self) -> str:
        return family(self.signature, self.degree)

    @property
    def deterministic(self) -> bool:
        """A plain layout: no stochastic depth, no adapters."""
        return self.p_skip == 0 and self.adapters == "none"

    @property
    def r(self) -> int | None:
        """The trained recursion exponent (None without one)."""
        from .plan import compile_plan

        return compile_plan(self.signature, self.n_layers, self.degree).r

    @property
    def cost(self) -> float:
        """Executed layers per distinct layer."""
        from .plan import compile_plan

        return compile_plan(self.signature, self.n_layers, self.degree).cost_ratio()

    @property
    def layout(self) -> str:
        """Label of the layout: signature (+ degree, p_s, adapters)."""
        s = self.signature + (f" (degree {self.degree})" if self.degree != 1 else "")
        if self.p_skip:
            s += f" p_s={self.p_skip:g}"
        if self.adapters != "none":
            s += f" +{self.adapters} adapters"
        return s

    @property
    def key(self) -> tuple:
        return (self.size, self.signature, self.degree, self.p_skip, self.adapters, self.seed)


def _model_field(model: dict[str, Any], key: str) -> Any:
    """A field of a run's model config; ``config.json`` records only the fields the config named, so one left
    at its default is read from :class:`rins.model.LMConfig` (the only case that imports the model, and torch)."""
    if key in model:
        return model[key]
    from .model import LMConfig

    return LMConfig.__dataclass_fields__[key].default


def _size_label(model: dict[str, Any]) -> str:
    """``L6-d64``: a run's model size (distinct layers, width)."""
    return f"L{_model_field(model, 'n_layers')}-d{_model_field(model, 'd_model')}"


def _non_embedding_params(cfg: dict[str, Any], summ: dict[str, Any], params: int) -> int | None:
    """A run summary's ``non_embedding_params``; for a run directory (whose summary lacks it) computed from its
    config as :func:`rins.runs.run_summary` does; ``None`` when the parameter count or vocabulary is unknown."""
    if summ.get("non_embedding_params") is not None:
        return int(summ["non_embedding_params"])
    model = cfg.get("model", {})
    vocab = model.get("vocab_size", cfg.get("data", {}).get("vocab_size"))
    if not params or not vocab:
        return None
    d = int(_model_field(model, "d_model"))
    emb = int(vocab) * d * (1 if _model_field(model, "tie_embeddings") else 2)
    if _model_field(model, "pos_embedding") == "learned":
        emb += int(_model_field(model, "max_seq_len")) * d
    return params - emb


def _run_info(rec: RunRecord) -> RunInfo | None:
    """A :class:`RunInfo` from a run's record (a run directory's or a committed summary's); ``None`` for a run
    of another task than the language model."""
    from .plan import resolve_signature

    cfg, summ, start_rec = rec.config, rec.summary, rec.start
    if cfg.get("task", "lm") != "lm":
        return None
    model = cfg.get("model", {})
    steps = int(summ.get("steps", start_rec.get("steps", 0)))
    optim = cfg.get("optim", {})
    return RunInfo(
        name=str(cfg.get("name", rec.path.name)), run_dir=rec.path,
        signature=resolve_signature(str(model.get("signature", "AB"))),
        degree=int(model.get("degree", 1)), p_skip=float(model.get("p_skip", 0.0)),
        adapters=str(model.get("adapters", "none")), size=_size_label(model),
        budget=(cfg.get("budget") or {}).get("flops"), seed=int(cfg.get("seed", 0)),
        n_layers=int(_model_field(model, "n_layers")), complete=rec.complete,
        params=int(summ.get("params", start_rec.get("params", 0))), steps=steps, tokens=int(summ.get("tokens", 0)),
        flops=float(summ.get("flops", 0.0)), val_loss=float(summ.get("val_loss", math.nan) or math.nan),
        val_loss_r={str(k): float(v) for k, v in (summ.get("val_loss_r") or {}).items()},
        warmup_steps=int(round(float(optim.get("warmup_frac", 0.05)) * steps)),
        vocab_size=int(model.get("vocab_size", cfg.get("data", {}).get("vocab_size", 0))),
        curve=rec.curve, lr=float(optim.get("lr", math.nan)), lr_scan=bool(summ.get("lr_scan", False)),
        holdout=bool(summ.get("holdout", False)),
        non_embedding_params=_non_embedding_params(cfg, summ, int(summ.get("params", start_rec.get("params", 0)))),
        val_bpb=float(summ.get("val_bpb", math.nan) or math.nan), evals=dict(summ.get("evals") or {}),
    )


def load_runs(paths: list[str | Path]) -> tuple[list[RunInfo], list[str]]:
    """Runs found under ``paths`` (:func:`rins.runs.find_runs`): run directories, committed run summaries
    (``<run>.json`` written by ``rins sweep`` into its ``results_dir``), or folders of either. Also returns the
    incomplete run directories that were left out. A run found both ways is taken once (its summary wins)."""
    runs: dict[str, RunInfo] = {}
    skipped: list[str] = []
    for path in find_runs(paths):
        rec = read_run(path)
        info = _run_info(rec) if rec is not None else None
        if info is None:
            continue
        if not info.complete:
            skipped.append(str(path))
        elif info.name not in runs or rec.is_summary:
            runs[info.name] = info
    return list(runs.values()), skipped


# ----------------------------------------------------------------------------------------------
# Helpers


def _f(v: float | None, nd: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:.{nd}f}"


def _count(v: int | None) -> str:
    """A count for a table; a field the run did not record (0 / None) is "n/a", not a made-up 0."""
    return f"{v:,}" if v else "n/a"


def _cmp(a: float, b: float, margin: float) -> str:
    """'better' / 'worse' / 'tie' for loss a against loss b."""
    if a < b - margin:
        return "better"
    if a > b + margin:
        return "worse"
    return "tie"


def _budget_label(b: float | None) -> str:
    return "?" if b is None else f"{b:.3g}"


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _trained_loss(run: RunInfo) -> float:
    """Final held-out loss at the trained depth (val_loss)."""
    return run.val_loss


# ----------------------------------------------------------------------------------------------
# Sections


def _runs_section(runs: list[RunInfo]) -> tuple[str, dict[str, Any]]:
    rows = []
    for r in sorted(runs, key=lambda r: (r.size, r.budget or 0, r.family != "baseline", r.name)):
        rows.append([r.name, r.layout, r.family, r.size, _count(r.params), _budget_label(r.budget), _count(r.steps),
                     _count(r.tokens), f"{r.flops:.3g}" if r.flops else "n/a", _f(r.val_loss)])
    dev = []
    for r in runs:
        if r.budget:
            dev.append(abs(r.flops - r.budget) / r.budget)
    worst = max(dev) if dev else math.nan
    text = ("## Runs\n\n" + _md_table(["run", "layout", "family", "size", "params", "budget (FLOPs)", "steps",
                                        "tokens", "realised train FLOPs", "final loss"], rows) + "\n\n")
    if dev:
        text += (f"Compute matching: every run trains for `budget.flops` FLOPs counted per executed layer "
                 f"application (training = 3 × forward, expected cost for stochastic depth); the largest "
                 f"deviation of realised from budgeted FLOPs is **{100 * worst:.1f}%** (under one optimizer step, "
                 "plus the random depth draws of stochastic runs).\n\n")
    return text, {"max_rel_flops_deviation": worst, "n_runs": len(runs)}


def _group(runs: list[RunInfo], *keys: str) -> dict[tuple, list[RunInfo]]:
    g: dict[tuple, list[RunInfo]] = defaultdict(list)
    for r in runs:
        g[tuple(getattr(r, k) for k in keys)].append(r)
    return g


def _curves_section(runs: list[RunInfo], out: Path, x: str) -> tuple[str, dict[str, Any]]:
    text = "## Loss vs training compute, per layout\n\n"
    data: dict[str, Any] = {}
    named = [r for r in runs if r.deterministic and r.family != "other"]
    for (size,), rs in sorted(_group(named, "size").items()):
        budgets = sorted({r.budget for r in rs if r.budget})
        for b in budgets:
            at = sorted((r for r in rs if r.budget == b), key=lambda r: (r.cost, r.signature))
            png = out / f"curves_{size}_C{b:.3g}.png"
            plot_curves([(f"{r.layout} [{r.family}]", r.curve, _color(r)) for r in at], png, x=x,
                        title=f"{size}: held-out loss vs {x} at budget {b:.3g} FLOPs")
            text += f"![loss vs {x}, {size}, budget {b:.3g}]({png.name})\n\n"
        if len(budgets) > 1:
            png = out / f"finals_{size}.png"
            _plot_finals(rs, png, f"{size}: final held-out loss vs training budget")
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
                data.setdefault(size, {}).setdefault(sig, {})[_budget_label(b)] = v
            rows.append([sig, family(sig, deg), f"{cost:.2f}"] + cells)
        text += (f"Final held-out loss (nats/token, trained depth) of the named layouts, model {size} "
                 "(best per budget in bold; `cost ×` = executed layers / distinct layers):\n\n"
                 + _md_table(head, rows) + "\n\n")
    return text, data


def _new_figure(height: float = 4.2) -> tuple[Any, Any]:
    """(figure, axes) of a report plot, 6.4 inches wide (plus the legend beside it), drawn off-screen (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6.4, height))


def _color(r: RunInfo) -> Any:
    return layout_color(r.signature, r.degree, r.p_skip, r.adapters)


def _save(fig: Any, png: str | Path) -> None:
    """Lay out, write (120 dpi, the legend beside the axes included) and close a report plot."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(png, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _finish(fig, ax, png, title: str, legend_size: int = 7) -> None:
    """Title, grid, legend, save and close: the common tail of every report plot."""
    style_axes(ax, title, legend_size)
    _save(fig, png)


def _plot_finals(rs: list[RunInfo], png: Path, title: str) -> None:
    """Final loss against the budget, one line per layout (its colour: :func:`layout_color`)."""
    fig, ax = _new_figure()
    for (sig, deg), lay in sorted(_group(rs, "signature", "degree").items(), key=lambda kv: kv[1][0].cost):
        pts = sorted((r.budget, r.val_loss) for r in lay if r.budget)
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=layout_color(sig, deg),
                label=f"{sig} [{family(sig, deg)}]")
    log_axis(ax, "x")
    ax.set_xlabel("training budget (FLOPs)")
    ax.set_ylabel("final held-out loss (nats/token)")
    _finish(fig, ax, png, title, legend_size=7)


def _best(rs: list[RunInfo], fam: str) -> RunInfo | None:
    c = [r for r in rs if r.family == fam and r.deterministic]
    return min(c, key=lambda r: r.val_loss) if c else None


def _rins_vs_other_families(runs: list[RunInfo], margin: float) -> tuple[str, dict[str, Any]]:
    """Claim 1: the best RINS layout against the best AB, RAO and middle layout at each size and budget."""
    text = "## Claim 1 — RINS vs the plain model, RAO and middle recursion at equal FLOPs\n\n"
    res: list[dict[str, Any]] = []
    lines = []
    for (size, b), rs in sorted(_group(runs, "size", "budget").items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        rins = _best(rs, "RINS")
        if rins is None:
            continue
        for fam in ("baseline", "RAO", "middle"):
            other = _best(rs, fam)
            if other is None:
                continue
            verdict = _cmp(rins.val_loss, other.val_loss, margin)
            res.append({"size": size, "budget": b, "rins": rins.signature, "rins_loss": rins.val_loss,
                        "other": other.signature, "family": fam, "other_loss": other.val_loss,
                        "delta": rins.val_loss - other.val_loss, "verdict": verdict})
            lines.append([size, _budget_label(b), f"{rins.signature} {rins.val_loss:.4f}",
                          f"{other.signature} ({fam}) {other.val_loss:.4f}", f"{rins.val_loss - other.val_loss:+.4f}",
                          verdict])
    if not res:
        return text + "Not tested: no budget has both a RINS layout and a comparison layout.\n\n", {"rows": []}
    text += ("Best RINS layout `A^rB` (over r) against the best layout of each other family at the same budget "
             f"(Δ < 0: RINS lower; |Δ| ≤ {margin} nats is a tie):\n\n")
    text += _md_table(["size", "budget", "best RINS", "competitor", "Δ loss", "RINS is"], lines) + "\n\n"
    wins = sum(r["verdict"] == "better" for r in res)
    missing = [f"{label} ({example})" for fam, label, example in _CLAIM1_RIVALS
               if not any(r["family"] == fam for r in res)]
    if missing:  # the claim is about all three rivals: no verdict from a partial grid
        text += (f"Not tested: claim 1 compares RINS with AB, RAO and middle recursion at the same budget; missing: "
                 f"{', '.join(missing)} runs at a budget that has a RINS run (RINS was better in {wins} of "
                 f"{len(res)} comparisons made, so far).\n\n")
        return text, {"rows": res, "wins": wins, "n": len(res), "held": None, "missing": missing}
    held = wins == len(res)
    per = []
    for fam, label in (("baseline", "AB"), ("RAO", "RAO"), ("middle", "middle")):
        fr = [r for r in res if r["family"] == fam]
        if fr:
            per.append(f"{label} in {sum(r['verdict'] == 'better' for r in fr)} of {len(fr)}")
    text += (f"Verdict: RINS was better in {wins} of {len(res)} comparisons "
             f"({sum(r['verdict'] == 'tie' for r in res)} ties, {sum(r['verdict'] == 'worse' for r in res)} worse; "
             f"it beat {', '.join(per)}) → claim 1 **{'held' if held else 'did not hold'}** at this scale.\n\n")
    return text, {"rows": res, "wins": wins, "n": len(res), "held": held}


_CLAIM1_RIVALS = (("baseline", "AB", "signature AB"), ("RAO", "RAO", "e.g. (AB)^2"), ("middle", "middle", "e.g. AB^2C"))


def _best_depth_by_size_and_budget(runs: list[RunInfo], margin: float) -> tuple[str, dict[str, Any]]:
    """Claim 2: the best recursion depth r (AB is r = 1) at each size and budget, and how RINS's gain over
    AB moves with the budget and the model size."""
    text = "## Claim 2 — the best recursion depth r by model size and budget\n\n"
    rows, res = [], []
    for (size, b), rs in sorted(_group(runs, "size", "budget").items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        cands = [r for r in rs if r.deterministic and r.family in ("baseline", "RINS")]
        if len(cands) < 2:
            continue
        by_r = {(r.r or 1): r.val_loss for r in cands}
        best_r = min(by_r, key=by_r.get)
        gain = by_r.get(1, math.nan) - min(v for k, v in by_r.items() if k > 1) if 1 in by_r else math.nan
        res.append({"size": size, "budget": b, "loss_by_r": by_r, "best_r": best_r, "rins_gain_vs_ab": gain})
        rows.append([size, _budget_label(b), ", ".join(f"r={k}: {v:.4f}" for k, v in sorted(by_r.items())),
                     str(best_r), _f(gain)])
    if not res:
        return text + "Not tested: no budget has AB and A^rB runs.\n\n", {"rows": []}
    text += ("`A^rB` at r = 1 is the plain model `AB`. Gain = loss(AB) − loss(best A^rB, r ≥ 2); positive: "
             "recursion helps.\n\n")
    text += _md_table(["size", "budget", "loss by r", "best r", "gain of RINS"], rows) + "\n\n"
    parts, grows, checks = [], [], []
    for size in sorted({r["size"] for r in res}):
        rr = [r for r in res if r["size"] == size]
        bests = [r["best_r"] for r in rr]
        gains = [r["rins_gain_vs_ab"] for r in rr]
        if len(rr) > 1:
            up = gains[-1] > gains[0] + margin
            grows.append(up)
            trend = "grows" if up else ("shrinks" if gains[-1] < gains[0] - margin else "stays within the margin")
            parts.append(f"model {size}: best r = {bests} over budgets {[_budget_label(r['budget']) for r in rr]}; "
                         f"the RINS gain {trend} with the budget ({gains[0]:+.4f} → {gains[-1]:+.4f})")
        else:
            parts.append(f"model {size}: best r = {bests[0]} at the single budget")
    params = {r.size: r.params for r in sorted(runs, key=lambda r: -r.params)}
    sizes = sorted({r["size"] for r in res}, key=lambda z: params.get(z, 0))
    smaller_more: list[bool] = []
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        g_small = {r["budget"]: r["rins_gain_vs_ab"] for r in res if r["size"] == small and r["budget"]}
        for b, gl in sorted((r["budget"], r["rins_gain_vs_ab"]) for r in res if r["size"] == large and r["budget"]):
            # sizes often get their own budgets: between two of the smaller model's, interpolate its gain in log C
            gs, how = _interp_log(g_small, b), "" if b in g_small else " (interpolated in log budget)"
            if math.isnan(gs) or math.isnan(gl):
                continue
            smaller_more.append(gs > gl + margin)
            checks.append(f"at {_budget_label(b)} FLOPs the smaller model {small} gains {gs:+.4f}{how} vs {gl:+.4f} "
                          f"for {large} ({'more' if gs > gl + margin else 'not more'})")
    varies = len({r["best_r"] for r in res}) > 1
    text += "Details: " + "; ".join(parts + checks) + ".\n\n"
    missing = []
    if not grows:
        missing.append("a second budget for one model size (AB and A^rB at >= 2 budgets)")
    if len(sizes) < 2:
        missing.append("a second model size (AB and A^rB at a budget of each size)")
    if missing:  # the claim is about size AND budget: no verdict from one of them alone
        text += (f"Not tested: claim 2 (the best r depends on model size and budget) needs {' and '.join(missing)}; "
                 f"have {len(sizes)} size(s) and {len({r['budget'] for r in res})} budget(s).\n\n")
        return text, {"rows": res, "best_r_varies": varies, "gain_grows": grows,
                      "smaller_gains_more": smaller_more, "missing": missing}
    size_note = "" if len(sizes) >= 2 else " (one model size only: the size dependence is not tested)"
    n_ok = int(varies) + sum(grows) + sum(smaller_more)
    n_all = 1 + len(grows) + len(smaller_more)
    never = all(r["best_r"] == 1 for r in res)
    word = "held" if n_ok == n_all else ("partly held" if n_ok and not never else "did not hold")
    if never:
        size_note += "; recursion never beat the plain model (best r = 1 everywhere)"
    text += (f"Verdict: the best r {'varies' if varies else 'does not vary'} across sizes and budgets "
             f"(best r ∈ {sorted({r['best_r'] for r in res})}); the RINS gain grows with the budget for "
             f"{sum(grows)} of {len(grows)} sizes; the smaller model gains more at {sum(smaller_more)} of "
             f"{len(smaller_more)} budgets{size_note} → claim 2 **{word}** at this scale.\n\n")
    return text, {"rows": res, "best_r_varies": varies, "gain_grows": grows, "smaller_gains_more": smaller_more}


def _interp_log(ys: dict[float, float], x: float) -> float:
    """ys at x, linear in log x between the two nearest keys around it (nan outside their range)."""
    import numpy as np

    xs = sorted(ys)
    if not xs or not xs[0] <= x <= xs[-1]:
        return math.nan
    return float(np.interp(math.log(x), [math.log(k) for k in xs], [ys[k] for k in xs]))


def _layout_ranking(runs: list[RunInfo], out: Path, margin: float) -> tuple[str, dict[str, Any]]:
    """Claim 3: every deterministic layout ranked at the (size, budget) with the most layouts."""
    text = "## Claim 3 — ranking of all layouts at one budget\n\n"
    groups = _group([r for r in runs if r.deterministic], "size", "budget")
    if not groups:
        return text + "Not tested: no deterministic runs.\n\n", {}
    (size, b), rs = max(groups.items(), key=lambda kv: (len(kv[1]), kv[0][1] or 0))
    rs = sorted(rs, key=lambda r: r.val_loss)
    rows = [[str(i + 1), r.layout, r.family, f"{r.cost:.2f}", f"{r.steps:,}", f"{r.tokens:,}", f"{r.val_loss:.4f}"]
            for i, r in enumerate(rs)]
    text += (f"{len(rs)} layouts of model {size}, each trained for {_budget_label(b)} FLOPs (the budget with the most "
             "layouts):\n\n")
    text += _md_table(["rank", "layout", "family", "cost ×", "steps", "tokens", "final loss"], rows) + "\n\n"
    _plot_ranking(rs, out / "ranking.png", f"{size}: final loss of {len(rs)} layouts at {_budget_label(b)} FLOPs")
    text += "![ranking](ranking.png)\n\n"
    rins = [i + 1 for i, r in enumerate(rs) if r.family == "RINS"]
    best_fam = rs[0].family
    if len({r.cost for r in rs}) > 1 and len(rs) >= 3:
        from scipy.stats import spearmanr

        rho = float(spearmanr([r.cost for r in rs], [r.val_loss for r in rs]).statistic)
        rel = "loss rises with cost" if rho > 0.3 else ("loss falls with cost" if rho < -0.3 else "no clear relation")
        text += (f"Final loss vs recursion cost (executed / distinct layers, i.e. fewer training tokens): Spearman "
                 f"ρ = {rho:+.2f} ({rel}).\n\n")
    res = {"size": size, "budget": b, "ranking": [(r.layout, r.family, r.val_loss) for r in rs], "rins_ranks": rins,
           "winner": rs[0].layout}
    if len(rs) < 4 or len({r.family for r in rs}) < 2:  # "near the top" means nothing among two or three
        res["missing"] = "at least 4 layouts of at least 2 families at one budget"
        text += (f"Not tested: claim 3 (RINS near the top of the ranking) needs {res['missing']}; have {len(rs)} "
                 f"({', '.join(sorted({r.family for r in rs}))}).\n\n")
    elif rins:
        top = rins[0]
        frac = top / len(rs)
        near = frac <= 0.25 or (rs[top - 1].val_loss - rs[0].val_loss) <= margin
        res["held"] = near
        text += (f"Verdict: the best RINS layout ranks **{top} of {len(rs)}** (loss {rs[top - 1].val_loss:.4f}; the "
                 f"winner is {rs[0].layout} [{best_fam}] at {rs[0].val_loss:.4f}); "
                 f"'RINS near the top' (top quarter or within {margin} nats of the winner) "
                 f"**{'held' if near else 'did not hold'}**.\n\n")
    else:
        text += "Verdict: no RINS layout at this budget; not tested.\n\n"
    return text, res


def _plot_ranking(rs: list[RunInfo], png: Path, title: str) -> None:
    fig, ax = _new_figure(0.28 * len(rs) + 1.2)
    ys = list(range(len(rs)))[::-1]
    # dots on an axis that spans the data (bars from zero made 4.80 and 5.01 look the same); no bar, so no
    # length reads as a ratio; each value printed beside its dot
    losses = [r.val_loss for r in rs]
    lo, hi = min(losses), max(losses)
    pad = max(0.08 * (hi - lo), 0.005 * hi)
    ax.hlines(ys, lo - pad, losses, color="0.85", lw=1, zorder=1)
    ax.scatter(losses, ys, color=[_color(r) for r in rs], s=36, zorder=3, edgecolors="black", linewidths=0.4)
    for y, v in zip(ys, losses, strict=True):
        ax.text(v + 0.25 * pad, y, f"{v:.3f}", va="center", fontsize=7)
    ax.set_yticks(ys, [r.layout for r in rs], fontsize=8)
    ax.set_xlim(lo - pad, hi + 2.2 * pad)
    ax.set_ylim(-0.6, len(rs) - 0.4)
    ax.set_xlabel("final held-out loss (nats/token; the axis spans the data, it does not start at 0)")
    style_axes(ax, title, legend_size=None)
    ax.grid(axis="y", visible=False)
    _save(fig, png)


def _eval_curve(run: RunInfo, x: str) -> list[tuple[float, float]]:
    """A run's held-out curve ``(x, val_loss)`` as ``rins fit`` reads it (:func:`rins.scaling.load_curve`):
    eval records at x > 0, the last record of a step logged twice (a resumed run) winning, sorted by x."""
    by_step: dict[int, tuple[float, float]] = {}
    for e in run.curve:
        if e.get("event", "eval") != "eval" or e.get(x) is None or float(e[x]) == 0 or "val_loss" not in e:
            continue
        v = e["val_loss"]
        by_step[int(e["step"])] = (float(e[x]), math.nan if v is None else float(v))
    return sorted(by_step.values())


def _fit_points(layout_runs: list[RunInfo], x: str) -> tuple[list[float], list[float], str]:
    """Points for a scaling-law fit of one layout: the final losses of >= 4 budgets, else the learning curve
    of its largest-budget run, the same points ``rins fit RUN`` fits."""
    finals = sorted((r for r in layout_runs if r.budget), key=lambda r: r.budget or 0)
    if len(finals) >= 4:
        return ([float(getattr(r, x)) for r in finals], [r.val_loss for r in finals],
                f"final loss of {len(finals)} budgets")
    big = max(layout_runs, key=lambda r: (r.budget or 0, r.steps))
    pts = _eval_curve(big, x)
    return ([p[0] for p in pts], [p[1] for p in pts],
            f"learning curve of the {_budget_label(big.budget)}-FLOPs run (as `rins fit`)")


def _fit_layout(size: str, sig: str, deg: int, rs: list[RunInfo], x: str,
                n_boot: int) -> tuple[dict[str, Any], list[str]]:
    """The power-law fit of one layout: its row of report.json and its cells of the table."""
    from .scaling import extrapolation_error, fit_power

    xs, ys, how = _fit_points(rs, x)
    row: dict[str, Any] = {"size": size, "signature": sig, "family": family(sig, deg), "points": len(xs), "on": how}
    try:
        f = fit_power(xs, ys, n_boot=n_boot, seed=0, x_name=x)
    except ValueError as e:
        row["error"] = str(e).split(";")[0]
        return row, [size, sig, str(len(xs)), how, "–", "–", "–", "–", "–", "fit failed: " + row["error"]]
    p, ci = f.params, f.ci
    row.update({k: p[k] for k in p}, **{f"{k}_ci": list(ci[k]) for k in ci}, rmse=f.rmse, notes="; ".join(f.notes))
    n = len(xs)
    n_fit = max(4, math.ceil(0.6 * n))
    ext = "–"
    if n_fit < n:  # extrapolation: fit the first ~60% of the points, score the rest
        try:
            ex = extrapolation_error(xs, ys, form="power", fit_fraction=(n_fit + 0.5) / n, x_name=x)
            row["extrap_mean_rel_error"] = ex["mean_rel_error"]
            ext = f"{100 * ex['mean_rel_error']:.2f}% ({ex['n_test']} pts)"
        except ValueError:
            pass
    return row, [size, sig, str(n), how, f"{p['beta']:.3g}", f"{p['c']:.3f} [{ci['c'][0]:.3f}, {ci['c'][1]:.3f}]",
                 f"{p['eps_inf']:.3f} [{ci['eps_inf'][0]:.3f}, {ci['eps_inf'][1]:.3f}]", f"{f.rmse:.4f}", ext,
                 row["notes"] or "–"]


def _compare_fits_to_ab(fits: list[dict[str, Any]], margin: float) -> tuple[str, list[dict[str, Any]]]:
    """One line and one verdict row per RINS layout whose size has a fitted AB: lower ε∞? larger c? CIs apart?"""
    text, verdicts = "", []
    for size in sorted({f["size"] for f in fits}):
        ok = [f for f in fits if f["size"] == size and "c" in f]
        base = next((f for f in ok if f["family"] == "baseline"), None)
        rins = [f for f in ok if f["family"] == "RINS"]
        if base is None or not rins:
            continue
        for f in rins:
            lower_eps = f["eps_inf"] < base["eps_inf"] - margin
            larger_c = f["c"] > base["c"] * (1 + 1e-3) + 1e-6
            sep_eps = f["eps_inf_ci"][1] < base["eps_inf_ci"][0]
            sep_c = f["c_ci"][0] > base["c_ci"][1]
            bounded = bool(f.get("notes") or base.get("notes"))
            verdicts.append({"size": size, "rins": f["signature"], "lower_eps": lower_eps, "larger_c": larger_c,
                             "eps_ci_separated": sep_eps, "c_ci_separated": sep_c, "fit_at_bound": bounded})
            text += (f"- {size} {f['signature']} vs AB: ε∞ {f['eps_inf']:.3f} vs {base['eps_inf']:.3f} "
                     f"({'lower' if lower_eps else 'not lower'}{', CIs disjoint' if sep_eps else ', CIs overlap'}); "
                     f"c {f['c']:.3f} vs {base['c']:.3f} ({'larger' if larger_c else 'not larger'}"
                     f"{', CIs disjoint' if sep_c else ', CIs overlap'})"
                     + ("; a parameter sits on its bound, so this pair is not resolved" if bounded else "") + ".\n")
    return text, verdicts


def _fits_verdict(verdicts: list[dict[str, Any]]) -> str:
    """The claim-4 verdict line over every RINS-vs-AB fit pair."""
    both = [v for v in verdicts if v["lower_eps"] and v["larger_c"]]
    sig = [v for v in both if v["eps_ci_separated"] and v["c_ci_separated"]]
    unresolved = [v for v in verdicts if v["fit_at_bound"]]
    if sig and len(both) == len(verdicts):
        word = "held"
    elif both:
        word = "is suggested but not resolved (CIs overlap)"
    elif len(unresolved) == len(verdicts):
        word = "not resolved: every fit pair has a parameter on its bound"
    else:
        word = "did not hold"
    return (f"\nVerdict: {len(both)} of {len(verdicts)} RINS layouts have both a lower ε∞ and a larger c than "
            f"AB ({len(sig)} with disjoint CIs) → claim 4 **{word}** at this scale.\n\n")


def _scaling_law_fits(runs: list[RunInfo], x: str, n_boot: int, margin: float) -> tuple[str, dict[str, Any]]:
    """Claim 4: a power law fitted per layout; does RINS have a lower ε∞ and a larger c than AB?"""
    text = "## Claim 4 — scaling-law fits  `loss(x) = β·x^(−c) + ε∞`\n\n"
    fits: list[dict[str, Any]] = []
    rows = []
    for (size, sig, deg), rs in sorted(_group([r for r in runs if r.deterministic and r.family != "other"],
                                              "size", "signature", "degree").items()):
        row, cells = _fit_layout(size, sig, deg, rs, x, n_boot)
        fits.append(row)
        rows.append(cells)
    if not rows:
        return text + "Not tested: no deterministic named layouts.\n\n", {"fits": []}
    text += (f"Fitted per layout on x = training {x} ({n_boot} bootstrap resamples, 95% CIs). With fewer than 4 "
             "budgets a layout is fitted on the learning curve of its largest run (every eval after step 0, as "
             "`rins fit` does) — the LR schedule shapes such a curve, so read c and ε∞ as descriptive. "
             "Extrapolation: fit the first ~60% of the points, mean relative error on the rest.\n\n")
    text += _md_table(["size", "layout", "points", "fitted on", "β", "c [CI]", "ε∞ [CI]", "rmse", "extrap. error",
                       "notes"], rows) + "\n\n"
    lines, verdicts = _compare_fits_to_ab(fits, margin)
    text += lines
    if verdicts:
        text += _fits_verdict(verdicts)
    else:
        fitted = sorted({f"{f['size']} {f['signature']}" for f in fits if "c" in f})
        text += ("Not tested: claim 4 needs a power fit of AB and of a RINS layout of the same model size; fitted: "
                 f"{', '.join(fitted) or 'none'}.\n\n")
    return text, {"fits": fits, "verdicts": verdicts}


def _stochastic_sets(runs: list[RunInfo]) -> list[tuple[tuple, list[RunInfo], RunInfo | None]]:
    """Groups (size, budget, signature, seed) that hold stochastic runs, with their compute-matched AB."""
    out = []
    for (size, b, sig, deg, seed), rs in sorted(_group(runs, "size", "budget", "signature", "degree", "seed").items(),
                                                 key=lambda kv: str(kv[0])):
        if not any(r.p_skip > 0 for r in rs):
            continue
        base = next((r for r in runs if r.size == size and r.budget == b and r.seed == seed and r.signature == "AB"
                     and r.degree == 1 and r.deterministic), None)
        out.append(((size, b, sig, deg, seed), sorted(rs, key=lambda r: (r.adapters, r.p_skip)), base))
    return out


def _stochastic_depth_tradeoff(runs: list[RunInfo], out: Path, margin: float) -> tuple[str, dict[str, Any]]:
    """Claim 5: stochastic RINS at every inference depth; does a higher p_s buy r = 1 loss for peak loss?"""
    text = "## Claim 5 — stochastic RINS: loss at every inference depth r\n\n"
    sets = _stochastic_sets(runs)
    if not sets:
        return text + "Not tested: no run with p_skip > 0.\n\n", {}
    res: dict[str, Any] = {"sets": []}
    held, tried = [], 0
    for (size, b, sig, _deg, seed), rs, base in sets:
        depths = sorted({int(k) for r in rs for k in r.val_loss_r})
        rows = [{"variant": r.layout, "params": r.params, "steps": r.steps, "tokens": r.tokens, "flops": r.flops,
                 "val_loss_r": r.val_loss_r} for r in rs]
        if base is not None:
            rows.insert(0, {"variant": "AB (baseline)", "params": base.params, "steps": base.steps,
                            "tokens": base.tokens, "flops": base.flops,
                            "val_loss_r": {str(k): base.val_loss for k in depths}})
        # one plot per seed (seed 0 keeps the unsuffixed name, so single-seed reports are unchanged)
        tag = f"{sig.replace('^', '').replace('(', '').replace(')', '')}_C{b:.3g}" + (f"_s{seed}" if seed else "")
        png = out / f"stochastic_{size}_{tag}.png"
        _plot_depth(rs, base, depths, png,
                    f"{size} {sig} at {_budget_label(b)} FLOPs: loss vs inference r")
        ns = sorted({r.n_seeds for r in rs})
        where = f"{size}, {sig}, {_budget_label(b)} FLOPs, " + (
            f"seed {seed}" if ns == [1] else f"mean of {ns[0]} seeds" if len(ns) == 1
            else f"means over {ns[0]}-{ns[-1]} seeds")
        text += (f"Model {where} (the baseline row repeats its single depth across the columns):\n\n"
                 + format_table(rows, depths) + f"\n\n![depth]({png.name})\n\n")
        r_max = max((r.r or 1) for r in rs)
        s = {"size": size, "budget": b, "signature": sig, "depths": depths,
             "rows": [{"layout": r.layout, "p_skip": r.p_skip, "adapters": r.adapters, "val_loss_r": r.val_loss_r}
                      for r in rs], "baseline": base.val_loss if base else None}
        for ad in sorted({r.adapters for r in rs}):
            # p_s = 0 (plain RINS, no adapters) anchors every chain
            chain = sorted((r for r in rs if r.adapters == ad or (r.p_skip == 0 and r.adapters == "none")),
                           key=lambda r: (r.p_skip, r.adapters != "none"))
            if len(chain) < 2:
                continue
            ps = [r.p_skip for r in chain]
            at1 = [r.val_loss_r.get("1", math.nan) for r in chain]
            atm = [r.val_loss_r.get(str(r_max), math.nan) for r in chain]
            flex = all(a > b - margin for a, b in zip(at1, at1[1:])) and at1[-1] < at1[0] - margin
            peak = all(b > a - margin for a, b in zip(atm, atm[1:]))
            best_any = [min(r.val_loss_r.values()) for r in chain]
            costs = peak and atm[-1] > atm[0] + margin
            s.setdefault("tradeoff", []).append({"adapters": ad, "p_skip": ps, "loss_r1": at1, "loss_rmax": atm,
                                                 "flexibility": flex, "peak_cost": peak})
            tried += 1
            if flex and costs:
                held.append(f"{where}, adapters={ad}")
            text += (f"- adapters={ad}: p_s = {ps}: loss at r=1 {', '.join(_f(v) for v in at1)}; at r={r_max} "
                     f"{', '.join(_f(v) for v in atm)}; best over r {', '.join(_f(v) for v in best_any)}. "
                     f"Higher p_s {'improves' if flex else 'does not consistently improve'} the r=1 loss and "
                     f"{'costs' if costs else 'does not clearly cost'} peak (r={r_max}) "
                     f"loss → the flexibility/peak trade-off **{'held' if flex and costs else 'was not (fully) seen'}**"
                     ".\n")
        res["sets"].append(s)
        text += "\n"
    if tried:
        res["held"] = held
        text += (f"Verdict: the flexibility/peak trade-off (a higher p_s lowers the r = 1 loss and raises the loss at "
                 f"the full depth) held in {len(held)} of {tried} comparisons"
                 + (f" ({'; '.join(held)})" if held else "") + ".\n\n")
    else:
        text += ("Not tested: no stochastic run has a plain (p_s = 0) run of the same layout and budget to compare "
                 "with.\n\n")
    return text, res


def _plot_depth(rs: list[RunInfo], base: RunInfo | None, depths: list[int], png: Path, title: str) -> None:
    fig, ax = _new_figure()
    if base is not None:  # under the curves, thin: it never hides one
        ax.axhline(base.val_loss, color=layout_color("AB"), lw=0.8, ls=":", zorder=1,
                   label="AB baseline (compute-matched)")
    for r in rs:
        ks = sorted(int(k) for k in r.val_loss_r)
        ax.plot(ks, [r.val_loss_r[str(k)] for k in ks], marker="o", ms=4, color=_color(r), zorder=3,
                ls="--" if r.adapters != "none" else "-", label=r.layout)
    ax.set_xticks(depths)
    ax.set_xlabel("inference depth r (rounds of A)")
    ax.set_ylabel("held-out loss (nats/token)")
    _finish(fig, ax, png, title, legend_size=7)


def _no_regret_at_depth_one(runs: list[RunInfo], margin: float) -> tuple[str, dict[str, Any]]:
    """Claim 6: stochastic RINS (+ adapters) at r = 1 against the compute-matched AB (no regret)."""
    text = "## Claim 6 — no-regret: stochastic RINS (+ adapters) at r = 1 vs the compute-matched baseline\n\n"
    rows, res = [], []
    for _key, rs, base in _stochastic_sets(runs):
        if base is None:
            continue
        for r in rs:
            if r.p_skip == 0 or "1" not in r.val_loss_r:
                continue
            v = r.val_loss_r["1"]
            verdict = _cmp(v, base.val_loss, margin)
            res.append({"layout": r.layout, "budget": r.budget, "size": r.size, "adapters": r.adapters,
                        "p_skip": r.p_skip, "loss_r1": v, "baseline": base.val_loss, "delta": v - base.val_loss,
                        "verdict": verdict, "params": r.params, "baseline_params": base.params})
            rows.append([r.size, _budget_label(r.budget), r.layout, f"{r.params:,} vs {base.params:,}", f"{v:.4f}",
                         f"{base.val_loss:.4f}", f"{v - base.val_loss:+.4f}", verdict])
    if not res:
        return text + "Not tested: no stochastic run has a compute-matched AB baseline.\n\n", {"rows": []}
    extra = max((r["params"] - r["baseline_params"]) / r["baseline_params"] for r in res)
    text += (f"Same training FLOPs; at r = 1 the same layers run as in AB (adapters add at most {100 * extra:.2f}% "
             "parameters and one d×d map per round):\n\n")
    text += _md_table(["size", "budget", "layout", "params vs AB", "loss at r=1", "AB loss", "Δ", "vs AB"], rows)
    ad = [r for r in res if r["adapters"] != "none"]
    good = [r for r in ad if r["verdict"] != "worse"]
    effects = []
    for r in ad:
        twin = next((q for q in res if q["adapters"] == "none" and q["p_skip"] == r["p_skip"]
                     and q["budget"] == r["budget"] and q["size"] == r["size"]), None)
        if twin is not None:
            effects.append(f"at p_s={r['p_skip']:g} adapters change the r = 1 loss by "
                           f"{r['loss_r1'] - twin['loss_r1']:+.4f}")
    if effects:
        text += "\n\nAdapter effect (same p_s, same budget): " + "; ".join(effects) + "."
    if not ad:
        text += ("\n\nNot tested: the no-regret claim is about stochastic RINS with adapters; no such run has a "
                 "compute-matched AB.\n\n")
        return text, {"rows": res, "held": None}
    text += (f"\n\nVerdict: with adapters, {len(good)} of {len(ad)} stochastic runs at r = 1 are no worse than the "
             f"baseline (tie within {margin} nats or better) → the no-regret claim "
             f"**{'held' if len(good) == len(ad) else ('held in part' if good else 'did not hold')}**.\n\n")
    return text, {"rows": res, "held": len(good) == len(ad)}


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
    from .study_report import study_section

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
        ("claim1", lambda: _rins_vs_other_families(runs, margin)),
        ("claim2", lambda: _best_depth_by_size_and_budget(runs, margin)),
        ("claim3", lambda: _layout_ranking(runs, out, margin)),
        ("claim4", lambda: _scaling_law_fits(runs, x, n_boot, margin)),
        ("claim5", lambda: _stochastic_depth_tradeoff(runs, out, margin)),
        ("claim6", lambda: _no_regret_at_depth_one(runs, margin)),
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
