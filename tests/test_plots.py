"""Plots people can read at a glance: log-axis ticks at every range, ranking bars from zero, one style."""

import math
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rins.report import RunInfo, _plot_ranking, _short_number, log_axis, log_ticks, plot_curves  # noqa: E402


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


def test_ranking_bars_start_at_zero_and_curves_render(tmp_path):
    rs = [_run("a", "AB", 5.32), _run("b", "A^2B", 5.18), _run("c", "(AB)^2", 5.25)]
    captured = {}
    orig = plt.Figure.savefig

    def spy(fig, *a, **k):
        captured["xlim"] = fig.axes[0].get_xlim()
        captured["widths"] = sorted(p.get_width() for p in fig.axes[0].patches)
        return orig(fig, *a, **k)

    plt.Figure.savefig = spy
    try:
        _plot_ranking(rs, tmp_path / "ranking.png", "ranking")
    finally:
        plt.Figure.savefig = orig
    assert captured["xlim"][0] == 0 and captured["widths"] == [5.18, 5.25, 5.32]
    assert (tmp_path / "ranking.png").stat().st_size > 1000
    curve = [{"flops": 1.8e12 * 1.03 ** i, "val_loss": 6 - 0.1 * i} for i in range(6)]
    plot_curves([("AB", curve)], tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000
