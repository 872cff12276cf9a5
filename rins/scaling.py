"""Scaling-law fits for loss curves (docs/method.md §7): the power law and the M4 estimator.

Two functional forms of held-out loss ``L`` against ``x`` (training tokens or FLOPs):

* **power**: ``L(x) = beta * x**(-c) + eps_inf`` with ``c > 0``. RINS claims a lower ``eps_inf`` *and*
  a larger ``c`` than the baseline (docs/method.md §9 claim 4).
* **m4** (Alabdulmohsin et al. 2022, "Revisiting Neural Scaling Laws"):
  ``(L - eps_inf) / (eps0 - L)**alpha = beta * x**c`` with ``c < 0`` and ``eps0`` the loss of a random
  guess (``ln V`` for a language model with vocabulary ``V``). ``L(x)`` is defined implicitly; it is the
  unique root in ``(eps_inf, eps0)``.

Both are fitted by bounded least squares on the loss itself (absolute residuals, the same objective
as ``scipy.optimize.curve_fit``), from several starting points, keeping the best. Confidence
intervals come from a seeded **residual bootstrap** (see :func:`fit_power`). Pure numpy/scipy: this
module never imports torch, so fits run anywhere the logs are.

Numerics: ``x`` is normalised by its geometric mean ``x_ref`` and the amplitude is fitted as a log,
so curves in FLOPs (1e12 .. 1e20) and in tokens fit equally well. The reported ``beta`` is converted
back to raw ``x`` units.

Conventions chosen here (documented, tested):

* A **flat** curve (constant loss) carries no scaling information: every fit raises ``ValueError``
  rather than returning a meaningless ``c``.
* ``load_curve`` skips non-eval records and ``x = 0`` (step 0); if a resumed run logged the same step
  twice, the last record wins.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import brentq, least_squares
from scipy.special import expit

from .fields import depths_type
from .runs import CONFIG_FILE, log_path, read_json, read_log

__all__ = [
    "FORMS",
    "FitResult",
    "extrapolation_error",
    "fit",
    "fit_m4",
    "fit_power",
    "fit_runs",
    "load_curve",
    "m4_loss",
    "add_fit_arguments",
    "cmd_fit",
]

FORMS = ("power", "m4")
_MIN_POINTS = {"power": 4, "m4": 5}
_PARAM_NAMES = {"power": ("beta", "c", "eps_inf"), "m4": ("beta", "c", "alpha", "eps_inf")}
_C_MAX = 10.0  # |c| bound; real scaling exponents are far below this
_ALPHA_MAX = 5.0
_LN2 = math.log(2.0)
_S_CLIP = 1e4  # logit clip for the M4 root: beyond it L is eps_inf or eps0 to float precision


# ----------------------------------------------------------------------------------------------
# Result


@dataclass
class FitResult:
    """A fitted scaling law.

    Attributes:
        form: ``"power"`` or ``"m4"``.
        params: fitted parameters in raw ``x`` units (power: beta, c, eps_inf; m4: beta, c, alpha,
            eps_inf).
        ci: bootstrap percentile interval per parameter; ``(nan, nan)`` when ``n_boot=0`` or too few
            bootstrap refits succeeded.
        x_name: what ``x`` is (``"flops"``, ``"tokens"`` or ``"x"``).
        n_points: number of points fitted.
        rmse: root-mean-square residual of the fit on those points.
        extra: fixed quantities needed to predict (``x_ref``, ``log_b`` = log amplitude at
            ``x = x_ref``, ``eps0`` for m4) plus ``n_boot_ok``, the number of successful bootstrap refits.
        notes: human-readable warnings, e.g. a parameter that ended on its bound.
    """

    form: str
    params: dict[str, float]
    ci: dict[str, tuple[float, float]]
    x_name: str
    n_points: int
    rmse: float
    extra: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def predict(self, x: Any) -> np.ndarray:
        """Predicted loss at ``x`` (array-like, ``x > 0``), as a float array of the same shape."""
        xa = np.asarray(x, dtype=float)
        if np.any(~np.isfinite(xa)) or np.any(xa <= 0):
            raise ValueError("predict needs finite x > 0")
        x_ref = self.extra.get("x_ref", 1.0)
        log_b = self.extra.get("log_b")
        p = self.params
        logu = np.log(xa / x_ref)
        if self.form == "power":
            if log_b is None:
                log_b = math.log(p["beta"]) - p["c"] * math.log(x_ref)
            return np.exp(log_b - p["c"] * logu) + p["eps_inf"]
        if self.form == "m4":
            if log_b is None:
                log_b = math.log(p["beta"]) + p["c"] * math.log(x_ref)
            flat = logu.ravel()
            s = _m4_logit(flat, log_b, p["c"], p["alpha"], p["eps_inf"], self.extra["eps0"])
            loss, _ = _m4_loss_from_logit(s, flat, p["alpha"], p["eps_inf"], self.extra["eps0"], False)
            return loss.reshape(xa.shape)
        raise ValueError(f"unknown form {self.form!r}; expected one of {FORMS}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite numbers become ``None``)."""
        return {
            "form": self.form,
            "x_name": self.x_name,
            "n_points": self.n_points,
            "rmse": _json_float(self.rmse),
            "params": {k: _json_float(v) for k, v in self.params.items()},
            "ci": {k: [_json_float(lo), _json_float(hi)] for k, (lo, hi) in self.ci.items()},
            "extra": {k: _json_float(v) for k, v in self.extra.items()},
            "notes": list(self.notes),
        }


