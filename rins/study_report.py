"""The long-training study's questions, answered from run summaries (a section of ``rins report``).

Per model size: mean ± standard deviation over seeds of every layout at every budget; where RINS crosses
below ``AB`` at equal training FLOPs (measured, or extrapolated from fitted power laws with a bootstrap
interval); no-regret of stochastic RINS + adapters at r = 1; the loss at equal *tokens*; out-of-domain
evaluations at every depth; the learning-rate scan; and out-of-sample checks (runs past the fitted range,
compared with the fitted curves' predictions). Pure Python + numpy (no torch).
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np

from .tables import md_table

if TYPE_CHECKING:  # pragma: no cover
    from .runs import RunInfo

__all__ = ["study_section", "seed_stats", "paired_diff", "lr_table", "crossover", "equal_tokens_gap",
           "predict_budget"]

_AB = ("AB", 1, 0.0, "none")  # the layout key of the plain model


def _pm(vals: list[float]) -> str:
    if not vals:
        return "–"
    if len(vals) == 1:
        return f"{vals[0]:.4f}"
    return f"{np.mean(vals):.4f} ± {np.std(vals, ddof=1):.4f} (n={len(vals)})"


def _layout_key(r: RunInfo) -> tuple:
    return (r.signature, r.degree, r.p_skip, r.adapters)


def _label(key: tuple) -> str:
    sig, deg, ps, ad = key
    s = sig + (f"@{deg}" if deg != 1 else "")
    if ps:
        s += f" p_s={ps:g}"
    if ad != "none":
        s += f" +{ad} adapters"
    return s


def seed_stats(runs: list[RunInfo], depth: str | None = None) -> dict[tuple, dict[float, dict[int, float]]]:
    """``{layout key: {budget: {seed: final loss}}}`` (at the trained depth, or at ``depth`` when given)."""
    out: dict[tuple, dict[float, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in runs:
        if not r.budget:
            continue
        v = r.val_loss_r.get(depth, r.val_loss) if depth else r.val_loss
        if v is not None and math.isfinite(v):
            out[_layout_key(r)][float(r.budget)][r.seed] = float(v)
    return out


def paired_diff(a: dict[int, float], b: dict[int, float]) -> tuple[float, float, list[float]]:
    """``a − b`` paired over the seeds both have: the mean, its standard error (nan for one seed) and the
    per-seed differences (empty, and a nan mean, when no seed is shared)."""
    d = [a[s] - b[s] for s in sorted(set(a) & set(b))]
    se = float(np.std(d, ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan
    return (float(np.mean(d)) if d else math.nan), se, d


def _diff(a: dict[int, float], b: dict[int, float]) -> tuple[float, float, int]:
    """Mean of a − b (paired over common seeds when there are any), its standard error, and n."""
    mean, se, d = paired_diff(a, b)
    if d:
        return mean, se, len(d)
    return float(np.mean(list(a.values())) - np.mean(list(b.values()))), math.nan, 0


def curve_seeds(*curves: dict[float, dict[int, float]]) -> list[int]:
    """The seeds run at every budget of every curve: the points a fit may average without mixing splits.

    A seed draws its own document split and tokenizer, so a budget's mean over more seeds than the others
    have would bend the fitted curve by the splits' difficulty, not by compute."""
    sets = [set(v) for c in curves for v in c.values()]
    return sorted(set.intersection(*sets)) if sets else []


def _curve(c: dict[float, dict[int, float]], seeds: list[int]) -> dict[float, float]:
    return {b: float(np.mean([v[s] for s in seeds])) for b, v in c.items()}


