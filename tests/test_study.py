"""The long-training study's machinery: committed run summaries, a sweep that skips what they hold, a
report built from summaries alone, and the crossover / equal-tokens / seed statistics it states."""

import json
import math
import shutil

import numpy as np
import pytest

from rins.cli import run_verb
from rins.report import build_report
from rins.runs import SUMMARY_FORMAT, load_runs, load_summary, run_summary
from rins.study_report import crossover, curve_seeds, equal_tokens_gap, paired_diff
from rins.sweep import load_sweep


@pytest.fixture(scope="module")
def study(tmp_path_factory, corpus):
    root = tmp_path_factory.mktemp("study")
    ood = root / "ood"
    ood.mkdir()
    for i in range(3):
        (ood / f"k{i}.txt").write_text("kernel driver module interrupt\n" * 300)
    sw = root / "s.toml"
    sw.write_text(f"""
[sweep]
out_dir = "{root / 'runs'}"
results_dir = "{root / 'results'}"
evals = ["{ood}"]
eval_batches = 2
threads = 1
[base]
preset = "tiny"
progress = false
n_evals = 6
[base.model]
n_layers = 6
[base.data]
corpus = "{corpus}"
cache_dir = "{root / 'cache'}"
[[grid]]
name = "lr-scan"
layouts = ["AB"]
budgets = [1.5e9]
lr = [1e-3, 3e-3]
[[grid]]
name = "main"
layouts = ["AB", "A^2B"]
budgets = [1.5e9, 3e9]
[[grid]]
name = "seeds"
layouts = ["AB", "A^2B"]
budgets = [3e9]
seeds = [1]
""")
    assert run_verb("sweep", [str(sw)]) == 0
    return root, sw


def test_every_finished_run_has_a_summary(study):
    root, sw = study
    sweep = load_sweep(sw)
    assert len(sweep.runs) == 8 and {r.lr for r in sweep.runs} == {None, 1e-3, 3e-3}
    names = {p.stem for p in (root / "results").glob("*.json")}
    assert names == {r.name for r in sweep.runs}
    s = load_summary(root / "results" / "base_Ax2B_C3e9_s1.json")
    assert s["format"] == SUMMARY_FORMAT and s["config"]["seed"] == 1 and s["grid"] == "seeds"
    assert s["params"] == s["embedding_params"] + s["non_embedding_params"] and s["non_embedding_params"] > 0
    assert s["flops"] <= 3e9 and s["tokens"] > 0 and set(s["val_loss_r"]) == {"1", "2", "3"}
    assert s["curve"] and s["curve"][-1]["step"] == s["steps"] and s["train_curve"][-1][0] == s["steps"]
    # how often the run read its training split: the split's tokens are the prepared corpus's
    metas = [json.loads(m.read_text()) for m in (root / "cache" / "data").glob("*/meta.json")]
    assert s["train_units"] in {m["n_train_tokens"] for m in metas if m["corpus"] == s["config"]["data"]["corpus"]}
    assert s["passes"] == pytest.approx(s["tokens"] / s["train_units"]) and s["passes"] > 0
    ev = s["evals"][str(root / "ood")]
    assert [r["r"] for r in ev["results"]] == [1, 2, 3] and all(r["bpb"] > 0 for r in ev["results"])
    # the summary equals what run_summary computes from the run directory (modulo time stamp and extras)
    again = run_summary(root / "runs" / s["name"])
    assert again["val_loss_r"] == s["val_loss_r"] and again["curve"] == s["curve"]
    scan = load_summary(root / "results" / "base_AB_C1.5e9_lr0.001_s0.json")
    assert scan["lr_scan"] and scan["config"]["optim"]["lr"] == 1e-3