def _json_float(v: float) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


# ----------------------------------------------------------------------------------------------
# Validation


def _validate(x: Any, loss: Any, form: str) -> tuple[np.ndarray, np.ndarray]:
    """Check a curve and return it as float arrays; raise ``ValueError`` naming problem and fix."""
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(loss, dtype=float)
    if xa.ndim != 1 or ya.ndim != 1:
        raise ValueError(f"x and loss must be 1-D arrays, got shapes {xa.shape} and {ya.shape}")
    if len(xa) != len(ya):
        raise ValueError(f"length mismatch: {len(xa)} x values but {len(ya)} losses; pass one loss per x value")
    need = _MIN_POINTS[form]
    if len(xa) < need:
        raise ValueError(
            f"{form} fit needs at least {need} points, got {len(xa)}; evaluate the run more often "
            "(more eval records) or fit a longer curve"
        )
    if not np.all(np.isfinite(xa)) or np.any(xa <= 0):
        bad = xa[~(np.isfinite(xa) & (xa > 0))]
        raise ValueError(
            f"x must be finite and > 0 (got {bad[:3].tolist()}); drop step 0 / x = 0 points "
            "(load_curve does this) and check the tokens/FLOPs counters"
        )
    if not np.all(np.isfinite(ya)):
        raise ValueError(
            "loss contains NaN or inf (the run probably diverged); truncate the curve before the "
            "divergence or fix the run"
        )
    if np.any(ya < 0):
        raise ValueError(
            f"loss must be >= 0 (got min {ya.min():g}); pass a cross-entropy-like loss, not a "
            "log-likelihood or a difference"
        )
    n_params = len(_PARAM_NAMES[form])
    if len(np.unique(xa)) < n_params:
        raise ValueError(
            f"{form} fit needs at least {n_params} distinct x values, got {len(np.unique(xa))}; "
            "pass points from different training budgets"
        )
    if np.ptp(ya) <= 1e-12 * max(1.0, float(np.abs(ya).max())):
        raise ValueError(
            f"flat curve: loss is constant ({ya[0]:g}) and carries no scaling information; "
            "check that the run actually trained and that you picked the right loss column"
        )
    return xa, ya


def _check_ci(ci: float, n_boot: int) -> None:
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), e.g. 0.95; got {ci}")
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0 (0 disables the bootstrap); got {n_boot}")


def _eps_upper(y: np.ndarray) -> float:
    """Upper bound on eps_inf: just below min(loss) (a tiny positive number if min(loss) == 0)."""
    m = float(np.min(y))
    return m - 1e-9 * max(m, 1e-3) if m > 0 else 1e-12


# ----------------------------------------------------------------------------------------------
# Power law:  L = b * u**(-c) + eps_inf,  u = x / x_ref,  theta = (log_b, c, eps_inf)


def _power_model(theta: np.ndarray, logu: np.ndarray) -> np.ndarray:
    return np.exp(theta[0] - theta[1] * logu) + theta[2]


def _power_jac(theta: np.ndarray, logu: np.ndarray) -> np.ndarray:
    t = np.exp(theta[0] - theta[1] * logu)
    return np.column_stack([t, -logu * t, np.ones_like(logu)])