def crossover(base: dict[float, float], other: dict[float, float], n_boot: int = 200, seed: int = 0,
              horizon: float = 1e3) -> dict[str, Any]:
    """Where ``other`` (loss by budget) crosses below ``base``: fit ``β C^-c + ε∞`` to each (≥ 4 budgets), find
    the smallest budget in [min budget, horizon × max budget] with a lower fitted ``other``; residual bootstrap
    of both fits gives an interval and the share of resamples that cross within the horizon."""
    from .scaling import fit_power

    budgets = sorted(set(base) & set(other))
    if len(budgets) < 4:
        return {"status": "too few budgets", "n_budgets": len(budgets)}
    x = np.array(budgets)
    yb, yo = np.array([base[b] for b in budgets]), np.array([other[b] for b in budgets])
    grid = np.geomspace(x.min(), x.max() * horizon, 400)

    def cross(fb, fo) -> float:
        below = np.nonzero(fo.predict(grid) < fb.predict(grid))[0]
        return float(grid[below[0]]) if len(below) else math.inf

    try:
        fb, fo = fit_power(x, yb, n_boot=0), fit_power(x, yo, n_boot=0)
    except ValueError as e:
        return {"status": f"fit failed: {e}"}
    point = cross(fb, fo)
    rng = np.random.default_rng(seed)
    rb, ro = yb - fb.predict(x), yo - fo.predict(x)
    boots = []
    for _ in range(n_boot):
        try:
            b2 = fit_power(x, fb.predict(x) + rng.choice(rb - rb.mean(), len(x)), n_boot=0)
            o2 = fit_power(x, fo.predict(x) + rng.choice(ro - ro.mean(), len(x)), n_boot=0)
        except ValueError:
            continue
        boots.append(cross(b2, o2))
    finite = [b for b in boots if math.isfinite(b)]
    return {"status": "ok", "crossing": point, "share_crossing": len(finite) / max(1, len(boots)),
            "ci": _interval(boots),
            "horizon": float(x.max() * horizon), "base_fit": fb.to_dict(), "other_fit": fo.to_dict(),
            "n_boot": len(boots)}


def predict_budget(curves: dict[str, dict[float, float]], at: float, n_boot: int = 200,
                   seed: int = 0) -> dict[str, Any]:
    """Predict each curve (loss by budget, ≥ 4 budgets) at the budget ``at`` from its fitted power law
    ``β C^-c + ε∞``, and the difference of the second curve to the first (when there are two), with 95%
    residual-bootstrap intervals (each resample refits every curve on its own resampled residuals).

    Returns ``{"status": "ok", "pred": {name: loss}, "ci": {name: [lo, hi]}, "gap": float | None,
    "gap_ci": [lo, hi] | None, "n_boot": int}`` or a ``status`` saying why not."""
    from .scaling import fit_power

    names = list(curves)
    xs = {k: np.array(sorted(v)) for k, v in curves.items()}
    if any(len(x) < 4 for x in xs.values()):
        return {"status": "too few budgets to fit (need 4)"}
    ys = {k: np.array([curves[k][b] for b in xs[k]]) for k in names}
    try:
        fits = {k: fit_power(xs[k], ys[k], n_boot=0) for k in names}
    except ValueError as e:
        return {"status": f"fit failed: {e}"}
    at_x = np.array([float(at)])
    pred = {k: float(f.predict(at_x)[0]) for k, f in fits.items()}
    rng = np.random.default_rng(seed)
    boots: dict[str, list[float]] = {k: [] for k in names}
    gaps: list[float] = []
    for _ in range(n_boot):
        one = {}
        try:
            for k, f in fits.items():
                res = ys[k] - f.predict(xs[k])
                refit = fit_power(xs[k], f.predict(xs[k]) + rng.choice(res - res.mean(), len(res)), n_boot=0)
                one[k] = float(refit.predict(at_x)[0])
        except ValueError:
            continue
        for k in names:
            boots[k].append(one[k])
        if len(names) == 2:
            gaps.append(one[names[1]] - one[names[0]])

    def ci(v: list[float]) -> list[float] | None:
        return [float(x) for x in np.percentile(v, [2.5, 97.5])] if v else None

    return {"status": "ok", "pred": pred, "ci": {k: ci(v) for k, v in boots.items()},
            "gap": pred[names[1]] - pred[names[0]] if len(names) == 2 else None,
            "gap_ci": ci(gaps), "n_boot": len(gaps) if len(names) == 2 else len(boots[names[0]])}