def test_summaries_outlive_the_run_directories(study, tmp_path, capsys):
    """On another machine (no run directories) the sweep skips every summarised run and the report is
    built from the committed summaries alone."""
    root, sw = study
    results = tmp_path / "results"
    shutil.copytree(root / "results", results)
    moved = tmp_path / "sw.toml"
    moved.write_text(sw.read_text().replace(str(root / "results"), str(results))
                     .replace(str(root / "runs"), str(tmp_path / "runs")))
    capsys.readouterr()
    assert run_verb("sweep", [str(moved)]) == 0
    out = capsys.readouterr().out
    assert out.count("complete, skipped") == 8 and not (tmp_path / "runs").exists() or \
        not any((tmp_path / "runs").glob("base_*/"))
    res = build_report([results], tmp_path / "rep", n_boot=10)
    text = res["text"]
    runs, _ = load_runs([results])
    assert len(runs) == 8
    assert "The long-training study" in text and "Learning-rate scan" in text
    assert "mean ± standard deviation over seeds" in text and "(n=2)" in text
    assert "Out of domain" in text and "r = 3" in text
    data = res["data"]["study"]
    assert set(data["lr_scan"]) == {"L6-d32 AB 1.5e+09"}
    # the crossover numbers are the paired seed differences of the summaries
    d = data["L6-d32"]["crossover"]["A^2B"]["diffs"]["3e+09"]
    s = {k: load_summary(results / f"base_{k}.json")["val_loss"] for k in
         ("AB_C3e9_s0", "AB_C3e9_s1", "Ax2B_C3e9_s0", "Ax2B_C3e9_s1")}
    want = np.mean([s["Ax2B_C3e9_s0"] - s["AB_C3e9_s0"], s["Ax2B_C3e9_s1"] - s["AB_C3e9_s1"]])
    assert d[0] == pytest.approx(want) and d[2] == 2
    # an out-of-sample run (holdout) is reported against the fits, never in the tables or the fits
    held = load_summary(results / "base_AB_C3e9_s0.json")
    held.update(name="base_AB_C6e9_s0", holdout=True, grid="past", grids=["past"])
    held["config"]["budget"]["flops"] = 6e9
    held["config"]["name"] = "base_AB_C6e9_s0"
    (results / "base_AB_C6e9_s0.json").write_text(json.dumps(held))
    res = build_report([results], tmp_path / "rep2", n_boot=10)
    study = res["data"]["study"]["L6-d32"]
    assert study["table"] == data["L6-d32"]["table"] and study["crossover"] == data["L6-d32"]["crossover"]
    assert study["holdout"] == {"AB 6e+09 s0": {"measured": held["val_loss"],
                                                "status": "too few budgets to fit (need 4)"}}
    assert "1 out-of-sample check(s), left out of the fits and claims" in res["text"]


def test_crossover_found_where_curves_cross():
    c = np.array([1e12, 3e12, 1e13, 3e13, 1e14])
    base = {float(x): 2.0 + 30.0 * x ** -0.12 for x in c}
    other = {float(x): 1.8 + 40.0 * x ** -0.12 for x in c}  # worse now, better asymptote
    want = (10.0 / 0.2) ** (1 / 0.12)  # 30 x^-c + 2 = 40 x^-c + 1.8  =>  x^-c = 0.02
    res = crossover(base, other, n_boot=20)
    assert res["status"] == "ok" and res["crossing"] == pytest.approx(want, rel=0.05)
    never = crossover(base, {k: v + 0.1 for k, v in base.items()}, n_boot=10)
    assert never["status"] == "ok" and math.isinf(never["crossing"])
    assert crossover(dict(list(base.items())[:3]), other)["status"] == "too few budgets"


def test_crossing_interval_counts_resamples_that_never_cross():
    """An interval over only the crossing resamples can exclude the point estimate; never-crossing ones are inf."""
    from rins.study_report import _interval

    assert _interval([1.0] * 50 + [math.inf] * 50) == [1.0, math.inf]
    lo, hi = _interval([float(x) for x in range(1, 201)])
    assert lo == 5.0 and hi == 196.0


