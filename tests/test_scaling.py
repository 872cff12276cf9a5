"""Tests for rins.scaling: power-law and M4 fits, bootstrap CIs, extrapolation, run-dir loading, CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import curve_fit

from rins.cli import run_verb
from rins.scaling import (
    FitResult,
    extrapolation_error,
    fit,
    fit_m4,
    fit_power,
    fit_runs,
    load_curve,
    m4_loss,
)

# A power curve in FLOPs units (x spans 4 decades at ~1e15): loss 5.8 -> 2.2, plateau 2.0.
X_FLOPS = np.geomspace(1e13, 1e17, 16)
POWER = {"beta": 3e4, "c": 0.3, "eps_inf": 2.0}
# An M4 curve in token units; eps0 = ln V for a ~49k vocabulary.
X_TOK = np.geomspace(1e6, 1e10, 20)
EPS0 = 10.8
M4 = {"beta": 200.0, "c": -0.35, "alpha": 0.6, "eps_inf": 2.0}


def power_curve(x: np.ndarray, beta: float, c: float, eps_inf: float) -> np.ndarray:
    return beta * x ** (-c) + eps_inf


def noisy(y: np.ndarray, seed: int, rel: float = 0.01) -> np.ndarray:
    """1% (default) multiplicative Gaussian noise, seeded."""
    return y * (1.0 + rel * np.random.default_rng(seed).standard_normal(y.shape))


# ----------------------------------------------------------------------------------------------
# Power law


def test_power_recovers_noise_free() -> None:
    f = fit_power(X_FLOPS, power_curve(X_FLOPS, **POWER), n_boot=0)
    assert f.form == "power" and f.n_points == len(X_FLOPS)
    for k, v in POWER.items():
        assert f.params[k] == pytest.approx(v, rel=1e-6), k
    assert f.rmse < 1e-10
    assert all(math.isnan(lo) and math.isnan(hi) for lo, hi in f.ci.values())  # n_boot=0: no CIs


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_power_recovers_noisy(seed: int) -> None:
    y_true = power_curve(X_FLOPS, **POWER)
    f = fit_power(X_FLOPS, noisy(y_true, seed), n_boot=0)
    assert f.params["c"] == pytest.approx(POWER["c"], rel=0.15)
    assert f.params["eps_inf"] == pytest.approx(POWER["eps_inf"], rel=0.08)
    # beta in raw FLOPs units is exponentially sensitive to c (beta = b * x_ref**c), so check it in logs
    assert math.log(f.params["beta"]) == pytest.approx(math.log(POWER["beta"]), abs=1.5)
    # the fitted curve tracks the noise-free truth to about the noise level
    assert np.max(np.abs(f.predict(X_FLOPS) / y_true - 1)) < 0.02


def test_power_bootstrap_ci_covers_truth_for_most_seeds() -> None:
    y_true = power_curve(X_FLOPS, **POWER)
    hits = dict.fromkeys(POWER, 0)
    n_seeds = 10
    for seed in range(n_seeds):
        f = fit_power(X_FLOPS, noisy(y_true, 100 + seed), n_boot=100, seed=seed)
        for k, v in POWER.items():
            lo, hi = f.ci[k]
            assert lo <= f.params[k] <= hi or k == "beta"  # the estimate sits inside its own interval
            hits[k] += lo <= v <= hi
    # nominal 95%; the percentile residual bootstrap covers ~88% here (measured over 50 seeds)
    assert all(h >= 7 for h in hits.values()), hits


def test_power_bootstrap_is_seeded() -> None:
    y = noisy(power_curve(X_FLOPS, **POWER), 7)
    a = fit_power(X_FLOPS, y, n_boot=30, seed=3)
    b = fit_power(X_FLOPS, y, n_boot=30, seed=3)
    c = fit_power(X_FLOPS, y, n_boot=30, seed=4)
    assert a.ci == b.ci
    assert a.ci != c.ci
    assert a.params == c.params


@pytest.mark.parametrize("noise", [0.0, 0.01])
def test_power_agrees_with_curve_fit(noise: float) -> None:
    x = np.linspace(1.0, 1000.0, 25)
    y = power_curve(x, 5.0, 0.5, 1.5)
    if noise:
        y = noisy(y, 3, noise)
    p, _ = curve_fit(lambda x, b, c, e: b * x ** (-c) + e, x, y, p0=[4.0, 0.4, 1.0], maxfev=20000)
    f = fit_power(x, y, n_boot=0)
    got = np.array([f.params["beta"], f.params["c"], f.params["eps_inf"]])
    np.testing.assert_allclose(got, p, rtol=1e-3 if noise == 0 else 1e-2)
    if noise == 0:
        np.testing.assert_allclose(got, [5.0, 0.5, 1.5], rtol=1e-6)


def test_power_is_order_invariant_and_predicts_shapes() -> None:
    y = noisy(power_curve(X_FLOPS, **POWER), 1)
    perm = np.random.default_rng(0).permutation(len(X_FLOPS))
    a = fit_power(X_FLOPS, y, n_boot=0)
    b = fit_power(X_FLOPS[perm], y[perm], n_boot=0)
    for k in POWER:
        assert a.params[k] == pytest.approx(b.params[k], rel=1e-8)
    assert a.predict(np.ones((2, 3)) * 1e15).shape == (2, 3)
    assert a.predict(1e15).shape == ()
    with pytest.raises(ValueError, match="x > 0"):
        a.predict([0.0])


def test_fit_result_to_dict_is_json_ready() -> None:
    f = fit_power(X_FLOPS, power_curve(X_FLOPS, **POWER), n_boot=0, x_name="flops")
    d = f.to_dict()
    text = json.dumps(d, allow_nan=False)  # NaN CIs were turned into null
    back = json.loads(text)
    assert back["form"] == "power" and back["x_name"] == "flops" and back["n_points"] == 16
    assert set(back["params"]) == {"beta", "c", "eps_inf"}
    assert back["ci"]["c"] == [None, None]
    assert isinstance(f, FitResult)


# ----------------------------------------------------------------------------------------------
# M4


@pytest.mark.parametrize("alpha", [0.0, 1e-4, 0.3, 1.0, 5.0])
@pytest.mark.parametrize("beta", [1e-3, 1.0, 1e3])
def test_m4_vectorised_solver_matches_brentq(alpha: float, beta: float) -> None:
    x = np.geomspace(1.0, 1e12, 30)
    kw = {"beta": beta, "c": -0.4, "alpha": alpha, "eps_inf": 1.0, "eps0": 8.0}
    a = m4_loss(x, **kw)
    b = m4_loss(x, **kw, method="brentq")
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert np.all((a >= 1.0) & (a <= 8.0))
    inner = (a - 1.0 > 1e-6) & (8.0 - a > 1e-6)  # away from the ends, where L - eps_inf cancels
    lhs = (a[inner] - 1.0) / (8.0 - a[inner]) ** alpha  # the root satisfies the implicit equation
    np.testing.assert_allclose(lhs, beta * x[inner] ** (-0.4), rtol=1e-8)


def test_m4_recovers_noise_free() -> None:
    y = m4_loss(X_TOK, **M4, eps0=EPS0)
    assert 2.0 < y.min() and y.max() < 7.0
    f = fit_m4(X_TOK, y, eps0=EPS0, n_boot=0)
    for k, v in M4.items():
        assert f.params[k] == pytest.approx(v, rel=1e-4), k
    assert f.extra["eps0"] == EPS0
    np.testing.assert_allclose(f.predict(X_TOK), y, rtol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_m4_recovers_noisy(seed: int) -> None:
    y_true = m4_loss(X_TOK, **M4, eps0=EPS0)
    f = fit_m4(X_TOK, noisy(y_true, seed), eps0=EPS0, n_boot=0)
    assert f.params["c"] == pytest.approx(M4["c"], rel=0.25)
    assert f.params["eps_inf"] == pytest.approx(M4["eps_inf"], rel=0.1)
    assert 0.0 <= f.params["alpha"] <= 2.0  # alpha is weakly identified by a 4-decade curve
    assert np.max(np.abs(f.predict(X_TOK) / y_true - 1)) < 0.02


def test_m4_bootstrap_ci() -> None:
    y_true = m4_loss(X_TOK, **M4, eps0=EPS0)
    hits = dict.fromkeys(M4, 0)
    for seed in range(4):
        f = fit_m4(X_TOK, noisy(y_true, 10 + seed), eps0=EPS0, n_boot=30, seed=seed)
        for k, v in M4.items():
            lo, hi = f.ci[k]
            assert np.isfinite(lo) and lo < hi
            hits[k] += lo <= v <= hi
    assert hits["eps_inf"] >= 3 and hits["c"] >= 2, hits


def test_m4_requires_eps0_above_losses() -> None:
    y = m4_loss(X_TOK, **M4, eps0=EPS0)
    with pytest.raises(ValueError, match="eps0.*exceed the largest loss"):
        fit_m4(X_TOK, y, eps0=float(y.max()))
    with pytest.raises(ValueError, match="eps0"):
        fit_m4(X_TOK, y, eps0=float("nan"))
    with pytest.raises(ValueError, match="needs eps0"):
        fit(X_TOK, y, form="m4")


# ----------------------------------------------------------------------------------------------
# Dispatch, extrapolation


def test_fit_dispatch() -> None:
    y = power_curve(X_FLOPS, **POWER)
    assert fit(X_FLOPS, y, n_boot=0).form == "power"
    assert fit(X_TOK, m4_loss(X_TOK, **M4, eps0=EPS0), form="m4", eps0=EPS0, n_boot=0).form == "m4"
    with pytest.raises(ValueError, match="unknown form"):
        fit(X_FLOPS, y, form="chinchilla")
    with pytest.raises(ValueError, match="only applies"):
        fit(X_FLOPS, y, eps0=10.0)


def test_extrapolation_clean_power_is_exact() -> None:
    y = power_curve(X_FLOPS, **POWER)
    ex = extrapolation_error(X_FLOPS, y, fit_fraction=0.5)
    assert ex["n_fit"] == 8 and ex["n_test"] == 8
    assert ex["x_split"] == pytest.approx(X_FLOPS[7])
    assert ex["max_rel_error"] < 1e-6 and ex["mean_abs_error"] < 1e-5
    assert isinstance(ex["fit"], FitResult) and ex["fit"].n_points == 8


def test_extrapolation_noisy_power_and_m4() -> None:
    y = noisy(power_curve(X_FLOPS, **POWER), 5)
    ex = extrapolation_error(X_FLOPS[::-1], y[::-1], fit_fraction=0.5)  # input order does not matter
    assert ex["mean_rel_error"] < 0.08  # 1% noise, extrapolating 2 decades: measured 0.039
    ym = m4_loss(X_TOK, **M4, eps0=EPS0)
    exm = extrapolation_error(X_TOK, ym, form="m4", eps0=EPS0, fit_fraction=0.5)
    assert exm["max_rel_error"] < 1e-4


def test_extrapolation_errors() -> None:
    y = power_curve(X_FLOPS, **POWER)
    with pytest.raises(ValueError, match="fit_fraction"):
        extrapolation_error(X_FLOPS, y, fit_fraction=1.0)
    with pytest.raises(ValueError, match="needs >= 4 fit points"):
        extrapolation_error(X_FLOPS[:6], y[:6], fit_fraction=0.5)
    with pytest.raises(ValueError, match="needs >= 5 fit points"):
        extrapolation_error(X_FLOPS, y, form="m4", eps0=10.0, fit_fraction=0.25)
    with pytest.raises(ValueError, match="unknown form"):
        extrapolation_error(X_FLOPS, y, form="exp")


# ----------------------------------------------------------------------------------------------
# Bad input


def _power_y(n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    x = np.geomspace(1.0, 1e4, n)
    return x, power_curve(x, 5.0, 0.5, 1.5)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda x, y: (x[:3], y[:3]), "at least 4 points"),
        (lambda x, y: (x, y[:-1]), "length mismatch"),
        (lambda x, y: (np.r_[0.0, x[1:]], y), "finite and > 0"),
        (lambda x, y: (np.r_[-1.0, x[1:]], y), "finite and > 0"),
        (lambda x, y: (np.r_[np.inf, x[1:]], y), "finite and > 0"),
        (lambda x, y: (np.r_[np.nan, x[1:]], y), "finite and > 0"),
        (lambda x, y: (x, np.r_[np.nan, y[1:]]), "NaN or inf"),
        (lambda x, y: (x, np.r_[np.inf, y[1:]]), "NaN or inf"),
        (lambda x, y: (x, np.r_[-0.5, y[1:]]), ">= 0"),
        (lambda x, y: (x, np.full_like(y, 3.0)), "no scaling information"),
        (lambda x, y: (np.full_like(x, 10.0), y), "distinct x"),
        (lambda x, y: (x[:, None], y[:, None]), "1-D"),
    ],
)
def test_power_rejects_bad_input(mutate, match: str) -> None:
    x, y = mutate(*_power_y())
    with pytest.raises(ValueError, match=match):
        fit_power(x, y, n_boot=0)


def test_m4_needs_five_points_and_flat_curve_raises() -> None:
    x, y = _power_y(4)
    with pytest.raises(ValueError, match="at least 5 points"):
        fit_m4(x, y, eps0=10.0)
    x, _ = _power_y(6)
    with pytest.raises(ValueError, match="flat curve"):
        fit_m4(x, np.full(6, 3.0), eps0=10.0)


def test_bad_ci_and_n_boot() -> None:
    x, y = _power_y()
    with pytest.raises(ValueError, match="ci must be in"):
        fit_power(x, y, ci=95)
    with pytest.raises(ValueError, match="n_boot"):
        fit_power(x, y, n_boot=-1)


def test_increasing_curve_is_flagged_not_crashed() -> None:
    x = np.geomspace(1.0, 1e4, 8)
    f = fit_power(x, 2.0 + 0.1 * np.log(x), n_boot=0)
    assert any("c at its lower bound" in n for n in f.notes)


# ----------------------------------------------------------------------------------------------
# Run directories and the CLI


def _write_run(
    root: Path, dirname: str, curve: np.ndarray, x: np.ndarray, *, name: str | None, sig: str | None
) -> Path:
    d = root / dirname
    d.mkdir()
    if name is not None or sig is not None:
        cfg: dict = {"seed": 0}
        if name is not None:
            cfg["name"] = name
        if sig is not None:
            cfg["model"] = {"signature": sig, "n_layers": 4}
        (d / "config.json").write_text(json.dumps(cfg))
    lines = [
        {"event": "start", "step": 0},
        {"event": "eval", "step": 0, "tokens": 0, "flops": 0.0, "val_loss": 10.9, "val_loss_r": {"1": 10.9}},
    ]
    for i, (xi, li) in enumerate(zip(x, curve), 1):
        lines.append({"event": "train", "step": i * 100, "loss": float(li) + 0.1})
        lines.append(
            {
                "event": "eval",
                "step": i * 100,
                "tokens": int(i * 409600),
                "flops": float(xi),
                "val_loss": float(li),
                "val_loss_r": {"1": float(li) + 0.2, "2": float(li)},
            }
        )
    text = "\n".join(json.dumps(rec) for rec in lines) + "\n"
    (d / "log.jsonl").write_text(text)
    return d


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    x = np.geomspace(1e13, 1e17, 12)
    a = _write_run(tmp_path, "run_a", power_curve(x, 3e4, 0.3, 2.0), x, name="baseline", sig="AB")
    b = _write_run(tmp_path, "run_b", power_curve(x, 3e4, 0.35, 1.8), x, name=None, sig=None)
    return a, b


def test_load_curve(runs: tuple[Path, Path]) -> None:
    a, _ = runs
    x, y = load_curve(a)
    assert len(x) == 12 and np.all(x > 0) and np.all(np.diff(x) > 0)  # step 0 skipped, sorted
    np.testing.assert_allclose(y, power_curve(x, 3e4, 0.3, 2.0))
    xt, _ = load_curve(a, x="tokens")
    assert xt[0] == 409600
    _, y1 = load_curve(a, r=1)
    np.testing.assert_allclose(y1, y + 0.2)
    x_file, _ = load_curve(a / "log.jsonl")  # the log file itself works too
    np.testing.assert_array_equal(x_file, x)


def test_load_curve_resumed_run_and_malformed_lines(runs: tuple[Path, Path]) -> None:
    a, _ = runs
    log = a / "log.jsonl"
    rec = {"event": "eval", "step": 1200, "tokens": 1, "flops": 1e17, "val_loss": 1.0, "val_loss_r": {}}
    with log.open("a") as fh:
        fh.write(json.dumps(rec) + "\n")  # step 1200 again (resume): the last one wins
        fh.write('{"event": "eval", "step": 13')  # truncated final line
    with pytest.warns(UserWarning, match="malformed"):
        x, y = load_curve(a)
    assert len(x) == 12 and y[-1] == 1.0


def test_load_curve_errors(tmp_path: Path, runs: tuple[Path, Path]) -> None:
    a, _ = runs
    with pytest.raises(ValueError, match=r"available r: \['1', '2'\]"):
        load_curve(a, r=4)
    with pytest.raises(ValueError, match="must be 'flops' or 'tokens'"):
        load_curve(a, x="steps")
    with pytest.raises(FileNotFoundError, match="no log.jsonl"):
        load_curve(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "log.jsonl").write_text('{"event": "train", "step": 1, "loss": 3.0}\n')
    with pytest.raises(ValueError, match="no eval records"):
        load_curve(empty)


def test_fit_runs(runs: tuple[Path, Path]) -> None:
    rows = fit_runs(list(runs), n_boot=20, extrapolate=0.5)
    assert [r["run"] for r in rows] == ["baseline", "run_b"]
    assert rows[0]["signature"] == "AB" and rows[1]["signature"] is None
    assert rows[0]["c"] == pytest.approx(0.3, rel=1e-5)
    assert rows[1]["c"] == pytest.approx(0.35, rel=1e-5)
    assert rows[1]["eps_inf"] == pytest.approx(1.8, rel=1e-5)
    assert rows[0]["c_lo"] <= rows[0]["c"] <= rows[0]["c_hi"]
    assert rows[0]["extrap_max_rel_error"] < 1e-5
    assert rows[0]["x"] == "flops" and rows[0]["n_points"] == 12
    rows_r = fit_runs([runs[0]], r=1, x="tokens", n_boot=0)
    assert rows_r[0]["r"] == 1 and rows_r[0]["x"] == "tokens"


def test_fit_runs_names_the_failing_run(tmp_path: Path) -> None:
    x = np.geomspace(1e13, 1e17, 6)
    d = _write_run(tmp_path, "flat", np.full(6, 4.0), x, name="flatrun", sig="A^2B")
    with pytest.raises(ValueError, match="run 'flatrun'.*no scaling information"):
        fit_runs([d], n_boot=0)


def test_fit_verb_table_and_json(runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    a, b = runs
    assert run_verb("fit", [str(a), str(b), "--n-boot", "10"]) == 0
    out = capsys.readouterr().out
    assert "baseline" in out and "run_b" in out and "eps_inf" in out and "AB" in out

    assert run_verb("fit", [str(a), "--json", "--n-boot", "10", "--extrapolate", "0.5", "--x", "tokens"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["run"] == "baseline" and rows[0]["x"] == "tokens" and "extrap_mean_rel_error" in rows[0]

    assert run_verb("fit", [str(a), "--form", "m4", "--eps0", "10.8", "--json", "--n-boot", "0", "--r", "2"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["form"] == "m4" and rows[0]["r"] == 2 and rows[0]["alpha_lo"] is None


def test_fit_verb_errors(runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = runs
    assert run_verb("fit", [str(a), "--form", "m4"]) == 2
    assert "--eps0" in capsys.readouterr().err
    assert run_verb("fit", [str(a), "--form", "m4", "--eps0", "3.0", "--n-boot", "0"]) == 2
    assert "exceed the largest loss" in capsys.readouterr().err
    assert run_verb("fit", [str(a), "--eps0", "10.8"]) == 2
    assert run_verb("fit", [str(tmp_path / "missing")]) == 2
    assert "no log.jsonl" in capsys.readouterr().err
    assert run_verb("fit", [str(a), "--form", "chinchilla"]) == 2  # argparse usage error
    assert run_verb("fit", []) == 2
    assert run_verb("fit", ["--help"]) == 0
    assert "rins fit" in capsys.readouterr().out


def test_scaling_does_not_import_torch() -> None:
    import rins.scaling as mod

    src = Path(mod.__file__).read_text()
    assert "import torch" not in src and "from torch" not in src
