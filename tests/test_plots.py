"""Plots people can read at a glance: log-axis ticks at every range, a ranking that spans the data, one colour per
layout, legends beside the curves, whole-number depth ticks."""

import math
from pathlib import Path

import matplotlib
import pytest
from conftest import load_script

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
    mod = load_script("benchmarks/siglip_cpu_study.py")
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


# the layouts the studies draw, each of which must have a colour of its own
NAMED_LAYOUTS = [("AB", 1, 0.0, "none"), ("A^2B", 1, 0.0, "none"), ("A^3B", 1, 0.0, "none"), ("A^4B", 1, 0.0, "none"),
                 ("A^5B", 1, 0.0, "none"), ("(AB)^2", 1, 0.0, "none"), ("(AB)^3", 1, 0.0, "none"),
                 ("(AB)^4", 1, 0.0, "none"), ("AB^2C", 1, 0.0, "none"), ("AB^3C", 1, 0.0, "none"),
                 ("AB^4C", 1, 0.0, "none"), ("(ABC)^2", 1, 0.0, "none"), ("(ABC)^3", 1, 0.0, "none"),
                 ("ABA", 1, 0.0, "none"), ("A^3B", 1, 0.25, "none"), ("A^3B", 1, 0.5, "none"),
                 ("A^3B", 1, 0.25, "round"), ("A^3B", 1, 0.5, "round")]


def _hex(c) -> str:
    return matplotlib.colors.to_hex(c)


def test_distinct_layouts_get_distinct_colours():
    from rins.plots import UNKNOWN_LAYOUT_COLOR, layout_color

    named = [_hex(layout_color(*layout)) for layout in NAMED_LAYOUTS]
    assert len(set(named)) == len(named), dict(zip(NAMED_LAYOUTS, named, strict=True))
    # the issue-26 bug: A^2B and A^3B shared red; AB was blue in one figure and black in another
    assert _hex(layout_color("A^2B")) != _hex(layout_color("A^3B")) and _hex(layout_color("AB")) == "#000000"
    # a layout outside the families (the taxonomy's, a nested degree) never takes a named layout's colour
    others = [("ABA^2", 1), ("A^2BA", 1), ("AB^2", 1), ("AB^2A", 1), ("ABAC", 1), ("A^2BC", 1), ("A^2B^2", 1),
              ("AB^3", 1), ("A^2B", 2), ("(AB)^2", 3)]
    assert not {_hex(layout_color(*o)) for o in others} & set(named)
    assert _hex(UNKNOWN_LAYOUT_COLOR) not in set(named) | {_hex(layout_color(*o)) for o in others}
    assert layout_color("rins(2)") == layout_color("A^2B") and layout_color("rao(3)") == layout_color("(AB)^3")


def _line_colours(ax) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for line in ax.get_lines():
        if not line.get_label().startswith("_"):
            out.setdefault(line.get_label(), set()).add(_hex(line.get_color()))
    return out


def test_a_layout_has_one_colour_in_every_plotting_module(tmp_path, monkeypatch):
    """The demo, the report's figures, the adaptive-depth figure and the SigLIP benchmark take a layout's colour
    from rins.plots.layout_color: the same layout is drawn in the same colour by each of them."""
    import json

    from rins import demo
    from rins.adaptive_report import adaptive_section
    from rins.plots import layout_color, plot_ranking

    seen = _spy_savefig(monkeypatch)
    want = {layout: _hex(layout_color(*layout)) for layout in NAMED_LAYOUTS}
    got: list[tuple[str, tuple, str]] = []  # (module, layout, colour drawn)

    # rins demo (training replaced by a fixed summary and learning curve)
    curve = [{"flops": 1e8 * 2 ** i, "val_loss": 6 - 0.1 * i} for i in range(4)]
    monkeypatch.setattr(demo, "train", lambda cfg, resume=True, **kw: {"val_loss": 5.0, "val_loss_r": {"1": 5.0},
                                                                 "flops": 1e9, "params": 10, "steps": 5, "tokens": 99})
    monkeypatch.setattr(demo, "read_log", lambda run_dir: curve)
    demo.run_demo(tmp_path / "demo", budget=1e9, preset="tiny", procs=1)  # in this process: train is replaced
    demo_layouts = {"baseline AB": ("AB", 1, 0.0, "none"), "RINS A^2B": ("A^2B", 1, 0.0, "none"),
                    "stoch. RINS A^3B p_s=0.5 + adapters": ("A^3B", 1, 0.5, "round")}
    for label, colours in _line_colours(seen["figs"][-1].axes[0]).items():
        got += [("demo", demo_layouts[label], c) for c in colours]

    # rins report: the ranking's dots (the curves, finals and depth figures: the test above)
    rs = [_run(sig, sig, 5 - 0.01 * i) for i, sig in enumerate(["AB", "A^2B", "A^3B", "(AB)^2", "AB^2C", "ABA"])]
    plot_ranking(rs, tmp_path / "ranking.png", "ranking")
    dots = seen["figs"][-1].axes[0].collections[-1].get_facecolors()
    got += [("report", (r.signature, 1, 0.0, "none"), _hex(c)) for r, c in zip(rs, dots, strict=True)]

    # rins report --adaptive-evals: fixed depths and every exit rule in the run's layout colour
    run = tmp_path / "A3B-run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"seed": 0, "model": {"signature": "A^3B", "p_skip": 0.5,
                                                                       "adapters": "round", "d_model": 64}}))
    ev = tmp_path / "eval.json"
    ev.write_text(json.dumps({"run": str(run), "data": "val", "results": [
        {"r": r, "flops_per_token": 1e6 * r, "loss": 3.2 - 0.1 * r} for r in (1, 2, 3)], "adaptive": [
        {"rule": rule, "r_max": 3, "flops_per_token": 1.5e6 + 1e5 * i, "loss": 3.05 - 0.01 * i, "mean_rounds": 1.5}
        for i, rule in enumerate(["kl=0.1", "kl=0.01", "hidden=0.3", "hidden=0.1"])]}))
    (tmp_path / "adaptive").mkdir()
    adaptive_section([ev], tmp_path / "adaptive")
    lines = seen["figs"][-1].axes[0].get_lines()  # errorbars: the container holds the label, not its lines
    assert len(lines) >= 5  # fixed r and the two exit-rule kinds, with their error caps
    got += [("adaptive", ("A^3B", 1, 0.5, "round"), _hex(line.get_color())) for line in lines]

    # benchmarks/siglip_cpu_study.py
    mod = load_script("benchmarks/siglip_cpu_study.py")
    tower = {"n_layers": 4, "d_model": 32}
    mod.plot([{"name": "base", "task": "siglip", "model": {"image": tower, "text": tower}, "zeroshot_top1": 0.7},
              {"name": "rins", "task": "siglip", "model": {"image": {**tower, "signature": "A^2B"}, "text": tower},
               "zeroshot_top1_r": {"1": 0.6, "2": 0.68}}], tmp_path / "siglip.png")
    siglip_layouts = {"base (no recursion)": ("AB", 1, 0.0, "none"), "rins": ("A^2B", 1, 0.0, "none")}
    for label, colours in _line_colours(seen["figs"][-1].axes[0]).items():
        got += [("siglip", siglip_layouts[label], c) for c in colours]

    assert {m for m, _, _ in got} == {"demo", "report", "adaptive", "siglip"}
    wrong = [(m, layout, c, want[layout]) for m, layout, c in got if c != want[layout]]
    assert not wrong, wrong