def test_fits_use_only_the_seeds_run_at_every_budget():
    """Seeds 1-2 at the top budget only (each with its own split) must not bend the fitted curves."""
    base = {1e12: {0: 4.0}, 1e13: {0: 3.0, 1: 3.2, 2: 3.5}}
    other = {1e12: {0: 4.5, 1: 4.6}, 1e13: {0: 3.1, 1: 3.3, 2: 3.6}}
    assert curve_seeds(base, other) == [0]
    assert curve_seeds({1e12: {0: 1.0, 1: 1.0}}, {1e12: {1: 1.0, 0: 2.0}}) == [0, 1]
    assert curve_seeds(base, {1e12: {1: 4.6}, 1e13: {0: 3.1}}) == []


def test_paired_difference_uses_only_shared_seeds():
    """Seed 3 of ``a`` has no partner in ``b`` and must not enter the mean or the standard error."""
    mean, se, per = paired_diff({0: 3.0, 1: 3.4, 2: 3.2, 3: 9.0}, {0: 2.9, 1: 3.1, 2: 3.2})
    assert per == pytest.approx([0.1, 0.3, 0.0])
    assert mean == pytest.approx(0.4 / 3)
    assert se == pytest.approx(np.std([0.1, 0.3, 0.0], ddof=1) / math.sqrt(3))
    mean, se, per = paired_diff({0: 3.0}, {0: 2.5})
    assert (mean, per) == (pytest.approx(0.5), [pytest.approx(0.5)]) and math.isnan(se)
    mean, _, per = paired_diff({1: 3.0}, {0: 2.5})
    assert per == [] and math.isnan(mean)


def test_equal_tokens_gap_interpolates_in_log_tokens():
    pts = [(1e6, 4.0), (1e8, 3.0)]
    assert equal_tokens_gap(pts, 1e7, 3.4) == pytest.approx(-0.1)
    assert equal_tokens_gap(pts, 1e9, 3.0) is None


def test_summary_of_an_incomplete_run_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(ValueError, match="not a complete run"):
        run_summary(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="not a rins run summary"):
        load_summary(bad)


# the GPU study trains in bf16: on a CPU without native bf16 the trainer rightly says so (rins.hardware)
@pytest.mark.filterwarnings("ignore:dtype = bfloat16 on cpu:UserWarning")
def test_gpu_study_command_is_sized_and_runs_tiny_on_cpu(tmp_path, corpus):
    """configs/study-long-gpu.toml: 10-100 M parameters, >= 4 budgets over >= 1.5 decades, the main
    layouts; the same file shrunk to a tiny model runs on CPU and writes the same summaries."""
    from pathlib import Path

    from rins.sweep import plan_run

    path = Path(__file__).resolve().parent.parent / "configs" / "study-long-gpu.toml"
    sw = load_sweep(path)
    rows = [plan_run(r) for r in sw.runs]
    assert all(10e6 <= row["params"] <= 100e6 for row in rows)
    budgets = sorted({r.budget for r in sw.runs})
    assert len(budgets) >= 4 and budgets[-1] / budgets[0] >= 10 ** 1.5
    assert {"AB", "A^2B", "A^3B", "(AB)^2", "AB^2C"} <= {r.signature for r in sw.runs}
    assert any(r.p_skip > 0 and r.adapters == "round" for r in sw.runs)
    assert sw.results_dir is not None and sw.evals
    text = path.read_text()
    for old, new in (('"mix-large:-linux-doc"', f'"{corpus}"'), ('["mix-large:linux-doc"]', f'["{corpus}"]'),
                     ("vocab_size = 8192", "vocab_size = 512"), ("d_model = 384", "d_model = 32"),
                     ("n_heads = 6", "n_heads = 4"), ("compile = true", "compile = false"),
                     ('device = "auto"', 'device = "cpu"'), ("batch_size = 64 ", "batch_size = 4 "),
                     ("results/study-long-gpu", str(tmp_path / "results")),
                     ("runs/study-long-gpu", str(tmp_path / "runs")), ("1e14, 3.2e14, 1e15, 3.2e15", "1e10, 2e10")):
        assert old in text, old
        text = text.replace(old, new)
    tiny = tmp_path / "tiny.toml"
    tiny.write_text(text.replace("[base.data]", f'[base.data]\ncache_dir = "{tmp_path / "cache"}"'))
    assert run_verb("sweep", [str(tiny), "--only", "G_A*B_C1e10_s0"]) == 0
    got = sorted(p.stem for p in (tmp_path / "results").glob("*.json"))
    assert got == ["G_AB_C1e10_s0", "G_Ax2B_C1e10_s0", "G_Ax3B_C1e10_s0"]
    assert load_summary(tmp_path / "results" / "G_AB_C1e10_s0.json")["evals"]