def _holdout_section(rs: list[RunInfo], held: list[RunInfo], n_boot: int,
                     margin: float = 0.01) -> tuple[str, dict[str, Any]]:
    """Each out-of-sample run against its layout's fitted curve (main runs of the same seed), and the gap to
    ``AB`` where ``AB`` was held out at the same budget and seed."""
    if not held:
        return "", {}
    stats = seed_stats(rs)
    lines, data = [], {}
    for h in sorted(held, key=lambda r: (r.budget or 0, _layout_key(r) != _AB, _layout_key(r), r.seed)):
        key = _layout_key(h)
        curve = {b: v[h.seed] for b, v in stats.get(key, {}).items() if h.seed in v}
        twin = next((o for o in held if _layout_key(o) == _AB and o.budget == h.budget and o.seed == h.seed),
                    None)
        base = {b: v[h.seed] for b, v in stats.get(_AB, {}).items() if h.seed in v}
        pair = key != _AB and twin is not None and len(base) >= 4  # a gap needs AB's fit too
        p = predict_budget({"AB": base, "x": curve} if pair else {"x": curve}, h.budget, n_boot=n_boot)
        label = f"`{_label(key)}` at C = {h.budget:.3g} (seed {h.seed})"
        if p["status"] != "ok":
            lines.append(f"- {label}: measured {h.val_loss:.4f}; no prediction ({p['status']}).")
            data[f"{_label(key)} {h.budget:.3g} s{h.seed}"] = {"measured": h.val_loss, "status": p["status"]}
            continue
        pred, ci = p["pred"]["x"], p["ci"]["x"]
        inside = ci is not None and ci[0] <= h.val_loss <= ci[1]
        text = (f"- {label}: measured **{h.val_loss:.4f}**, predicted {pred:.4f} (95% "
                + (f"{ci[0]:.4f} … {ci[1]:.4f}" if ci else "–") + f"; fitted on {len(curve)} budgets up to "
                f"{max(curve):.3g}), error {h.val_loss - pred:+.4f}" + (" — inside the interval" if inside else
                                                                     " — **outside** the interval"))
        row = {"budget": h.budget, "seed": h.seed, "measured": h.val_loss, "predicted": pred, "ci": ci,
               "inside": inside}
        if pair:
            gap = h.val_loss - twin.val_loss
            gci = p["gap_ci"]
            g_in = gci is not None and gci[0] <= gap <= gci[1]
            text += (f"; gap to AB measured **{gap:+.4f}**, predicted {p['gap']:+.4f} (95% "
                     + (f"{gci[0]:+.4f} … {gci[1]:+.4f}" if gci else "–") + ")"
                     + (" — inside" if g_in else " — **outside**"))
            row.update(gap=gap, gap_predicted=p["gap"], gap_ci=gci, gap_inside=g_in)
        lines.append(text + ".")
        data[f"{_label(key)} {h.budget:.3g} s{h.seed}"] = row
    lines += _refit_with_holdout(stats, held, n_boot, margin, data)
    return ("Out-of-sample check (runs past or between the main budgets, left out of the fits above: each is "
            "compared with its layout's power law fitted to the main runs of the same seed, with a 95% "
            "residual-bootstrap interval; the power law has 3 parameters, so with few budgets the interval "
            "reflects the residuals' scatter, not the choice of curve, nor learning rates that differ by "
            "budget. The refit lines then fit main and held-out budgets together, the best estimate once the "
            "check is done):\n\n" + "\n".join(lines) + "\n\n"), data


def _refit_with_holdout(stats: dict[tuple, dict[float, dict[int, float]]], held: list[RunInfo], n_boot: int,
                        margin: float, data: dict[str, Any]) -> list[str]:
    """After the out-of-sample test, the best estimate uses every point: refit each layout that has held-out
    runs paired with a held-out ``AB`` (same budget and seed) on its main and held-out budgets together."""
    lines = []
    pairs = sorted({(_layout_key(h), h.seed) for h in held if _layout_key(h) != _AB})
    for key, seed in pairs:
        mine = {h.budget: h.val_loss for h in held if _layout_key(h) == key and h.seed == seed}
        ab = {h.budget: h.val_loss for h in held if _layout_key(h) == _AB and h.seed == seed}
        both = sorted(set(mine) & set(ab))
        if not both:
            continue
        base = {b: v[seed] for b, v in stats.get(_AB, {}).items() if seed in v} | {b: ab[b] for b in both}
        other = {b: v[seed] for b, v in stats.get(key, {}).items() if seed in v} | {b: mine[b] for b in both}
        cx = crossover(base, other, n_boot=n_boot)
        gaps = "; ".join(f"{b:.3g}: {mine[b] - ab[b]:+.4f}" for b in both)
        below = [b for b in both if mine[b] - ab[b] < -margin]
        label = (f"- `{_label(key)}` − `AB` refitted with the held-out budgets (seed {seed}; held-out gaps {gaps}"
                 + (f"; **measured below AB at C = {below[0]:.3g}**, one seed" if below else "") + ")")
        if cx.get("status") != "ok":
            lines.append(f"{label}: {cx.get('status')}.")
        elif math.isfinite(cx["crossing"]):
            lines.append(f"{label}: the fitted curves cross at **C ≈ {cx['crossing']:.2g}** (95% bootstrap interval "
                         f"{_ci(cx['ci'], cx['horizon'])}; {100 * cx['share_crossing']:.0f}% of resamples cross "
                         f"within {cx['horizon']:.2g}) — extrapolated, through {len(base)} budgets.")
        else:
            lines.append(f"{label}: the fitted curves do not cross up to C = {cx['horizon']:.2g} "
                         f"({100 * cx['share_crossing']:.0f}% of resamples do).")
        data[f"refit {_label(key)} s{seed}"] = cx
    return lines


