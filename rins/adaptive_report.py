"""Quality against compute for adaptive depth per token: the ``rins report --adaptive-evals`` section.

Input: JSON files written by ``rins eval RUN --adaptive ... --json`` (one run, one text each). Runs of the same
layout (signature, p_skip, adapters, size) and text are paired over their seeds. For every exit rule and
threshold, the section compares the adaptive model with **the fixed-depth frontier at equal compute**: the
loss of fixed r = 1 … r_max, interpolated linearly in forward FLOPs per token at the adaptive point's FLOPs
(head reads of the rule included). Δ < 0 means adaptive depth reaches a lower loss than fixed depths at the
same compute; it is computed per seed and reported as mean ± 2 SE over seeds. The plot draws loss against
mean FLOPs per token: fixed r as points, each exit rule as a curve over its thresholds.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from .plots import UNKNOWN_LAYOUT_COLOR, finish_figure, model_color, new_figure
from .runs import is_run_dir, run_config
from .tables import md_table

__all__ = ["adaptive_section", "load_adaptive_evals", "frontier_gap"]


def load_adaptive_evals(files: list[str | Path]) -> list[dict[str, Any]]:
    """The ``rins eval --adaptive --json`` results in ``files``, each with ``layout``, ``seed`` and ``model`` (the
    run's model table, ``None`` when unknown) added, from the run's config.json when it is readable, else from
    the run name."""
    out = []
    for f in files:
        p = Path(f)
        if not p.is_file():
            raise FileNotFoundError(f"adaptive eval file {p} does not exist (write it with rins eval RUN "
                                    "--adaptive kl=... --json > FILE)")
        try:
            res = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{p} is not JSON ({e}); write it with rins eval RUN --adaptive ... --json") from None
        if not isinstance(res, dict) or not res.get("adaptive") or not res.get("results"):
            raise ValueError(f"{p} has no adaptive rows; write it with rins eval RUN --adaptive kl=... --json")
        res["layout"], res["seed"], res["model"] = _layout(Path(res["run"]))
        out.append(res)
    return out


def _layout(run: Path) -> tuple[str, int, dict[str, Any] | None]:
    if is_run_dir(run):
        cfg = run_config(run)
        m = cfg.get("model", {})
        label = m.get("signature", "?")
        if m.get("p_skip"):
            label = f"stochastic {label} (p_s={m['p_skip']:g}" + (f", {m['adapters']} adapters)" if
                                                                  m.get("adapters", "none") != "none" else ")")
        flops = (cfg.get("budget") or {}).get("flops")  # runs of one layout at other budgets are not seeds of it
        return f"{label}, d={m.get('d_model')}" + (f", C={flops:.2g}" if flops else ""), int(cfg.get("seed", 0)), m
    name = run.name
    base, _, seed = name.rpartition("-s")
    return (base, int(seed), None) if seed.isdigit() else (name, 0, None)


def frontier_gap(fixed: list[tuple[float, float]], flops: float) -> float | None:
    """The loss of the fixed-depth frontier at ``flops``: linear interpolation between the fixed points
    ``(flops, loss)``, each point's loss first lowered to the best of the cheaper ones (a deeper fixed r that is
    worse than a shallower one is not what fixed depth offers at its cost: the shallower one is); None outside
    their range (no extrapolation)."""
    pts: list[tuple[float, float]] = []
    for x, y in sorted(fixed):
        pts.append((x, min(y, pts[-1][1]) if pts else y))
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x0 <= flops <= x1:
            return y0 if x1 == x0 else y0 + (y1 - y0) * (flops - x0) / (x1 - x0)
    if pts and math.isclose(flops, pts[-1][0], rel_tol=1e-9):
        return pts[-1][1]
    return None


def _mean_se(xs: list[float]) -> tuple[float, float]:
    n = len(xs)
    m = sum(xs) / n
    if n < 2:
        return m, float("nan")
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1) / n)


def adaptive_section(files: list[str | Path], out: str | Path, margin: float = 0.01) -> tuple[str, dict[str, Any]]:
    """(Markdown, data) of the section, with one PNG per layout and text in ``out``."""
    evals = load_adaptive_evals(files)
    out = Path(out)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in evals:
        groups[(e["layout"], e["data"])].append(e)
    parts = ["## Adaptive depth per token: loss against compute\n\n"
             "Δ = adaptive loss − the loss of fixed depths at the same forward FLOPs per token (interpolated "
             "between fixed r = 1 … r_max; head reads of the exit rule counted), per seed, then mean ± 2 SE over "
             f"seeds. Δ < −{margin} nats: adaptive depth beats fixed depth at equal compute.\n"]
    data: dict[str, Any] = {"groups": []}
    for i, ((layout, text), es) in enumerate(sorted(groups.items())):
        es = sorted(es, key=lambda e: e["seed"])
        fixed_rows: dict[int, list[dict]] = defaultdict(list)
        for e in es:
            for row in e["results"]:
                if row["r"] is not None:
                    fixed_rows[row["r"]].append(row)
        r_max = es[0]["adaptive"][0]["r_max"]
        rules: dict[str, list[tuple[dict, float | None]]] = defaultdict(list)
        beyond: dict[str, list[float]] = defaultdict(list)  # past the fixed range: loss − the best cheaper fixed
        for e in es:
            fixed = [(row["flops_per_token"], row["loss"]) for row in e["results"]
                     if row["r"] is not None and row["r"] <= r_max]
            for a in e["adaptive"]:
                ref = frontier_gap(fixed, a["flops_per_token"])
                rules[a["rule"]].append((a, None if ref is None else a["loss"] - ref))
                cheaper = [loss for fl, loss in fixed if fl <= a["flops_per_token"]]
                if ref is None and cheaper:
                    beyond[a["rule"]].append(a["loss"] - min(cheaper))
        rows, g = [], {"layout": layout, "data": text, "seeds": [e["seed"] for e in es], "fixed": {}, "rules": {}}
        for r, rs in sorted(fixed_rows.items()):
            m, se = _mean_se([x["loss"] for x in rs])
            fl = sum(x["flops_per_token"] for x in rs) / len(rs)
            g["fixed"][r] = {"loss": m, "se": se, "flops_per_token": fl, "n": len(rs)}
            rows.append([f"r = {r}", f"{m:.4f}" + (f" ± {2 * se:.4f}" if se == se else ""), f"{r:.2f}",
                         f"{fl / 1e6:.3f}", "–"])
        for rule, items in sorted(rules.items(), key=lambda kv: (kv[0].split("=")[0], float(kv[0].split("=")[1]))):
            m, se = _mean_se([a["loss"] for a, _ in items])
            rounds = sum(a["mean_rounds"] for a, _ in items) / len(items)
            fl = sum(a["flops_per_token"] for a, _ in items) / len(items)
            gaps = [d for _, d in items if d is not None]
            dm, dse = _mean_se(gaps) if len(gaps) == len(items) else (float("nan"), float("nan"))
            g["rules"][rule] = {"loss": m, "se": se, "mean_rounds": rounds, "flops_per_token": fl,
                                "delta": dm, "delta_se": dse, "n": len(items)}
            delta = "outside the fixed range" if dm != dm else (
                f"{dm:+.4f}" + (f" ± {2 * dse:.4f}" if dse == dse else ""))
            if dm != dm and len(beyond[rule]) == len(items):  # costs more than r_max: against the best fixed depth
                bm, bse = _mean_se(beyond[rule])
                what = "dominated" if bm > 0 else "below every fixed depth"
                delta = (f"more FLOPs than r = {r_max}; {what}: {bm:+.4f}" + (f" ± {2 * bse:.4f}" if bse == bse else "")
                         + " vs the best fixed depth")
                g["rules"][rule]["beyond"], g["rules"][rule]["beyond_se"] = bm, bse
            rows.append([rule, f"{m:.4f}" + (f" ± {2 * se:.4f}" if se == se else ""), f"{rounds:.2f}",
                         f"{fl / 1e6:.3f}", delta])
        png = out / f"adaptive_{i}.png"
        _plot(g, png, UNKNOWN_LAYOUT_COLOR if es[0]["model"] is None else model_color(es[0]["model"]))
        g["png"] = png.name
        best = min(((k, v) for k, v in g["rules"].items() if v["delta"] == v["delta"]),
                   key=lambda kv: kv[1]["delta"], default=None)
        verdict = "no adaptive point inside the fixed-depth range"
        if best is not None:
            k, v = best
            ci = 2 * v["delta_se"] if v["delta_se"] == v["delta_se"] else 0.0
            if v["delta"] + ci < -margin:
                verdict = f"adaptive depth helps: {k} is {-v['delta']:.4f} nats below fixed depth at equal compute"
            elif v["delta"] - ci > margin:
                verdict = f"adaptive depth does not help: even the best rule ({k}) is {v['delta']:.4f} nats above"
            else:
                verdict = (f"no resolvable difference: the best rule ({k}) is within {margin} nats (± 2 SE) of "
                           "fixed depth")
        g["verdict"] = verdict
        parts.append(f"\n### {layout} on {text} ({len(es)} seed(s): {', '.join(str(s) for s in g['seeds'])})\n\n"
                     + md_table(["depth / rule", "loss", "mean rounds", "MFLOP/token", "Δ vs fixed at equal FLOPs"],
                                rows) + "\n"
                     + f"\n![loss vs FLOPs]({png.name})\n\nVerdict: {verdict}.\n")
        data["groups"].append(g)
    return "".join(parts), data


# exit-rule kinds: one layout, so its colour; told apart by line and marker
_RULE_STYLES = (("o", "--"), ("^", ":"), ("v", "-."), ("D", (0, (5, 1, 1, 1, 1, 1))))


def _plot(g: dict[str, Any], png: Path, color: Any) -> None:
    """Loss against mean forward FLOPs per token: fixed r as points, one curve per exit rule, all in the layout's
    colour (:func:`rins.plots.layout_color`)."""
    fig, ax = new_figure()
    fx = sorted(g["fixed"].items())
    ax.errorbar([v["flops_per_token"] / 1e6 for _, v in fx], [v["loss"] for _, v in fx],
                yerr=[2 * v["se"] if v["se"] == v["se"] else 0 for _, v in fx], fmt="s", color=color, ms=6, capsize=3,
                label="fixed r", zorder=3)
    for r, v in fx:
        ax.annotate(f"r={r}", (v["flops_per_token"] / 1e6, v["loss"]), textcoords="offset points", xytext=(5, 5),
                    fontsize=8)
    by_kind: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    for rule, v in g["rules"].items():
        by_kind[rule.split("=")[0]].append((v["flops_per_token"] / 1e6, v["loss"],
                                            2 * v["se"] if v["se"] == v["se"] else 0.0))
    for (kind, pts), (marker, ls) in zip(sorted(by_kind.items()), _RULE_STYLES * len(by_kind)):
        pts.sort()
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker=marker, ls=ls, ms=4,
                    color=color, capsize=2, label=f"adaptive: {kind}")
    ax.set_xlabel("forward MFLOPs per token (mean; head reads included)")
    ax.set_ylabel("held-out loss (nats/token)")
    finish_figure(fig, ax, png, f"{g['layout']} on {g['data']}")
