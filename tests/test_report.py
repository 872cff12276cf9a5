"""``rins report``: files, tables and verdicts computed from the numbers (never hard-coded)."""

import json
import re
import shutil
from pathlib import Path

import pytest

from rins.claims import best_depth_by_size_and_budget
from rins.cli import run_verb
from rins.report import build_report
from rins.runs import RunInfo, family, load_runs


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory, corpus) -> Path:
    """A small finished sweep: 5 layouts, 2 budgets for AB / A^2B, stochastic A^3B ± adapters."""
    root = tmp_path_factory.mktemp("rep")
    sw = root / "s.toml"
    sw.write_text(f"""
[sweep]
out_dir = "{root / 'runs'}"
threads = 1
[base]
preset = "tiny"
progress = false
n_evals = 8
[base.model]
n_layers = 6
[base.data]
corpus = "{corpus}"
cache_dir = "{root / 'cache'}"
[[grid]]
name = "main"
layouts = ["AB", "A^2B"]
budgets = [1.5e9, 3e9]
[[grid]]
name = "others"
layouts = ["A^3B", "(AB)^2", "AB^2C", "ABA"]
budgets = [3e9]
[[grid]]
name = "stochastic"
layouts = ["A^3B"]
budgets = [3e9]
p_skip = [0.5]
adapters = ["none", "round"]
""")
    assert run_verb("sweep", [str(sw)]) == 0
    return root / "runs"


def test_family_labels():
    assert family("AB") == "baseline"
    assert family("A^3B") == "RINS"
    assert family("(AB)^2") == "RAO"
    assert family("AB^2C") == "middle"
    assert family("(ABC)^2") == "cycle"
    assert family("ABA") == "other"
    assert family("A^2B", degree=2) == "other"


def test_report_files_tables_and_verdicts(sweep_dir, tmp_path):
    res = build_report([sweep_dir], tmp_path / "out", n_boot=20)
    out = tmp_path / "out"
    text = (out / "report.md").read_text()
    runs, skipped = load_runs([sweep_dir])
    assert len(runs) == 10 and not skipped
    for r in runs:
        assert r.name in text
        assert r.params > 0 and r.steps > 0 and r.tokens > 0 and r.flops > 0
    for png in ("ranking.png",):
        assert (out / png).stat().st_size > 1000
    assert len(list(out.glob("curves_*.png"))) == 2 and len(list(out.glob("stochastic_*.png"))) == 1
    data = json.loads((out / "report.json").read_text())
    assert data["runs"] and data["claim1"]["n"] == 4  # budget 1.5e9: vs AB; 3e9: vs AB, RAO, middle
    for claim in ("Claim 1", "Claim 2", "Claim 3", "Claim 4", "Claim 5", "Claim 6"):
        assert claim in text
    assert text.count("Verdict:") >= 5
    # compute matching is stated and measured
    assert "Compute matching" in text and data["runs"][0]["flops"] <= 3e9
    # the no-regret table compares the adapter run at r=1 with the baseline of the same budget
    row = next(r for r in data["claim6"]["rows"] if r["adapters"] == "round")
    base = next(r for r in runs if r.signature == "AB" and r.budget == 3e9)
    assert row["baseline"] == pytest.approx(base.val_loss)
    assert res["data"]["claim3"]["budget"] == 3e9 and len(res["data"]["claim3"]["ranking"]) == 6


def _set_loss(run_dir: Path, val: float, r1: float | None = None) -> None:
    p = run_dir / "summary.json"
    s = json.loads(p.read_text())
    s["val_loss"] = val
    if r1 is not None:
        s["val_loss_r"]["1"] = r1
    p.write_text(json.dumps(s))