def _interval(boots: list[float]) -> list[float] | None:
    """95% percentile interval over every resample; one that never crosses counts as +inf (so the upper end
    is inf when more than 2.5% never cross, instead of an interval of only the resamples that do)."""
    if not boots:
        return None
    b = np.sort(np.array(boots))
    lo, hi = b[int(math.floor(0.025 * (len(b) - 1)))], b[int(math.ceil(0.975 * (len(b) - 1)))]
    return [float(lo), float(hi)]


def equal_tokens_gap(base_points: list[tuple[float, float]], tokens: float, loss: float) -> float | None:
    """``loss`` minus the baseline's final loss interpolated (linearly in log tokens) at ``tokens``; ``None``
    outside the baseline's range. ``base_points``: (tokens, final loss) of baseline runs."""
    pts = sorted(base_points)
    if len(pts) < 2 or not pts[0][0] <= tokens <= pts[-1][0]:
        return None
    xs, ys = np.log([p[0] for p in pts]), [p[1] for p in pts]
    return float(loss - np.interp(math.log(tokens), xs, ys))


def _table_section(size: str, rs: list[RunInfo]) -> tuple[str, dict[str, Any]]:
    stats = seed_stats(rs)
    r1 = seed_stats(rs, "1")
    budgets = sorted({b for v in stats.values() for b in v})
    rows, data = [], {}
    for key in sorted(stats, key=lambda k: (k != _AB, k)):
        cells = [_pm(list(stats[key].get(b, {}).values())) for b in budgets]
        rows.append([_label(key), "trained"] + cells)
        data[_label(key)] = {f"{b:.3g}": stats[key].get(b, {}) for b in budgets}
        if key[2] > 0:  # stochastic depth: also at r = 1 (the no-regret depth)
            rows.append([_label(key), "r = 1"] + [_pm(list(r1[key].get(b, {}).values())) for b in budgets])
    one = next(iter(rs))
    ne = "n/a" if one.non_embedding_params is None else f"{one.non_embedding_params:,}"
    params = f"{one.params:,}" if one.params else "n/a"
    text = (f"### Size {size} ({params} parameters, {ne} non-embedding)\n\n"
            "Final held-out loss (nats/token), mean ± standard deviation over seeds:\n\n"
            + md_table(["layout", "depth"] + [f"C = {b:.3g}" for b in budgets], rows) + "\n\n")
    return text, {"losses": data}


def _ci(ci: list[float], horizon: float) -> str:
    hi = f"{ci[1]:.2g}" if math.isfinite(ci[1]) else f"beyond {horizon:.2g}"
    return f"{ci[0]:.2g}–{hi}" if math.isfinite(ci[0]) else f"beyond {horizon:.2g}"


def _seeds(seeds: list[int]) -> str:
    return ", ".join(map(str, seeds))