def test_lr_table_shows_the_main_run_a_scan_shares():
    """A main grid at the scan's best lr owns that run (scan = false): the scan's table still shows it, and
    only for the scan's seed and budget."""
    from pathlib import Path

    from rins.runs import RunInfo
    from rins.study_report import study_section

    def run(lr, loss, scan, seed=0, budget=1e13):
        return RunInfo(name=f"AB_{lr}_{seed}_{budget}", run_dir=Path("."), signature="AB", degree=1, p_skip=0.0,
                       adapters="none", size="M", budget=budget, seed=seed, n_layers=6, complete=True,
                       val_loss=loss, lr=lr, lr_scan=scan, tokens=1000, flops=budget)

    scan = [run(1e-3, 4.0, True), run(4e-3, 4.2, True), run(4e-3, 3.0, True, seed=1)]  # seed 1: not compared
    main = [run(2e-3, 3.9, False), run(2e-3, 3.5, False, seed=1), run(2e-3, 3.0, False, budget=1e14)]
    text, data = study_section(main, scan, n_boot=2)
    assert data["lr_scan"]["M AB 1e+13"] == {"losses": {"0.001": 4.0, "0.002": 3.9, "0.004": 4.2},
                                             "best_lr": 0.002, "main_lr": 0.002}
    assert "| M | AB | 1e+13 | 4.0000 | **3.9000** (main) | 4.2000 |" in text


def test_holdout_runs_are_predicted_from_the_main_fits_not_fitted():
    """Out-of-sample runs (``holdout``) are compared with the power law fitted to the main runs of their seed:
    one on the curve lands inside the bootstrap interval, one 0.5 nats off lands outside, the gap to a held-out
    AB is measured against the predicted gap, and no held-out run enters the fits or the tables."""
    from pathlib import Path

    from rins.runs import RunInfo
    from rins.study_report import predict_budget, study_section

    def law(c, beta, eps):
        return eps + beta * c ** -0.15

    noise = [0.004, -0.003, 0.002, -0.004, 0.001]
    budgets = [1e12, 3e12, 1e13, 3e13, 1e14]

    def run(sig, budget, loss, holdout=False):
        return RunInfo(name=f"{sig}_{budget:g}{'_h' if holdout else ''}", run_dir=Path("."), signature=sig,
                       degree=1, p_skip=0.0, adapters="none", size="M", budget=budget, seed=0, n_layers=6,
                       complete=True, val_loss=loss, lr=2e-3, holdout=holdout, tokens=1000, flops=budget)

    ab, a2b = (lambda c: law(c, 400.0, 2.0)), (lambda c: law(c, 500.0, 1.9))
    main = [run("AB", b, ab(b) + e) for b, e in zip(budgets, noise)]
    main += [run("A^2B", b, a2b(b) - e) for b, e in zip(budgets, noise)]
    held = [run("AB", 3e14, ab(3e14), holdout=True), run("A^2B", 3e14, a2b(3e14) + 0.5, holdout=True)]
    text, data = study_section(main, [], n_boot=50, holdout=held)
    rows = data["M"]["holdout"]
    got_ab, got = rows["AB 3e+14 s0"], rows["A^2B 3e+14 s0"]
    assert got_ab["inside"] and abs(got_ab["predicted"] - ab(3e14)) < 0.02
    assert got_ab["ci"][0] < got_ab["predicted"] < got_ab["ci"][1]
    assert not got["inside"] and got["measured"] - got["predicted"] > 0.45
    assert got["gap"] == pytest.approx(a2b(3e14) + 0.5 - ab(3e14))
    assert got["gap_predicted"] == pytest.approx(a2b(3e14) - ab(3e14), abs=0.03) and not got["gap_inside"]
    assert "**outside** the interval" in text and "inside the interval" in text
    assert "3e+14" not in data["M"]["table"]["losses"]["AB"]  # held-out runs stay out of the tables and fits
    assert data["M"]["crossover"]["A^2B"]["crossover"]["base_fit"] == \
        study_section(main, [], n_boot=50)[1]["M"]["crossover"]["A^2B"]["crossover"]["base_fit"]
    short = predict_budget({"x": {1e12: 3.0, 1e13: 2.9, 1e14: 2.8}}, 3e14)
    assert short["status"].startswith("too few budgets")