def _power_inits(logu: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Starting points: for eps_inf on a grid below min(loss), regress log(L - eps_inf) on log u."""
    ub = _eps_upper(y)
    inits = []
    for frac in (0.0, 0.25, 0.5, 0.75, 0.9, 0.97, 0.995):
        eps = frac * ub
        z = np.log(np.maximum(y - eps, 1e-300))
        slope, icept = np.polyfit(logu, z, 1)
        c = float(np.clip(-slope, 1e-3, _C_MAX))
        inits.append(np.array([icept, c, eps]))
    return inits


# ----------------------------------------------------------------------------------------------
# M4:  log(L - eps_inf) - alpha * log(eps0 - L) = log_b + c * log u,  theta = (log_b, c, alpha, eps_inf)
#
# Write L = eps_inf + D * sigmoid(s), D = eps0 - eps_inf. Then the equation reads
#   h(s) := log sigmoid(s) - alpha * log sigmoid(-s) = k := log_b + c log u - (1 - alpha) log D,
# with h strictly increasing from -inf to +inf (alpha > 0), h' = sigmoid(-s) + alpha sigmoid(s).
# Since phi(s) - ln2 <= h(s) <= phi(s) + alpha ln2 for phi(s) = min(s, 0) + alpha max(s, 0), the root is
# bracketed by phi^-1(k - alpha ln2) <= s <= phi^-1(k + ln2); a safeguarded Newton iteration (bisection
# whenever a Newton step leaves the bracket) solves all points at once.


def _phi_inv(v: np.ndarray, alpha: float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        pos = v / alpha if alpha > 0 else np.where(v > 0, np.inf, 0.0)
    return np.where(v <= 0, v, pos)


def _m4_logit(logu: np.ndarray, log_b: float, c: float, alpha: float, eps_inf: float, eps0: float) -> np.ndarray:
    """The logit ``s`` of ``(L - eps_inf) / (eps0 - eps_inf)`` solving the M4 equation at each point."""
    D = eps0 - eps_inf
    k = log_b + c * logu - (1.0 - alpha) * math.log(D)
    lo = np.clip(_phi_inv(k - alpha * _LN2, alpha), -_S_CLIP, _S_CLIP)
    hi = np.clip(_phi_inv(k + _LN2, alpha), -_S_CLIP, _S_CLIP)
    s = np.clip(_phi_inv(k, alpha), lo, hi)
    for _ in range(200):
        f = -np.logaddexp(0.0, -s) + alpha * np.logaddexp(0.0, s) - k
        df = expit(-s) + alpha * expit(s)
        lo = np.where(f < 0, s, lo)
        hi = np.where(f > 0, s, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            s_new = s - f / df
        outside = ~((s_new > lo) & (s_new < hi))
        s_new = np.where(outside, 0.5 * (lo + hi), s_new)
        done = np.all((np.abs(s_new - s) <= 1e-12 * (1.0 + np.abs(s))) | (f == 0) | (hi - lo <= 0))
        s = s_new
        if done:
            break
    return s


def _m4_loss_from_logit(
    s: np.ndarray, logu: np.ndarray, alpha: float, eps_inf: float, eps0: float, want_jac: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """Loss from the logit, and (optionally) dL/d(log_b, c, alpha, eps_inf) by implicit differentiation."""
    D = eps0 - eps_inf
    a = D * expit(s)  # L - eps_inf, accurate when L is near eps_inf
    b = D * expit(-s)  # eps0 - L, accurate when L is near eps0
    loss = np.where(s < 0, eps_inf + a, eps0 - b)
    if not want_jac:
        return loss, None
    denom = b + alpha * a
    ok = denom > 0
    safe = np.where(ok, denom, 1.0)
    g = np.where(ok, a * b / safe, 0.0)  # 1 / (dG/dL)
    with np.errstate(divide="ignore", invalid="ignore"):
        dalpha = np.where(b > 0, g * np.log(np.where(b > 0, b, 1.0)), 0.0)
    deps = np.where(ok, b / safe, 1.0)
    return loss, np.column_stack([g, g * logu, dalpha, deps])


def m4_loss(
    x: Any, *, beta: float, c: float, alpha: float, eps_inf: float, eps0: float, method: str = "newton"
) -> np.ndarray:
    """Loss predicted by M4 at ``x``: the root in ``(eps_inf, eps0)`` of the implicit equation.

    ``method="newton"`` (default) is the vectorised safeguarded Newton/bisection solver the fits use;
    ``method="brentq"`` solves point by point with :func:`scipy.optimize.brentq` (slow, a reference).
    With ``alpha = 0`` the form reduces to a power law and ``L`` is capped at ``eps0``.
    """
    xa = np.asarray(x, dtype=float)
    if not eps0 > eps_inf:
        raise ValueError(f"need eps0 > eps_inf, got eps0={eps0}, eps_inf={eps_inf}")
    if method == "newton":
        logu = np.log(xa.ravel())
        s = _m4_logit(logu, math.log(beta), c, alpha, eps_inf, eps0)
        return _m4_loss_from_logit(s, logu, alpha, eps_inf, eps0, False)[0].reshape(xa.shape)
    if method != "brentq":
        raise ValueError(f"method must be 'newton' or 'brentq', got {method!r}")
    out = np.empty(xa.size)
    for i, xi in enumerate(xa.ravel()):
        rhs = beta * xi**c

        def f(L: float, rhs: float = rhs) -> float:
            return (L - eps_inf) - rhs * (eps0 - L) ** alpha

        out[i] = eps0 if f(eps0) <= 0 else brentq(f, eps_inf, eps0, xtol=1e-15, rtol=1e-15, maxiter=500)
    return out.reshape(xa.shape)


def _m4_model_jac(
    theta: np.ndarray, logu: np.ndarray, eps0: float, want_jac: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    log_b, c, alpha, eps_inf = (float(t) for t in theta)
    s = _m4_logit(logu, log_b, c, alpha, eps_inf, eps0)
    return _m4_loss_from_logit(s, logu, alpha, eps_inf, eps0, want_jac)


def _m4_inits(logu: np.ndarray, y: np.ndarray, eps0: float) -> list[np.ndarray]:
    """Starting points: for (alpha, eps_inf) on a grid, log(L - eps_inf) - alpha log(eps0 - L) is linear
    in log u, so a straight-line fit gives (log_b, c)."""
    ub = _eps_upper(y)
    inits = []
    for alpha in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0):
        for frac in (0.0, 0.5, 0.8, 0.95, 0.99):
            eps = frac * ub
            z = np.log(np.maximum(y - eps, 1e-300)) - alpha * np.log(eps0 - y)
            slope, icept = np.polyfit(logu, z, 1)
            c = float(np.clip(slope, -_C_MAX, -1e-3))
            inits.append(np.array([icept, c, alpha, eps]))
    return inits


# ----------------------------------------------------------------------------------------------
# Shared fitting engine


@dataclass
class _Problem:
    form: str
    model_jac: Callable[[np.ndarray, np.ndarray, bool], tuple[np.ndarray, np.ndarray | None]]
    inits: Callable[[np.ndarray, np.ndarray], list[np.ndarray]]
    bounds: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def _power_problem() -> _Problem:
    def model_jac(theta: np.ndarray, logu: np.ndarray, want_jac: bool):
        return _power_model(theta, logu), (_power_jac(theta, logu) if want_jac else None)

    def bounds(y: np.ndarray):
        return np.array([-np.inf, 0.0, 0.0]), np.array([np.inf, _C_MAX, _eps_upper(y)])

    return _Problem("power", model_jac, _power_inits, bounds)


def _m4_problem(eps0: float) -> _Problem:
    def model_jac(theta: np.ndarray, logu: np.ndarray, want_jac: bool):
        return _m4_model_jac(theta, logu, eps0, want_jac)

    def bounds(y: np.ndarray):
        return (
            np.array([-np.inf, -_C_MAX, 0.0, 0.0]),
            np.array([np.inf, -1e-9, _ALPHA_MAX, _eps_upper(y)]),
        )

    return _Problem("m4", model_jac, lambda logu, y: _m4_inits(logu, y, eps0), bounds)


def _solve(prob: _Problem, logu: np.ndarray, y: np.ndarray, starts: Sequence[np.ndarray]) -> np.ndarray:
    """Bounded least squares from each start; the parameters with the lowest cost."""
    lb, ub = prob.bounds(y)

    def resid(theta: np.ndarray) -> np.ndarray:
        return prob.model_jac(theta, logu, False)[0] - y

    def jac(theta: np.ndarray) -> np.ndarray:
        return prob.model_jac(theta, logu, True)[1]

    best, best_cost = None, np.inf
    for x0 in starts:
        x0 = np.clip(np.asarray(x0, dtype=float), lb, ub)
        try:
            res = least_squares(
                resid,
                x0,
                jac=jac,
                bounds=(lb, ub),
                method="trf",
                x_scale="jac",
                ftol=1e-14,
                xtol=1e-14,
                gtol=1e-14,
                max_nfev=500,
            )
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            continue
        if np.isfinite(res.cost) and res.cost < best_cost:
            best, best_cost = res.x, res.cost
    if best is None:
        raise RuntimeError(f"{prob.form} fit failed from every starting point")
    return best


def _rank_inits(prob: _Problem, logu: np.ndarray, y: np.ndarray, keep: int) -> list[np.ndarray]:
    lb, ub = prob.bounds(y)
    scored = []
    for th in prob.inits(logu, y):
        th = np.clip(th, lb, ub)
        with np.errstate(all="ignore"):
            pred = prob.model_jac(th, logu, False)[0]
        cost = float(np.sum((pred - y) ** 2))
        scored.append((cost if np.isfinite(cost) else np.inf, th))
    scored.sort(key=lambda t: t[0])
    return [th for _, th in scored[:keep]]


def _fit_core(
    prob: _Problem,
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_boot: int,
    seed: int,
    ci: float,
    x_name: str,
    extra: dict[str, float],
) -> FitResult:
    """Fit ``prob`` to (x, y) in the normalised parameterisation, then bootstrap CIs and notes on bounds."""
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    x_ref = float(np.exp(np.mean(np.log(x))))
    logu = np.log(x / x_ref)
    theta = _solve(prob, logu, y, _rank_inits(prob, logu, y, keep=4))
    pred = prob.model_jac(theta, logu, False)[0]
    resid = y - pred
    samples = _bootstrap(prob, logu, pred, resid, theta, n_boot, seed)
    notes = _bound_notes(prob, theta, y)
    if n_boot > 0 and len(samples) < n_boot:
        notes.append(f"{n_boot - len(samples)} of {n_boot} bootstrap refits failed")
    return FitResult(
        form=prob.form,
        params=_to_raw(prob.form, theta, x_ref),
        ci=_percentile_cis(prob.form, samples, x_ref, ci),
        x_name=x_name,
        n_points=len(y),
        rmse=float(np.sqrt(np.mean(resid**2))),
        extra={"x_ref": x_ref, "log_b": float(theta[0]), **extra, "n_boot_ok": float(len(samples))},
        notes=notes,
    )


def _bootstrap(prob: _Problem, logu: np.ndarray, pred: np.ndarray, resid: np.ndarray, theta: np.ndarray,
               n_boot: int, seed: int) -> list[np.ndarray]:
    """Residual bootstrap: refit (from ``theta``) ``n_boot`` curves ``fitted + resampled residuals`` (centred
    and inflated by n / (n - p) degrees of freedom); returns the refits that succeeded."""
    samples: list[np.ndarray] = []
    if n_boot <= 0:
        return samples
    rng = np.random.default_rng(seed)
    n, p = len(resid), len(theta)
    r = (resid - resid.mean()) * math.sqrt(n / max(n - p, 1))
    for _ in range(n_boot):
        yb = pred + rng.choice(r, size=n, replace=True)
        try:
            with np.errstate(all="ignore"):
                samples.append(_solve(prob, logu, yb, [theta]))
        except RuntimeError:
            continue
    return samples


def _percentile_cis(form: str, samples: list[np.ndarray], x_ref: float, ci: float) -> dict[str, tuple[float, float]]:
    """Percentile interval of each raw parameter over the bootstrap refits; ``(nan, nan)`` from fewer than two."""
    names = _PARAM_NAMES[form]
    if len(samples) < 2:
        return {k: (math.nan, math.nan) for k in names}
    lo_q, hi_q = (1.0 - ci) / 2.0, (1.0 + ci) / 2.0
    raw = np.array([[_to_raw(form, s, x_ref)[k] for k in names] for s in samples])
    cis: dict[str, tuple[float, float]] = {}
    for j, k in enumerate(names):
        col = raw[:, j]
        col = col[np.isfinite(col)]
        if len(col) >= 2:
            cis[k] = (float(np.quantile(col, lo_q)), float(np.quantile(col, hi_q)))
        else:
            cis[k] = (math.nan, math.nan)
    return cis


def _bound_notes(prob: _Problem, theta: np.ndarray, y: np.ndarray) -> list[str]:
    """A note for each fitted parameter (the amplitude aside) that ended on one of its bounds."""
    lb, ub = prob.bounds(y)
    notes = []
    for j, k in enumerate(_PARAM_NAMES[prob.form]):
        if k == "beta":
            continue
        span = max(1.0, abs(ub[j]) if np.isfinite(ub[j]) else 1.0)
        if np.isfinite(lb[j]) and theta[j] - lb[j] <= 1e-6 * span:
            notes.append(f"{k} at its lower bound {lb[j]:g}")
        if np.isfinite(ub[j]) and ub[j] - theta[j] <= 1e-6 * span:
            notes.append(f"{k} at its upper bound {ub[j]:g}")
    return notes


def _to_raw(form: str, theta: np.ndarray, x_ref: float) -> dict[str, float]:
    """Normalised parameters -> raw-x parameters (beta rescaled from u = x / x_ref to x)."""
    if form == "power":
        log_b, c, eps = theta
        return {"beta": float(np.exp(log_b + c * math.log(x_ref))), "c": float(c), "eps_inf": float(eps)}
    log_b, c, alpha, eps = theta
    return {
        "beta": float(np.exp(log_b - c * math.log(x_ref))),
        "c": float(c),
        "alpha": float(alpha),
        "eps_inf": float(eps),
    }


# ----------------------------------------------------------------------------------------------
# Public fitting API


def fit_power(x: Any, loss: Any, *, n_boot: int = 200, seed: int = 0, ci: float = 0.95, x_name: str = "x") -> FitResult:
    """Fit ``loss(x) = beta * x**(-c) + eps_inf`` (``c >= 0``, ``0 <= eps_inf < min(loss)``).

    Least squares on the loss (absolute residuals, as ``scipy.optimize.curve_fit``) in the stable
    parameterisation ``b * (x / x_ref)**(-c) + eps_inf`` with ``x_ref`` the geometric mean of ``x`` and
    ``log b`` free, started from the best few of a grid of ``eps_inf`` values (for each, a straight-line
    fit of ``log(loss - eps_inf)`` on ``log x``).

    Confidence intervals: **residual bootstrap** — ``n_boot`` synthetic curves ``fitted + e*`` with
    ``e*`` drawn with replacement from the centred residuals (inflated by ``sqrt(n / (n - p))``), refitted,
    and the ``ci`` percentile interval taken per parameter. Seeded with ``numpy.random.default_rng(seed)``.
    ``n_boot=0`` skips the bootstrap (CIs are NaN).

    Raises ``ValueError`` for fewer than 4 points, non-finite or non-positive ``x``, NaN/inf or negative
    loss, mismatched lengths, or a flat (constant) curve, which carries no scaling information.
    """
    _check_ci(ci, n_boot)
    xa, ya = _validate(x, loss, "power")
    return _fit_core(_power_problem(), xa, ya, n_boot=n_boot, seed=seed, ci=ci, x_name=x_name, extra={})


def fit_m4(
    x: Any,
    loss: Any,
    *,
    eps0: float,
    n_boot: int = 200,
    seed: int = 0,
    ci: float = 0.95,
    x_name: str = "x",
) -> FitResult:
    """Fit the M4 law ``(L - eps_inf) / (eps0 - L)**alpha = beta * x**c`` (Alabdulmohsin et al. 2022).

    ``eps0`` is fixed, not fitted: the loss of a random guess (``ln V`` for an LM with vocabulary
    ``V``); it must exceed every loss. ``L(x)`` is the root in ``(eps_inf, eps0)`` of the implicit
    equation (vectorised safeguarded Newton/bisection; :func:`m4_loss` with ``method="brentq"`` is the
    reference). Fitted by bounded least squares on the loss with ``c in [-10, 0)``, ``alpha in [0, 5]``
    and ``0 <= eps_inf < min(loss)``, from the best few starts of an ``(alpha, eps_inf)`` grid (each a
    straight-line fit in log space); the lowest cost wins. CIs: residual bootstrap, as
    :func:`fit_power`.

    Raises ``ValueError`` as :func:`fit_power` (with at least 5 points), and when ``eps0 <= max(loss)``.
    """
    _check_ci(ci, n_boot)
    xa, ya = _validate(x, loss, "m4")
    eps0 = float(eps0)
    if not math.isfinite(eps0) or eps0 <= float(ya.max()):
        raise ValueError(
            f"eps0={eps0:g} must be finite and exceed the largest loss ({ya.max():g}); eps0 is the loss "
            "of a random guess, ln(vocab_size) for a language model (e.g. ln 50257 = 10.825)"
        )
    return _fit_core(_m4_problem(eps0), xa, ya, n_boot=n_boot, seed=seed, ci=ci, x_name=x_name, extra={"eps0": eps0})


def fit(x: Any, loss: Any, form: str = "power", **kw: Any) -> FitResult:
    """Dispatch to :func:`fit_power` (``form="power"``) or :func:`fit_m4` (``form="m4"``, needs ``eps0``)."""
    if form == "power":
        if kw.get("eps0") is not None:
            raise ValueError("eps0 only applies to form='m4'")
        kw.pop("eps0", None)
        return fit_power(x, loss, **kw)
    if form == "m4":
        if kw.get("eps0") is None:
            raise ValueError("form='m4' needs eps0, the loss of a random guess (ln(vocab_size) for an LM)")
        return fit_m4(x, loss, **kw)
    raise ValueError(f"unknown form {form!r}; expected one of {FORMS}")


def extrapolation_error(
    x: Any,
    loss: Any,
    *,
    form: str = "power",
    fit_fraction: float = 0.5,
    eps0: float | None = None,
    n_boot: int = 0,
    seed: int = 0,
    x_name: str = "x",
) -> dict[str, Any]:
    """Fit on the smallest ``fit_fraction`` of the points (sorted by ``x``), predict the rest.

    Returns a dict with ``fit`` (the :class:`FitResult`), ``n_fit``, ``n_test``, ``x_split`` (largest x
    fitted), ``x_test``, ``loss_test``, ``pred_test`` (arrays), and ``mean_abs_error``,
    ``max_abs_error``, ``mean_rel_error``, ``max_rel_error`` on the held-out points (relative to the
    observed loss). The fit skips the bootstrap unless ``n_boot > 0``.
    """
    if not 0.0 < fit_fraction < 1.0:
        raise ValueError(f"fit_fraction must be in (0, 1), e.g. 0.5; got {fit_fraction}")
    if form not in FORMS:
        raise ValueError(f"unknown form {form!r}; expected one of {FORMS}")
    xa = np.asarray(x, dtype=float)
    ya = np.asarray(loss, dtype=float)
    if xa.shape != ya.shape or xa.ndim != 1:
        raise ValueError(f"x and loss must be 1-D of equal length, got shapes {xa.shape} and {ya.shape}")
    order = np.argsort(xa, kind="stable")
    xa, ya = xa[order], ya[order]
    n = len(xa)
    n_fit = int(math.floor(fit_fraction * n + 1e-9))
    need = _MIN_POINTS[form]
    if n_fit < need or n_fit >= n:
        raise ValueError(
            f"fit_fraction={fit_fraction} of {n} points leaves {n_fit} to fit and {n - n_fit} to test; "
            f"a {form} fit needs >= {need} fit points and >= 1 held-out point — use more points or "
            "change fit_fraction"
        )
    f = fit(xa[:n_fit], ya[:n_fit], form=form, eps0=eps0, n_boot=n_boot, seed=seed, x_name=x_name)
    x_test, y_test = xa[n_fit:], ya[n_fit:]
    if not (np.all(np.isfinite(x_test)) and np.all(x_test > 0) and np.all(np.isfinite(y_test))):
        raise ValueError("held-out points must have finite x > 0 and finite loss; drop bad points first")
    pred = f.predict(x_test)
    abs_err = np.abs(pred - y_test)
    rel_err = abs_err / np.maximum(np.abs(y_test), 1e-12)
    return {
        "form": form,
        "fit": f,
        "n_fit": n_fit,
        "n_test": int(n - n_fit),
        "x_split": float(xa[n_fit - 1]),
        "x_test": x_test,
        "loss_test": y_test,
        "pred_test": pred,
        "mean_abs_error": float(abs_err.mean()),
        "max_abs_error": float(abs_err.max()),
        "mean_rel_error": float(rel_err.mean()),
        "max_rel_error": float(rel_err.max()),
    }


# ----------------------------------------------------------------------------------------------
# Run directories


def load_curve(run_dir: str | Path, x: str = "flops", r: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read the eval curve ``(x, val_loss)`` from ``RUN_DIR/log.jsonl`` (:func:`rins.runs.read_log`), sorted by x.

    ``x`` is ``"flops"`` or ``"tokens"``; ``r=None`` reads ``val_loss``, else ``val_loss_r[str(r)]``
    (the loss at inference depth r). Non-eval records, records at ``x = 0`` (step 0) and malformed lines
    (with a warning) are skipped; when the same step was logged twice (a resumed run) the last record
    wins; ``null`` losses become NaN (the fit then refuses the curve). ``run_dir`` may also be the path
    of the log file itself.
    """
    if x not in ("flops", "tokens"):
        raise ValueError(f"x must be 'flops' or 'tokens', got {x!r}")
    log = log_path(run_dir)
    if not log.is_file():
        raise FileNotFoundError(f"no log.jsonl in {run_dir}; pass a run directory written by the trainer")
    evals = read_log(log, "eval", warn_malformed=True)
    if not evals:
        raise ValueError(f"{log} has no eval records ({{'event': 'eval', ...}}); did the run reach an eval?")
    pts, seen_r = [], set()
    for rec in evals:
        if x not in rec:
            raise ValueError(f"{log}: the eval record of step {rec['step']} has no {x!r} field; try --x tokens/flops")
        if float(rec[x]) == 0:
            continue
        if r is None:
            if "val_loss" not in rec:
                raise ValueError(f"{log}: the eval record of step {rec['step']} has no 'val_loss' field")
            lv = rec["val_loss"]
        else:
            per_r = rec.get("val_loss_r") or {}
            seen_r.update(per_r)
            if str(r) not in per_r:
                continue
            lv = per_r[str(r)]
        pts.append((float(rec[x]), math.nan if lv is None else float(lv)))
    if not pts:
        if r is not None:
            avail = sorted(seen_r, key=lambda s: (len(s), s))
            raise ValueError(f"{log}: no eval record has val_loss_r[{str(r)!r}]; available r: {avail}")
        raise ValueError(f"{log}: only step-0 (x = 0) eval records; nothing to fit yet")
    arr = np.array(sorted(pts, key=lambda t: t[0]), dtype=float)
    return arr[:, 0], arr[:, 1]


def _run_meta(run_dir: str | Path) -> tuple[str, str | None]:
    """(run name, signature) from the run's ``config.json``: the name defaults to the folder's."""
    p = Path(run_dir)
    d = p.parent if p.is_file() else p
    cfg = read_json(d / CONFIG_FILE)
    model = cfg.get("model")
    sig = model.get("signature") if isinstance(model, dict) else None
    return str(cfg.get("name") or d.name), (str(sig) if sig is not None else None)


def fit_runs(
    run_dirs: Sequence[str | Path],
    form: str = "power",
    x: str = "flops",
    r: int | None = None,
    *,
    extrapolate: float | None = None,
    **kw: Any,
) -> list[dict[str, Any]]:
    """Fit every run's eval curve; one flat row per run.

    Each row has ``run`` (``config.json`` "name", else the directory name), ``run_dir``, ``signature``
    (``config.json`` ["model"]["signature"] or ``None``), ``form``, ``x``, ``r``, ``n_points``, ``rmse``,
    each parameter ``k`` with ``k_lo``/``k_hi`` (its CI), ``notes``, and, when ``extrapolate`` is a
    fraction, ``extrap_mean_rel_error`` / ``extrap_max_rel_error`` from :func:`extrapolation_error`.
    Extra keyword arguments (``n_boot``, ``seed``, ``ci``, ``eps0``) go to :func:`fit`. A run that
    cannot be fitted raises ``ValueError`` naming the run.
    """
    rows = []
    for rd in run_dirs:
        name, sig = _run_meta(rd)
        try:
            xs, ys = load_curve(rd, x=x, r=r)
            res = fit(xs, ys, form=form, x_name=x, **kw)
            row: dict[str, Any] = {
                "run": name,
                "run_dir": str(rd),
                "signature": sig,
                "form": form,
                "x": x,
                "r": r,
                "n_points": res.n_points,
                "rmse": res.rmse,
            }
            for k, v in res.params.items():
                row[k] = v
                row[f"{k}_lo"], row[f"{k}_hi"] = res.ci[k]
            row["notes"] = "; ".join(res.notes)
            if extrapolate is not None:
                ex = extrapolation_error(xs, ys, form=form, fit_fraction=extrapolate, eps0=kw.get("eps0"), x_name=x)
                row["extrap_mean_rel_error"] = ex["mean_rel_error"]
                row["extrap_max_rel_error"] = ex["max_rel_error"]
        except ValueError as e:
            raise ValueError(f"run {name!r} ({rd}): {e}") from e
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------
# CLI: rins fit


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if not math.isfinite(v) else f"{v:.4g}"
    return str(v)


def _table(rows: list[dict[str, Any]], form: str) -> str:
    cols = ["run", "signature", "n_points"]
    for k in _PARAM_NAMES[form]:
        cols.append(k)
    cols.append("rmse")
    if rows and "extrap_mean_rel_error" in rows[0]:
        cols += ["extrap_mean_rel_error", "extrap_max_rel_error"]
    cells = []
    for row in rows:
        line = []
        for col in cols:
            if col in _PARAM_NAMES[form]:
                line.append(f"{_fmt(row[col])} [{_fmt(row[col + '_lo'])}, {_fmt(row[col + '_hi'])}]")
            else:
                line.append(_fmt(row.get(col)))
        cells.append(line)
    widths = [max(len(c), *(len(line[i]) for line in cells)) for i, c in enumerate(cols)]
    out = ["  ".join(c.ljust(w) for c, w in zip(cols, widths)).rstrip()]
    out += ["  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in cells]
    notes = [f"  {row['run']}: {row['notes']}" for row in rows if row.get("notes")]
    if notes:
        out += ["notes:", *notes]
    return "\n".join(out)


def add_fit_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments of ``rins fit`` (on the sub-parser :mod:`rins.cli` builds), run by :func:`cmd_fit`."""
    p.description = "Fit scaling laws (power or M4) to the eval curves of trained runs (docs/method.md §7)."
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories containing log.jsonl")
    p.add_argument("--form", choices=FORMS, default="power", help="functional form")
    p.add_argument("--x", choices=("flops", "tokens"), default="flops", help="abscissa")
    p.add_argument("--r", type=depths_type(one=True), default=None, metavar="INT",
                   help="fit val_loss_r[R], the loss at inference depth R, instead of val_loss")
    p.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    p.add_argument("--eps0", type=float, default=None, help="M4 random-guess loss, ln(vocab_size)")
    p.add_argument("--extrapolate", type=float, default=None, metavar="FLOAT",
                   help="also fit on the first fraction F of points and report error on the rest")
    p.add_argument("--n-boot", type=int, default=200, help="bootstrap resamples (0 = no CIs)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.set_defaults(func=cmd_fit)


def cmd_fit(args: argparse.Namespace) -> int:
    """``rins fit RUNS... [--form power|m4] [--x flops|tokens] [--r R] [--json] [--eps0 E]
    [--extrapolate F]``: fit each run's eval curve and print a table (or JSON rows).

    Returns 0 on success, 2 on a usage error or a run that cannot be loaded or fitted (message on stderr).
    """
    if args.form == "m4" and args.eps0 is None:
        print("rins fit: error: --form m4 needs --eps0 (ln(vocab_size), e.g. 10.825)", file=sys.stderr)
        return 2
    if args.form == "power" and args.eps0 is not None:
        print("rins fit: error: --eps0 only applies to --form m4", file=sys.stderr)
        return 2
    kw: dict[str, Any] = {"n_boot": args.n_boot, "seed": args.seed}
    if args.eps0 is not None:
        kw["eps0"] = args.eps0
    try:
        rows = fit_runs(args.runs, form=args.form, x=args.x, r=args.r[0] if args.r else None,
                        extrapolate=args.extrapolate, **kw)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"rins fit: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        clean = [{k: (_json_float(v) if isinstance(v, float) else v) for k, v in row.items()} for row in rows]
        print(json.dumps(clean, indent=2))
    else:
        print(_table(rows, args.form))
    return 0