def _crossing_section(rs: list[RunInfo], n_boot: int, margin: float) -> tuple[str, dict[str, Any]]:
    stats = seed_stats(rs)
    base = stats.get(_AB)
    if not base:
        return "No `AB` baseline at this size: no crossover to report.\n\n", {}
    lines, data = [], {}
    for key in sorted(k for k in stats if k[0] != "AB"):
        diffs = {b: _diff(stats[key][b], base[b]) for b in sorted(stats[key]) if b in base}
        if not diffs:
            continue
        below = [b for b, (d, se, n) in diffs.items() if d < -margin and (not n > 1 or d + 2 * se < 0)]
        cells = "; ".join(f"{b:.3g}: {d:+.4f}" + (f" ± {2 * se:.4f}" if math.isfinite(se) else "")
                          for b, (d, se, _) in diffs.items())
        seeds = curve_seeds(base, stats[key])
        cx = crossover(_curve(base, seeds), _curve(stats[key], seeds), n_boot=n_boot) if seeds else \
            {"status": "no seed run at every budget"}
        cx["fit_seeds"] = seeds
        if below:
            verdict = f"**below AB from C = {min(below):.3g}** (measured)"
        elif cx.get("status") == "ok" and math.isfinite(cx["crossing"]):
            ci = cx["ci"]
            verdict = (f"not below AB at any measured budget; the fitted curves (seed {_seeds(seeds)}) cross at "
                       f"**C ≈ {cx['crossing']:.2g}** (95% bootstrap interval {_ci(ci, cx['horizon'])}; "
                       f"{100 * cx['share_crossing']:.0f}% of resamples cross within {cx['horizon']:.2g})"
                       " — extrapolated")
        elif cx.get("status") == "ok":
            verdict = (f"not below AB at any measured budget, and the fitted curves (seed {_seeds(seeds)}) do not "
                       "cross up to "
                       f"C = {cx['horizon']:.2g} ({100 * cx['share_crossing']:.0f}% of bootstrap resamples do)")
        else:
            verdict = f"not below AB at any measured budget ({cx.get('status')})"
        lines.append(f"- `{_label(key)}` − `AB` at equal training FLOPs: {cells} → {verdict}.")
        data[_label(key)] = {"diffs": {f"{b:.3g}": list(v) for b, v in diffs.items()}, "crossover": cx,
                             "below_from": min(below) if below else None}
    text = ("Crossover (Δ = layout − AB in nats at the same budget; ± = 2 standard errors of the paired "
            f"difference over seeds, shown where there are ≥ 2 seeds; a difference counts when Δ < −{margin} "
            "and, with seeds, 2 SE below zero; the fits use only the seeds run at every budget, since each seed "
            "has its own document split):\n\n" + "\n".join(lines) + "\n\n")
    return text, data


def _tokens_section(rs: list[RunInfo]) -> tuple[str, dict[str, Any]]:
    base_pts = [(r.tokens, r.val_loss) for r in rs if _layout_key(r) == _AB and r.seed == 0]
    lines, data = [], {}
    for r in sorted(rs, key=lambda r: (_layout_key(r), r.budget or 0)):
        if r.signature == "AB" or r.seed != 0 or r.p_skip:
            continue
        gap = equal_tokens_gap(base_pts, r.tokens, r.val_loss)
        if gap is not None:
            data.setdefault(_label(_layout_key(r)), {})[f"{r.budget:.3g}"] = {"tokens": r.tokens, "gap": gap}
    for layout, by_b in data.items():
        lines.append(f"- `{layout}`: " + "; ".join(f"{v['tokens'] / 1e6:.2f} M tokens: {v['gap']:+.4f}"
                                                     for v in by_b.values()))
    if not lines:
        return "Equal tokens: not enough AB budgets to interpolate.\n\n", {}
    return ("At equal *tokens* (each recursive run's final loss minus AB's final loss interpolated, in log tokens, "
            "between AB's budgets; seed 0; Δ < 0: recursion lowers the loss per token seen):\n\n"
            + "\n".join(lines) + "\n\n"), data