def test_holdout_points_join_a_refit_of_the_crossing():
    """After the out-of-sample check the report refits the crossing on main + held-out budgets (same seed):
    curves built to cross at 1e15 are found to cross there, through every budget, and the held-out gap is
    quoted; the main fits stay as they were."""
    from pathlib import Path

    from rins.runs import RunInfo
    from rins.study_report import study_section

    def run(sig, budget, loss, holdout=False):
        return RunInfo(name=f"{sig}_{budget:g}", run_dir=Path("."), signature=sig, degree=1, p_skip=0.0,
                       adapters="none", size="M", budget=budget, seed=0, n_layers=6, complete=True, val_loss=loss,
                       lr=2e-3, holdout=holdout, tokens=1000, flops=budget)

    def ab(c):
        return 2.0 + 400.0 * c ** -0.15

    def a2b(c):  # 0.2 lower floor, larger β: above AB below 1e15, below it beyond
        return 1.8 + (400.0 + 0.2 / 1e15 ** -0.15) * c ** -0.15

    budgets, noise = [1e12, 3e12, 1e13, 3e13, 1e14], [0.002, -0.001, 0.001, -0.002, 0.001]
    main = [run("AB", b, ab(b) + e) for b, e in zip(budgets, noise)]
    main += [run("A^2B", b, a2b(b) - e) for b, e in zip(budgets, noise)]
    held = [run(s, b, f(b), holdout=True) for b in (2e14, 4e14) for s, f in (("AB", ab), ("A^2B", a2b))]
    text, data = study_section(main, [], n_boot=20, holdout=held)
    refit = data["M"]["holdout"]["refit A^2B s0"]
    assert refit["status"] == "ok" and 5e14 < refit["crossing"] < 2e15, refit["crossing"]
    assert refit["base_fit"]["n_points"] == refit["other_fit"]["n_points"] == 7
    assert f"held-out gaps 2e+14: {a2b(2e14) - ab(2e14):+.4f}; 4e+14: {a2b(4e14) - ab(4e14):+.4f}" in text
    assert "through 7 budgets" in text and "measured below AB" not in text
    # a held-out point past the crossing is reported as measured, not only fitted
    held += [run("AB", 4e15, ab(4e15), holdout=True), run("A^2B", 4e15, a2b(4e15), holdout=True)]
    assert a2b(4e15) - ab(4e15) < -0.01
    assert "**measured below AB at C = 4e+15**, one seed" in study_section(main, [], n_boot=5, holdout=held)[0]
    assert data["M"]["crossover"]["A^2B"]["crossover"]["base_fit"] == \
        study_section(main, [], n_boot=20)[1]["M"]["crossover"]["A^2B"]["crossover"]["base_fit"]
