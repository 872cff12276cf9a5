"""The crossing measured in float32 (configs/crossing-fp32.toml), against what the study's bf16 fits predicted;
the blocks of RESULTS.md's float32 crossing sections (size S: "crossing_fp32", size M: "crossing_fp32_M").

    .venv/bin/python tools/crossing_fp32.py            # prints the blocks
    .venv/bin/python tools/crossing_fp32.py --write    # rewrites them in RESULTS.md

Measured: each layout's final held-out loss at its float32 budget (seed 0), at every inference depth, on the
held-out documents and on the out-of-domain kernel docs, and its gap to `AB`; with 2+ seeds, the gaps paired by
seed. Where a layout was trained at several learning rates (size M's grids), each layout is taken at its best rate
(lowest seed-0 loss), and the rates tried are listed. Predicted: the study's seed-0 curves at that size
(results/study-long, bf16, the main grid) fitted per layout (`β·C^−c + ε∞`) and extrapolated to the budget, with
95% residual-bootstrap intervals (rins.study_report.predict_budget).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rins.study_report import equal_tokens_gap, predict_budget  # noqa: E402
from tools.blocks import write_block  # noqa: E402

RESULTS = ROOT / "results" / "crossing-fp32"
STUDY = ROOT / "results" / "study-long"
BLOCK = "crossing_fp32"
OOD = "mix-large:linux-doc"
STUDY_CORPUS = "mix-large:-linux-doc"  # what the bf16 study and the float32 runs up to 8e14 trained on
# tokens in mix-large:-linux-doc's training split at vocabulary 1024 (docs/corpora.md), for the summaries written
# before runs recorded their own passes over their training split
TRAIN_TOKENS = 41.0e6


def _label(cfg: dict) -> str:
    m = cfg["model"]
    sig = m["signature"]
    if float(m.get("p_skip") or 0) > 0:
        return f"{sig} p_s={float(m['p_skip']):g}" + (f" + {m['adapters']} adapters" if m.get("adapters", "none")
                                                       != "none" else "")
    return sig


def _summaries(folder: Path, size: str) -> list[dict]:
    """The run summaries of ``folder`` at ``size``."""
    out = []
    for p in sorted(folder.glob("*.json")):
        s = json.loads(p.read_text())
        if s.get("format") == "rins-run-summary/1" and s.get("size", "S") == size:
            out.append(s)
    return out


def budgets(folder: Path, size: str) -> list[float]:
    """The budgets ``folder`` has summaries of at ``size``, smallest first."""
    return sorted({float(s["budget"]) for s in _summaries(folder, size)})


def _by_rate(folder: Path, size: str, budget: float | None = None) -> dict[str, dict[float, dict[int, dict]]]:
    """label -> learning rate -> seed -> summary, for the summaries of ``folder`` at ``size`` (and ``budget``;
    default: the smallest budget there)."""
    budget = min(budgets(folder, size), default=None) if budget is None else budget
    out: dict[str, dict[float, dict[int, dict]]] = {}
    for s in _summaries(folder, size):
        if float(s["budget"]) != budget:
            continue
        lr = float(s["config"]["optim"]["lr"])
        out.setdefault(_label(s["config"]), {}).setdefault(lr, {})[int(s["config"]["seed"])] = s
    return out


def _best_rate(rates: dict[float, dict[int, dict]]) -> float:
    """The rate with the lowest seed-0 loss (the lowest mean loss where no rate has seed 0)."""
    def key(lr: float) -> tuple[int, float]:
        runs = rates[lr]
        if 0 in runs:
            return 0, float(runs[0]["val_loss"])
        return 1, sum(float(r["val_loss"]) for r in runs.values()) / len(runs)
    return min(rates, key=key)


def load_seeds(folder: Path, size: str = "S", budget: float | None = None) -> dict[str, dict[int, dict]]:
    """label -> seed -> summary, for the summaries of ``folder`` at ``size`` and ``budget`` (default: the smallest),
    each layout at its best learning rate (:func:`_best_rate`; S's grids have one rate per layout)."""
    return {label: rates[_best_rate(rates)] for label, rates in _by_rate(folder, size, budget).items()}


def load(folder: Path, size: str = "S", budget: float | None = None) -> dict[str, dict]:
    """label -> seed-0 summary of ``folder`` at ``size`` and ``budget`` (default: the smallest)."""
    return {label: seeds[0] for label, seeds in load_seeds(folder, size, budget).items() if 0 in seeds}


def rates_note(folder: Path, size: str, budget: float | None = None) -> str:
    """One line per layout trained at more than one rate: each rate's seed-0 loss and the one kept; empty else."""
    lines = []
    for label, rates in sorted(_by_rate(folder, size, budget).items()):
        if len(rates) < 2:
            continue
        best = _best_rate(rates)
        tried = ", ".join(f"{lr:g}: {float(r[0]['val_loss']):.4f}" if 0 in r else f"{lr:g}: no seed 0"
                          for lr, r in sorted(rates.items()))
        lines.append(f"- `{label}`: {tried} → {best:g}")
    return ("\nLearning rates tried (seed-0 loss; each layout is taken at its best):\n\n" + "\n".join(lines) + "\n"
            if lines else "")


def _mean_2se(xs: list[float]) -> str:
    """``mean ± 2 SE`` (the sample standard deviation over √n), or the one value."""
    n = len(xs)
    mean = sum(xs) / n
    if n < 2:
        return f"{mean:+.4f} (1 seed)"
    sd = (sum((x - mean) ** 2 for x in xs) / (n - 1)) ** 0.5
    return f"{mean:+.4f} ± {2 * sd / n ** 0.5:.4f}"


def paired_block(seeds: dict[str, dict[int, dict]]) -> str:
    """Each recursive layout's gap to `AB`, paired by seed, in domain and on the kernel docs (every seed that both
    have finished); empty while only seed 0 exists."""
    ab = seeds.get("AB", {})
    rows = []
    for label, runs in sorted(seeds.items()):
        common = sorted(set(runs) & set(ab))
        if label == "AB" or len(common) < 2:
            continue
        d_in = [float(runs[k]["val_loss"]) - float(ab[k]["val_loss"]) for k in common]
        oods = [(_ood(runs[k]), _ood(ab[k])) for k in common]
        d_ood = [a - b for a, b in oods if a is not None and b is not None]
        d_eq = [_equal_tokens(runs[k], ab[k], k) for k in common]
        rows.append(f"| `{label}` | {', '.join(map(str, common))} | {', '.join(f'{d:+.4f}' for d in d_in)} | "
                    f"{_mean_2se(d_in)} | {', '.join(f'{d:+.4f}' for d in d_ood) or 'n/a'} | "
                    f"{_mean_2se(d_ood) if d_ood else 'n/a'} | "
                    f"{', '.join('n/a' if d is None else f'{d:+.4f}' for d in d_eq)} | "
                    f"{_mean_2se(known) if (known := [d for d in d_eq if d is not None]) else 'n/a'} |")
    if not rows:
        return ""
    return ("\nPaired over seeds (Δ = layout − `AB` of the same seed, nats; ± 2 SE over seeds; at equal tokens: "
            "the layout's loss minus its seed's `AB` interpolated in log tokens between that seed's bf16 study runs "
            "and its float32 run):\n\n"
            "| layout | seeds | Δ per seed | Δ mean ± 2 SE | Δ OOD per seed | Δ OOD mean ± 2 SE | "
            "Δ at equal tokens per seed | mean ± 2 SE |\n"
            "|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")


def _equal_tokens(run: dict, ab: dict, seed: int) -> float | None:
    """``run``'s gap to `AB` of ``seed`` at equal tokens (None off the study's corpus or outside `AB`'s tokens)."""
    if not (_on_study_corpus(run) and _on_study_corpus(ab)):
        return None
    pts = ab_token_points(str(ab.get("size", "S")), ab, seed=seed)
    return equal_tokens_gap(pts, float(run["tokens"]), float(run["val_loss"]))


def _study_runs(size: str, pattern: str = "*", seed: int = 0) -> list[dict]:
    """The study's summaries of ``seed`` at ``size`` (bf16) whose run name matches ``{size}_{pattern}_s{seed}``,
    rate scans left out."""
    runs = [json.loads(p.read_text()) for p in sorted(STUDY.glob(f"{size}_{pattern}_s{seed}.json"))]
    return [s for s in runs if not s.get("lr_scan") and s.get("size") == size]


def study_curves(size: str = "S") -> dict[str, dict[float, float]]:
    """label -> {budget: final loss} of the study's seed-0 main-grid runs at ``size`` (bf16; held-out budgets
    left out: they test the fits)."""
    curves: dict[str, dict[float, float]] = {}
    for s in _study_runs(size):
        if not s.get("holdout"):
            curves.setdefault(_label(s["config"]), {})[float(s["budget"])] = float(s["val_loss"])
    return curves


def ab_token_points(size: str = "S", ab: dict | None = None, budget: float | None = None, seed: int = 0
                    ) -> list[tuple[float, float]]:
    """(tokens, final loss) of `AB` at ``seed``: the study's runs at ``size`` (bf16, held-out budgets included, rate
    scans left out) and this study's float32 run ``ab`` (default: seed 0's, read from ``RESULTS``, at its best
    rate), the baseline that :func:`equal_tokens_gap` interpolates in log tokens."""
    pts = [(float(s["tokens"]), float(s["val_loss"])) for s in _study_runs(size, "AB_*", seed)
           if _label(s["config"]) == "AB"]
    ab = load(RESULTS, size, budget).get("AB") if ab is None else ab
    if ab is not None:
        pts.append((float(ab["tokens"]), float(ab["val_loss"])))
    return sorted(pts)


def _trained_r(s: dict) -> int | None:
    """The depth the run was trained at (its main loss is that depth's), None for a plain model."""
    return next((int(k) for k, v in (s.get("val_loss_r") or {}).items() if v == s["val_loss"]), None)


def _ood(s: dict) -> float | None:
    """The out-of-domain loss at the trained depth."""
    rows = (s.get("evals") or {}).get(OOD, {}).get("results") or []
    r = _trained_r(s)
    found = [row for row in rows if row.get("r") == r] or (rows if len(rows) == 1 else [])
    return float(found[0]["loss"]) if found else None


EXPECTED = {"S": {"AB", "A^2B", "A^3B p_s=0.5 + round adapters"}, "M": {"AB", "A^2B"}}


def block(size: str = "S") -> str:
    """The markdown block of ``size``: per budget, the seed-0 table, the rates tried, the paired-over-seeds table
    (headed by its budget and corpus where there are several budgets)."""
    found = budgets(RESULTS, size)
    if not found:
        return f"_No size-{size} run of configs/crossing-fp32.toml has finished yet._\n"
    if len(found) == 1:
        return _block_at(size, found[0])
    corpus = {float(s["budget"]): _corpus(s) for s in _summaries(RESULTS, size)}
    return "\n".join(f"**{size} at {b:g} FLOPs** (`{corpus[b]}`):\n\n" + _block_at(size, b) for b in found)


def _block_at(size: str, budget: float) -> str:
    """The tables of ``size`` at ``budget``; a layout's bf16 prediction and equal-tokens gap only on the study's
    corpus (the bf16 study and its `AB` curve were trained on it)."""
    runs = load(RESULTS, size, budget)
    if "AB" not in runs:
        return f"_No size-{size} `AB` run at {budget:g} FLOPs has finished yet._\n"
    ab = runs["AB"]
    curves = study_curves(size) if _on_study_corpus(ab) else {}
    rows = ["| layout | tokens (passes) | held-out loss, fp32 | Δ vs `AB` | per depth r = 1 … | kernel docs (OOD) | "
            "Δ OOD vs `AB` | Δ vs `AB` at equal tokens | bf16 fit's prediction: loss (95%) | predicted Δ (95%) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    ab_ood = _ood(ab)
    ab_pts = ab_token_points(size, ab) if _on_study_corpus(ab) else []
    for label, s in sorted(runs.items(), key=lambda kv: (kv[0] != "AB", kv[0])):
        loss = float(s["val_loss"])
        per_r = ", ".join(f"{v:.4f}" for _, v in sorted((int(k), v) for k, v in (s.get("val_loss_r") or {}).items()))
        ood = _ood(s)
        if not _on_study_corpus(s):
            pred = {"status": "other corpus"}
        elif label in curves and "AB" in curves:
            pred = predict_budget({"AB": curves["AB"], label: curves[label]}, float(s["budget"]))
        else:
            pred = {"status": "no study curve"}
        if pred.get("status") == "ok":
            lo, hi = pred["ci"][label]
            p_loss = f"{pred['pred'][label]:.3f} ({lo:.3f} … {hi:.3f})"
            p_gap = "" if label == "AB" else f"{pred['gap']:+.3f} ({pred['gap_ci'][0]:+.3f} … {pred['gap_ci'][1]:+.3f})"
        else:
            p_loss, p_gap = pred["status"], ""
        d_loss = "" if label == "AB" else f"{loss - float(ab['val_loss']):+.4f}"
        ood_txt = "n/a" if ood is None else f"{ood:.4f}"
        d_ood = "" if label == "AB" or ood is None or ab_ood is None else f"{ood - ab_ood:+.4f}"
        passes = s.get("passes", s["tokens"] / TRAIN_TOKENS)  # summaries before passes were recorded
        if label == "AB":
            d_eq = ""
        elif not ab_pts:
            d_eq = "other corpus"
        else:
            eq = equal_tokens_gap(ab_pts, float(s["tokens"]), loss)
            d_eq = "outside `AB`'s tokens" if eq is None else f"{eq:+.4f}"
        rows.append(f"| `{label}` | {s['tokens'] / 1e6:.1f} M ({passes:.2f}) | {loss:.4f} | {d_loss} | "
                    f"{per_r or '—'} | {ood_txt} | {d_ood} | {d_eq} | {p_loss} | {p_gap} |")
    missing = sorted(EXPECTED.get(size, {"AB"}) - set(runs))
    note = f"\nNot finished yet: {', '.join(f'`{m}`' for m in missing)}.\n" if missing else ""
    return ("\n".join(rows) + "\n" + note + rates_note(RESULTS, size, budget)
            + paired_block(load_seeds(RESULTS, size, budget)))


def _corpus(s: dict) -> str:
    """The corpus a run trained on (summaries without a data table predate other corpora: the study's)."""
    return (s.get("config", {}).get("data") or {}).get("corpus", STUDY_CORPUS)


def _on_study_corpus(s: dict) -> bool:
    """Trained on the bf16 study's corpus."""
    return _corpus(s) == STUDY_CORPUS


BLOCKS = {"S": BLOCK, "M": BLOCK + "_M"}


def main() -> None:
    if "--write" not in sys.argv:
        for size in BLOCKS:
            print(f"--- size {size} ---\n{block(size)}")
        return
    path = ROOT / "RESULTS.md"
    text = path.read_text()
    for size, name in BLOCKS.items():
        text = write_block(text, name, block(size))
    path.write_text(text)
    print(f"wrote the {', '.join(BLOCKS.values())} blocks of {path}")


if __name__ == "__main__":
    main()
