"""Plots people can read at a glance: log-axis ticks at every range, a ranking that spans the data, one colour per
layout, legends beside the curves, whole-number depth ticks."""

import math
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rins.plots import _short_number, log_axis, log_ticks, plot_curves, plot_ranking  # noqa: E402
from rins.runs import RunInfo  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("lo, hi", [(1.8e12, 2.2e12), (6e11, 5.4e12), (2e12, 7e13), (1e8, 5e13), (1e3, 1e20),
                                    (1.99e12, 2.01e12), (0.3, 0.9)])
def test_log_ticks_are_few_distinct_and_do_not_overlap(lo, hi):
    ticks = log_ticks(lo, hi)
    labels = [_short_number(t) for t in ticks]
    assert 2 <= len(ticks) <= 7 and all(lo <= t <= hi for t in ticks)
    assert len(set(labels)) == len(labels) and all(len(x) <= 7 and "+" not in x for x in labels)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot([lo, math.sqrt(lo * hi), hi], [1, 2, 3])
    log_axis(ax, "x")
    fig.canvas.draw()
    shown = [t for t in ax.get_xticklabels() if t.get_text()]
    boxes = sorted((t.get_window_extent() for t in shown), key=lambda b: b.x0)
    assert len(shown) >= 2
    assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:]))  # no two labels overlap
    assert not [t for t in ax.xaxis.get_minorticklabels() if t.get_text()]
    plt.close(fig)


def _run(name: str, sig: str, loss: float) -> RunInfo:
    return RunInfo(name=name, run_dir=Path(name), signature=sig, degree=1, p_skip=0.0, adapters="none", size="s",
                   budget=1e12, seed=0, n_layers=4, complete=True, val_loss=loss)


def _spy_savefig(monkeypatch) -> dict:
    """Captures the axes of every figure a plot function saves (to check what it drew)."""
    seen: dict = {"figs": []}
    orig = plt.Figure.savefig

    def spy(fig, *a, **k):
        fig.canvas.draw()
        seen["figs"].append(fig)
        return orig(fig, *a, **k)

    monkeypatch.setattr(plt.Figure, "savefig", spy)
    return seen


def test_ranking_spans_the_data_so_close_losses_look_different(tmp_path, monkeypatch):
    """4.796 and 5.007 looked the same as bars from 0; as dots on an axis spanning the data they sit apart."""
    rs = [_run("a", "AB", 4.796), _run("b", "A^2B", 5.007), _run("c", "(AB)^2", 4.9)]
    seen = _spy_savefig(monkeypatch)
    plot_ranking(rs, tmp_path / "ranking.png", "ranking")
    ax = seen["figs"][0].axes[0]
    lo, hi = ax.get_xlim()
    assert 4.7 < lo < 4.796 and 5.007 < hi < 5.1
    assert (5.007 - 4.796) / (hi - lo) > 0.6  # the gap takes most of the axis
    assert not ax.patches  # no bars: no length to read as a ratio
    assert (tmp_path / "ranking.png").stat().st_size > 1000


def test_one_colour_per_layout_in_every_figure_and_legends_beside_the_axes(tmp_path, monkeypatch):
    from rins.plots import layout_color, plot_depth, plot_finals

    def run(sig, budget, loss, p_skip=0.0, adapters="none"):
        r = _run(f"{sig}{budget}{p_skip}{adapters}", sig, loss)
        r.budget, r.p_skip, r.adapters = budget, p_skip, adapters
        r.val_loss_r = {"1": loss + 0.2, "2": loss, "3": loss - 0.01}
        return r

    rs = [run(sig, b, 5 - 0.1 * i - 0.2 * j) for i, sig in enumerate(["AB", "A^2B", "(AB)^2"])
          for j, b in enumerate([1e12, 3e12])]
    stoch = [run("A^3B", 3e12, 4.7), run("A^3B", 3e12, 4.75, 0.5), run("A^3B", 3e12, 4.72, 0.5, "round")]
    seen = _spy_savefig(monkeypatch)
    curve = [{"flops": 1e11 * 2 ** i, "val_loss": 6 - 0.1 * i} for i in range(5)]
    plot_curves([(r.layout, curve, layout_color(r.signature)) for r in rs[::2]], tmp_path / "c.png")
    plot_finals(rs, tmp_path / "f.png", "finals")
    plot_depth(stoch, rs[1], [1, 2, 3], tmp_path / "d.png", "depth")
    colours: dict[str, set] = {}
    for fig in seen["figs"]:
        ax = fig.axes[0]
        for line in ax.get_lines():
            name = line.get_label().split(" [")[0]
            if not name.startswith("_") and "baseline" not in name:
                colours.setdefault(name, set()).add(matplotlib.colors.to_hex(line.get_color()))
        legend = ax.get_legend()
        assert legend is not None
        # beside the axes: the legend's box starts right of the plotting area, so it covers no curve
        assert legend.get_window_extent().x0 >= ax.get_window_extent().x1
    assert colours["AB"] == {"#000000"} and colours["A^2B"] == {matplotlib.colors.to_hex("tab:red")}
    assert all(len(c) == 1 for c in colours.values()), colours  # a layout has one colour across the figures
    flat = [c for cs in colours.values() for c in cs]
    assert len(set(flat)) == len(flat)  # and no two layouts share one
    depth_ax = seen["figs"][-1].axes[0]
    assert [t for t in depth_ax.get_xticks() if t == int(t)] == list(depth_ax.get_xticks())  # whole depths only


def test_siglip_benchmark_plot_has_integer_depth_ticks(tmp_path, monkeypatch):
    """The SigLIP study figure: depth ticks are whole rounds and the no-recursion line is under the curves."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("siglip_cpu_study", ROOT / "benchmarks" / "siglip_cpu_study.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    tower = {"n_layers": 4, "d_model": 32}
    res = [{"name": "siglip-baseline", "task": "siglip", "model": {"image": tower, "text": tower},
            "zeroshot_top1": 0.7},
           {"name": "siglip-rins-image", "task": "siglip", "model": {"image": {**tower, "signature": "A^2B"},
                                                                     "text": tower},
            "zeroshot_top1_r": {"1": 0.6, "2": 0.68, "3": 0.69}},
           {"name": "vit-rins", "task": "vit", "model": {**tower, "signature": "A^2B"},
            "val_acc_r": {"1": 0.5, "2": 0.6, "3": 0.62}}]
    seen = _spy_savefig(monkeypatch)
    mod.plot(res, tmp_path / "study.png")
    ax = seen["figs"][0].axes[0]
    assert all(float(t).is_integer() for t in ax.get_xticks() if 1 <= t <= 3)
    base = next(x for x in ax.get_lines() if "no recursion" in x.get_label())
    curve = next(x for x in ax.get_lines() if x.get_label() == "siglip-rins-image")
    assert base.get_zorder() < curve.get_zorder()