def test_verdicts_follow_the_numbers(sweep_dir, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(sweep_dir, runs)
    base = json.loads((runs / "base_AB_C3e9_s0" / "summary.json").read_text())["val_loss"]
    # make every RINS run clearly the best, and the adapter run clearly better than AB at r = 1
    for name in ("base_Ax2B_C1.5e9_s0", "base_Ax2B_C3e9_s0", "base_Ax3B_C3e9_s0"):
        _set_loss(runs / name, 0.5)
    _set_loss(runs / "base_Ax3B_C3e9_ps0.5_adround_s0", 0.6, r1=base - 1.0)
    good = build_report([runs], tmp_path / "good", n_boot=0)["text"]
    assert re.search(r"claim 1 \*\*held\*\*", good)
    assert re.search(r"best RINS layout ranks \*\*1 of 6\*\*", good)
    assert re.search(r"no-regret claim \*\*held\*\*", good)
    # now the opposite
    for name in ("base_Ax2B_C1.5e9_s0", "base_Ax2B_C3e9_s0", "base_Ax3B_C3e9_s0"):
        _set_loss(runs / name, 50.0)
    _set_loss(runs / "base_Ax3B_C3e9_ps0.5_adround_s0", 50.0, r1=base + 1.0)
    bad = build_report([runs], tmp_path / "bad", n_boot=0)["text"]
    assert re.search(r"claim 1 \*\*did not hold\*\*", bad)
    assert re.search(r"no-regret claim \*\*did not hold\*\*", bad)
    assert "best r = [1, 1]" in bad


def _set_depths(run_dir: Path, **loss_r: float) -> None:
    p = run_dir / "summary.json"
    s = json.loads(p.read_text())
    s["val_loss_r"].update({k.removeprefix("r"): v for k, v in loss_r.items()})
    p.write_text(json.dumps(s))


def test_stochastic_tradeoff_verdict_follows_the_numbers(sweep_dir, tmp_path):
    """Claim 5: a higher p_s should lower the r = 1 loss and cost some loss at the full depth."""
    runs = tmp_path / "runs"
    shutil.copytree(sweep_dir, runs)
    _set_depths(runs / "base_Ax3B_C3e9_s0", r1=6.0, r3=4.0)
    for name in ("base_Ax3B_C3e9_ps0.5_s0", "base_Ax3B_C3e9_ps0.5_adround_s0"):
        _set_depths(runs / name, r1=4.5, r3=4.3)
    seen = build_report([runs], tmp_path / "seen", n_boot=0)["text"]
    summary = seen.split("## Summary")[1].split("\n## ")[0]
    assert re.search(r"flexibility/peak trade-off .*held in 2 of 2 comparisons \(.*seed 0, adapters=none; .*"
                     r"adapters=round\)", summary)
    # no peak cost: the stochastic runs are at least as good at full depth
    for name in ("base_Ax3B_C3e9_ps0.5_s0", "base_Ax3B_C3e9_ps0.5_adround_s0"):
        _set_depths(runs / name, r1=4.5, r3=3.9)
    unseen = build_report([runs], tmp_path / "unseen", n_boot=0)["text"]
    assert "held in 0 of 2 comparisons." in unseen.split("## Summary")[1].split("\n## ")[0]


def test_cli_report(sweep_dir, tmp_path, capsys):
    assert run_verb("report", [str(sweep_dir / "base_AB_C3e9_s0"), str(sweep_dir / "base_Ax2B_C3e9_s0"),
                        "--out", str(tmp_path / "o"), "--x", "tokens", "--n-boot", "0"]) == 0
    assert "2 runs" in capsys.readouterr().out
    assert (tmp_path / "o" / "report.md").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_verb("report", [str(empty), "--out", str(tmp_path / "o2")]) == 2
    assert "no complete run" in capsys.readouterr().err
    assert run_verb("report", [str(tmp_path / "missing"), "--out", str(tmp_path / "o3")]) == 2


def _lm_run(sig: str, size: str, params: int, budget: float, loss: float) -> RunInfo:
    return RunInfo(name=f"{size}_{sig}_{budget:g}", run_dir=Path("."), signature=sig, degree=1, p_skip=0.0,
                   adapters="none", size=size, budget=budget, seed=0, n_layers=4, complete=True, params=params,
                   val_loss=loss)


def test_size_dependence_compares_sizes_with_their_own_budgets():
    """Claim 2's 'the smaller model gains more' when the sizes share no budget: the smaller model's gain is
    interpolated in log budget at the larger one's budgets inside its range, and said so."""
    runs = [_lm_run("AB", "S", 100, 1e10, 5.0), _lm_run("A^2B", "S", 100, 1e10, 5.4),   # gain -0.4
            _lm_run("AB", "S", 100, 1e12, 4.0), _lm_run("A^2B", "S", 100, 1e12, 4.0),   # gain 0.0
            _lm_run("AB", "M", 900, 1e11, 4.5), _lm_run("A^2B", "M", 900, 1e11, 4.8),   # gain -0.3 vs S's -0.2
            _lm_run("AB", "M", 900, 1e13, 3.0), _lm_run("A^2B", "M", 900, 1e13, 3.1)]   # outside S's budgets
    text, data = best_depth_by_size_and_budget(runs, margin=0.01)
    assert data["smaller_gains_more"] == [True]
    assert "smaller model S gains -0.2000 (interpolated in log budget) vs -0.3000 for M (more)" in text
    assert "gains more at 1 of 1 budgets" in text
    # the other way round: M gains more than S's interpolated -0.2
    runs[5] = _lm_run("A^2B", "M", 900, 1e11, 4.6)
    assert best_depth_by_size_and_budget(runs, margin=0.01)[1]["smaller_gains_more"] == [False]


def test_two_run_grid_invents_nothing(sweep_dir, tmp_path):
    """A report on two run directories (AB and A^2B at one budget): counts come from the runs (the
    non-embedding count from the config, as a run summary has it), the fit uses the points `rins fit` fits,
    and no claim gets a verdict it lacks the runs for; each says what is missing."""
    from rins.runs import run_summary
    from rins.scaling import load_curve

    two = [sweep_dir / "base_AB_C3e9_s0", sweep_dir / "base_Ax2B_C3e9_s0"]
    res = build_report(two, tmp_path / "o", n_boot=0)
    text, data = res["text"], res["data"]
    want = run_summary(two[0])["non_embedding_params"]
    assert want > 0 and f"{want:,} non-embedding" in text and " 0 non-embedding" not in text
    for fit in data["claim4"]["fits"]:
        run = next(p for p in two if ("Ax2B" in p.name) == (fit["signature"] == "A^2B"))
        assert fit["points"] == len(load_curve(run)[0]) > 3, (fit, run)
    summary = text.split("## Summary")[1].split("\n## ")[0]
    assert "**held**" not in summary and "did not hold" not in summary, summary  # no verdict either way
    for claim, missing in (("1", "missing: RAO (e.g. (AB)^2), middle (e.g. AB^2C)"),
                           ("2", "a second budget for one model size"), ("3", "at least 4 layouts"),
                           ("6", "no stochastic run")):
        assert re.search(rf"Not tested: .*{re.escape(missing)}", text), (claim, missing)
    assert data["claim1"]["held"] is None and data["claim1"]["n"] == 1


def test_missing_counts_are_not_zero():
    """A run that recorded no parameter count shows "n/a", never 0."""
    from rins.study_report import study_section

    runs = [_lm_run("AB", "S", 0, 1e10, 5.0), _lm_run("A^2B", "S", 0, 1e10, 5.1)]
    text = study_section(runs, [], n_boot=0)[0]
    assert "(n/a parameters, n/a non-embedding)" in text
