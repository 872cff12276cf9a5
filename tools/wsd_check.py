"""WSD cooldown branches against cosine runs of the same budget (configs/wsd-check.toml), from the committed
summaries in results/wsd-check/*.json; the table of RESULTS.md's "WSD branches vs cosine" section.

    .venv/bin/python tools/wsd_check.py            # prints the table
    .venv/bin/python tools/wsd_check.py --write    # rewrites the block in RESULTS.md

Per layout: the final held-out loss (mean ± sd over seeds) as a cosine run, a plain WSD run and the last branch of
a WSD trunk; the paired differences WSD − cosine (the schedule) and branch − WSD (the branching itself), each mean ±
2 standard errors over seeds; where results/study-long holds the same cosine run in bf16 (seed 0), the float32 −
bf16 difference; and each recursive layout's gap to AB under each schedule.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.blocks import write_block  # noqa: E402

RESULTS = ROOT / "results" / "wsd-check"
STUDY = ROOT / "results" / "study-long"
BLOCK = "wsd_check"


def _layout(cfg: dict) -> str:
    return cfg["model"]["signature"]


def load(folder: Path = RESULTS) -> dict[tuple[str, float, str], dict[int, float]]:
    """(layout, budget, kind) -> {seed: final held-out loss}; kind: ``cosine``, ``wsd`` (a plain WSD run) or
    ``wsd-branch`` (a cooldown branch of a WSD trunk)."""
    out: dict[tuple[str, float, str], dict[int, float]] = defaultdict(dict)
    for p in sorted(folder.glob("*.json")):
        s = json.loads(p.read_text())
        cfg = s["config"]
        kind = cfg["optim"]["schedule"] + ("-branch" if "_br_" in s["name"] else "")
        out[(_layout(cfg), float(s["budget"]), kind)][int(cfg["seed"])] = float(s["val_loss"])
    return out


def _paired(a: dict[int, float], b: dict[int, float]) -> str:
    """``mean(a − b) ± 2 SE`` over the seeds both have."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        return "n/a"
    d = np.array([a[k] - b[k] for k in seeds])
    if len(d) == 1:
        return f"{d[0]:+.4f} (seed {seeds[0]})"
    return f"{d.mean():+.4f} ± {2 * d.std(ddof=1) / np.sqrt(len(d)):.4f}"


def _mean_sd(a: dict[int, float]) -> str:
    if not a:
        return "n/a"
    v = np.array(list(a.values()))
    return f"{v.mean():.4f} ± {v.std(ddof=1) if len(v) > 1 else 0:.4f}"


def table(data: dict[tuple[str, float, str], dict[int, float]]) -> str:
    rows = ["| layout | budget | seeds | cosine | WSD | WSD branch | WSD − cosine | branch − WSD | "
            "float32 − bf16 cosine, seed 0 |", "|---|---|---|---|---|---|---|---|---|"]
    for (lay, budget, kind), cos in sorted(data.items()):
        if kind != "cosine":
            continue
        wsd = data.get((lay, budget, "wsd"), {})
        br = data.get((lay, budget, "wsd-branch"), {})
        ref = _bf16_seed0(lay, budget)
        bf = f"{cos[0] - ref:+.4f}" if ref is not None and 0 in cos else "n/a"
        rows.append(f"| `{lay}` | {_num(budget)} | {len(cos)} | {_mean_sd(cos)} | {_mean_sd(wsd)} | {_mean_sd(br)} "
                    f"| **{_paired(wsd, cos)}** | **{_paired(br, wsd)}** | {bf} |")
    return "\n".join(rows)


def gap_table(data: dict[tuple[str, float, str], dict[int, float]], base: str = "AB") -> str:
    """The compute-matched gap of each recursive layout to ``base`` (paired by seed) under each schedule: does
    the schedule change the comparison the study makes?"""
    kinds = ("cosine", "wsd", "wsd-branch")
    rows = [f"| layout − `{base}` | budget | cosine | WSD | WSD branch |", "|---|---|---|---|---|"]
    for (lay, budget, kind), _ in sorted(data.items()):
        if kind != "cosine" or lay == base:
            continue
        cells = [_paired(data.get((lay, budget, k), {}), data.get((base, budget, k), {})) for k in kinds]
        rows.append(f"| `{lay}` | {_num(budget)} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _num(v: float) -> str:
    return f"{v:.1e}".replace("e+", "e").replace(".0e", "e")


def _bf16_seed0(layout: str, budget: float) -> float | None:
    """The study's bf16 cosine run of this layout and budget at size S, seed 0 (its main run), if committed."""
    slug = layout.replace("^", "x").replace("(", "o").replace(")", "c")
    p = STUDY / f"S_{slug}_C{_num(budget)}_s0.json"
    if not p.is_file():
        return None
    return float(json.loads(p.read_text())["val_loss"])


def main() -> int:
    data = load()
    text = table(data) + "\n\n" + gap_table(data)  # tests/test_study_config.py checks RESULTS.md holds this
    if "--write" not in sys.argv:
        print(text)
        return 0
    md = ROOT / "RESULTS.md"
    md.write_text(write_block(md.read_text(), BLOCK, text + "\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
