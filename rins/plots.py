"""The figures of rins: one colour per layout, one look, readable log axes.

Every figure that draws layouts (``rins report`` and its study and adaptive sections, ``rins demo``, the
benchmarks) takes a layout's colour from :func:`layout_color` (or :func:`model_color` for a config's model
table), so a layout keeps its colour from one figure to the next, and styles its axes with :func:`style_axes`
(light grid, legend beside the axes). The report's run figures (:func:`plot_curves`, :func:`plot_finals`,
:func:`plot_ranking`, :func:`plot_depth`) live here too. Pure Python + matplotlib (no torch); matplotlib is
imported on first use and draws off-screen (Agg).
"""

from __future__ import annotations

import math
import re
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .plan import SignatureError, resolve_signature
from .runs import family, group_runs

if TYPE_CHECKING:  # pragma: no cover
    from .runs import RunInfo

__all__ = ["UNKNOWN_LAYOUT_COLOR", "finish_figure", "layout_color", "log_axis", "log_ticks", "model_color",
           "new_figure", "plot_curves", "plot_depth", "plot_finals", "plot_ranking", "run_color", "save_figure",
           "style_axes"]

# One colour per layout: the plain AB black; each recursion family one hue, a shade per depth r (listed from r = 2
# on; deeper layouts repeat the shades). Stochastic layouts are pinks (no adapters) or browns (adapters) that
# darken with p_s: a figure compares the p_s of one signature, so the shade says p_s and adapters.
BASELINE_COLOR = "black"
FAMILY_SHADES: dict[str, tuple[str, ...]] = {
    "RINS": ("tab:red", "tab:orange", "darkred", "lightcoral"),  # A^2B, A^3B, A^4B, A^5B
    "RAO": ("tab:blue", "navy", "deepskyblue", "royalblue"),  # (AB)^2, (AB)^3, ...
    "middle": ("tab:green", "darkgreen", "yellowgreen", "olivedrab"),  # AB^2C, AB^3C, ...
    "cycle": ("tab:purple", "indigo", "orchid", "darkviolet"),  # (ABC)^2, ...
}
# any other layout (a nested degree, the taxonomy's ABA^2, A^2BA, ...): a neutral shade by a hash of its name,
# none of them a family's colour; ABA, the simplest, has its own
_OTHER_NAMED = {"ABA": "tab:cyan"}
_OTHER_COLORS = ("tab:olive", "teal", "goldenrod", "mediumaquamarine", "rosybrown", "darkslategray", "cadetblue")
# a layout that cannot be known (a run read by its name only): grey, which no layout takes
UNKNOWN_LAYOUT_COLOR = "0.45"


def layout_color(signature: str, degree: int = 1, p_skip: float = 0.0, adapters: str = "none") -> Any:
    """The colour of a layout, the same in every rins figure; ``signature`` may be a preset (``rins(2)`` is
    ``A^2B``'s colour)."""
    if p_skip > 0 or adapters != "none":
        from matplotlib import colormaps

        p = min(max(p_skip, 0.0), 1.0)
        if adapters == "none":
            return colormaps["RdPu"](0.45 + 0.5 * p)
        # browns from light to near black, apart from A^3B's orange, wide enough that p_s 0.25 and 0.5 differ
        from matplotlib.colors import LinearSegmentedColormap

        browns = LinearSegmentedColormap.from_list("rins_adapters", ["#d2a56d", "#8b4513", "#3b1c08"])
        return browns(0.15 + 0.85 * p)
    try:
        signature = resolve_signature(signature)
    except SignatureError:
        pass  # not a signature: an "other" layout by its name
    fam = family(signature, degree)
    if fam == "baseline":
        return BASELINE_COLOR
    if fam in FAMILY_SHADES:
        r = int(re.findall(r"\^(\d+)", signature)[-1])
        shades = FAMILY_SHADES[fam]
        return shades[(r - 2) % len(shades)]
    if degree == 1 and signature in _OTHER_NAMED:
        return _OTHER_NAMED[signature]
    return _OTHER_COLORS[zlib.crc32(f"{signature}@{degree}".encode()) % len(_OTHER_COLORS)]


def model_color(model: dict[str, Any]) -> Any:
    """:func:`layout_color` of a config's model table (``signature``, ``degree``, ``p_skip``, ``adapters``; the
    fields it leaves out at their defaults)."""
    return layout_color(str(model.get("signature", "AB")), int(model.get("degree", 1)),
                        float(model.get("p_skip", 0.0)), str(model.get("adapters", "none")))


def run_color(run: RunInfo) -> Any:
    """:func:`layout_color` of a run of the report."""
    return layout_color(run.signature, run.degree, run.p_skip, run.adapters)


# ----------------------------------------------------------------------------------------------
# The look shared by every figure