def _ood_section(rs: list[RunInfo]) -> tuple[str, dict[str, Any]]:
    specs = sorted({spec for r in rs for spec in r.evals})
    if not specs:
        return "", {}
    top = max(r.budget or 0 for r in rs)
    text, data = "", {}
    for spec in specs:
        by: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in rs:
            if r.budget == top and spec in r.evals:
                for row in r.evals[spec]["results"]:
                    by[_layout_key(r)]["-" if row["r"] is None else str(row["r"])].append(row["loss"])
                by[_layout_key(r)]["in-domain"].append(r.val_loss)
        depths = sorted({d for v in by.values() for d in v if d not in ("-", "in-domain")}, key=int)
        rows = []
        for key, v in sorted(by.items(), key=lambda kv: (kv[0] != _AB, kv[0])):
            plain = v.get("-")
            rows.append([_label(key), _pm(v["in-domain"])] + [_pm(plain if plain else v.get(d, [])) for d in depths])
            data.setdefault(spec, {})[_label(key)] = {k: list(x) for k, x in v.items()}
        text += (f"Out of domain — `{spec}` (a document type the runs never trained on), budget {top:.3g}, "
                 "loss in nats/token at each inference depth (a plain model has one depth):\n\n"
                 + md_table(["layout", "in-domain (trained depth)"] + [f"r = {d}" for d in depths], rows) + "\n\n")
    return text, data


def lr_table(scan: list[RunInfo], runs: list[RunInfo] = ()) -> tuple[str, dict[str, Any]]:
    """The scan's table: one row per scanned (size, layout, budget), with the main run of that point and seed
    in its column too (a main grid at the scan's best lr shares that run with the scan)."""
    if not scan:
        return "", {}
    seeds: dict[tuple, int] = {}  # one seed per point (the smallest scanned): losses of one split compare
    for r in scan:
        k = (r.size, r.layout, r.budget)
        seeds[k] = min(seeds.get(k, r.seed), r.seed)
    by: dict[tuple, dict[float, float]] = defaultdict(dict)
    for r in scan:
        if r.seed == seeds[(r.size, r.layout, r.budget)]:
            by[(r.size, r.layout, r.budget)][r.lr] = r.val_loss
    main: dict[tuple, float] = {}
    for r in runs:
        k = (r.size, r.layout, r.budget)
        if k in by and r.seed == seeds[k] and math.isfinite(r.lr) and r.lr not in by[k]:
            by[k][r.lr] = r.val_loss
            main[k] = r.lr
    lrs = sorted({lr for v in by.values() for lr in v})
    rows, data = [], {}
    for k, v in sorted(by.items()):
        best = min(v, key=v.get)
        cells = [(f"**{v[lr]:.4f}**" if lr == best else f"{v[lr]:.4f}") + (" (main)" if main.get(k) == lr else "")
                 if lr in v else "–" for lr in lrs]
        rows.append([k[0], k[1], f"{k[2]:.3g}"] + cells)
        data[f"{k[0]} {k[1]} {k[2]:.3g}"] = {"losses": {str(x): y for x, y in v.items()}, "best_lr": best,
                                             "main_lr": main.get(k)}
    bests = {k: d["best_lr"] for k, d in data.items()}
    same = len(set(bests.values())) == 1
    text = ("Learning-rate scan (final held-out loss, one seed; best per row in bold; (main): the rate the "
            "study's main run of that point trains with):\n\n"
            + md_table(["size", "layout", "budget"] + [f"lr {x:g}" for x in lrs], rows)
            + f"\n\nThe optima {'coincide' if same else 'differ'}: "
            + ", ".join(f"{k} → {v:g}" for k, v in bests.items()) + ".\n\n")
    return text, data


def study_section(runs: list[RunInfo], scan: list[RunInfo], n_boot: int = 200,
                  margin: float = 0.01, holdout: list[RunInfo] = ()) -> tuple[str, dict[str, Any]]:
    """The study section of the report (Markdown) and the numbers behind it; ``holdout``: out-of-sample runs
    (left out of ``runs``), each compared with the fitted curve of its size and layout."""
    text = "## The long-training study: does RINS cross below AB at equal compute?\n\n"
    data: dict[str, Any] = {}
    t, d = lr_table(scan, runs)
    text += t
    data["lr_scan"] = d
    by_size: dict[str, list[RunInfo]] = defaultdict(list)
    for r in runs:
        by_size[r.size].append(r)
    for size, rs in sorted(by_size.items()):
        parts = [_table_section(size, rs), _crossing_section(rs, n_boot, margin),
                 _holdout_section(rs, [h for h in holdout if h.size == size], n_boot, margin), _tokens_section(rs),
                 _ood_section(rs)]
        text += "".join(p[0] for p in parts)
        data[size] = {k: p[1] for k, p in zip(("table", "crossover", "holdout", "equal_tokens", "ood"), parts)}
    return text, data