def new_figure(height: float = 4.2) -> tuple[Any, Any]:
    """(figure, axes) of a plot 6.4 inches wide (plus the legend beside it), drawn off-screen (Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6.4, height))


def save_figure(fig: Any, png: str | Path) -> None:
    """Lay out, write (120 dpi, the legend beside the axes included) and close a figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(png, dpi=120, bbox_inches="tight")
    plt.close(fig)


def finish_figure(fig: Any, ax: Any, png: str | Path, title: str, legend_size: int = 7) -> None:
    """Title, grid, legend, save and close: the common tail of every one-axes figure."""
    style_axes(ax, title, legend_size)
    save_figure(fig, png)


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


# ----------------------------------------------------------------------------------------------
# The report's run figures


def plot_curves(curves: list[tuple], out_png: str | Path, x: str = "flops",
                title: str = "held-out loss vs training FLOPs") -> None:
    """Plot held-out loss (at the trained depth) against training FLOPs (or ``x``) for several runs, each
    given as ``(label, eval records)`` (:func:`rins.runs.read_log`, or a run summary's ``curve``) or
    ``(label, eval records, colour)`` (:func:`layout_color`); the legend sits beside the axes."""
    fig, ax = new_figure()
    for label, recs, *color in curves:
        recs = [r for r in recs if r.get(x) is not None and r.get("val_loss") is not None]
        if recs:
            ax.plot([r[x] for r in recs], [r["val_loss"] for r in recs], marker="o", ms=3, label=label,
                    color=color[0] if color else None)
    log_axis(ax, "x")
    ax.set_xlabel("training FLOPs" if x == "flops" else x)
    ax.set_ylabel("held-out loss (nats/token)")
    finish_figure(fig, ax, out_png, title, legend_size=8)


def plot_finals(runs: list[RunInfo], png: Path, title: str) -> None:
    """Final loss against the budget, one line per layout (its colour: :func:`layout_color`)."""
    fig, ax = new_figure()
    by_layout = sorted(group_runs(runs, "signature", "degree").items(), key=lambda kv: kv[1][0].cost)
    for (sig, deg), layout_runs in by_layout:
        pts = sorted((r.budget, r.val_loss) for r in layout_runs if r.budget)
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=layout_color(sig, deg),
                label=f"{sig} [{family(sig, deg)}]")
    log_axis(ax, "x")
    ax.set_xlabel("training budget (FLOPs)")
    ax.set_ylabel("final held-out loss (nats/token)")
    finish_figure(fig, ax, png, title, legend_size=7)


def plot_ranking(runs: list[RunInfo], png: Path, title: str) -> None:
    """Final losses of ``runs`` (ranked, best first) as dots on an axis spanning the data, one row per layout."""
    fig, ax = new_figure(0.28 * len(runs) + 1.2)
    ys = list(range(len(runs)))[::-1]
    # dots on an axis that spans the data (bars from zero made 4.80 and 5.01 look the same); no bar, so no
    # length reads as a ratio; each value printed beside its dot
    losses = [r.val_loss for r in runs]
    lo, hi = min(losses), max(losses)
    pad = max(0.08 * (hi - lo), 0.005 * hi)
    ax.hlines(ys, lo - pad, losses, color="0.85", lw=1, zorder=1)
    ax.scatter(losses, ys, color=[run_color(r) for r in runs], s=36, zorder=3, edgecolors="black", linewidths=0.4)
    for y, v in zip(ys, losses, strict=True):
        ax.text(v + 0.25 * pad, y, f"{v:.3f}", va="center", fontsize=7)
    ax.set_yticks(ys, [r.layout for r in runs], fontsize=8)
    ax.set_xlim(lo - pad, hi + 2.2 * pad)
    ax.set_ylim(-0.6, len(runs) - 0.4)
    ax.set_xlabel("final held-out loss (nats/token; the axis spans the data, it does not start at 0)")
    style_axes(ax, title, legend_size=None)
    ax.grid(axis="y", visible=False)
    save_figure(fig, png)


def plot_depth(runs: list[RunInfo], base: RunInfo | None, depths: list[int], png: Path, title: str) -> None:
    """Loss against inference depth r, one line per run (adapters dashed), over the compute-matched AB."""
    fig, ax = new_figure()
    if base is not None:  # under the curves, thin: it never hides one
        ax.axhline(base.val_loss, color=layout_color("AB"), lw=0.8, ls=":", zorder=1,
                   label="AB baseline (compute-matched)")
    for r in runs:
        ks = sorted(int(k) for k in r.val_loss_r)
        ax.plot(ks, [r.val_loss_r[str(k)] for k in ks], marker="o", ms=4, color=run_color(r), zorder=3,
                ls="--" if r.adapters != "none" else "-", label=r.layout)
    ax.set_xticks(depths)
    ax.set_xlabel("inference depth r (rounds of A)")
    ax.set_ylabel("held-out loss (nats/token)")
    finish_figure(fig, ax, png, title, legend_size=7)
