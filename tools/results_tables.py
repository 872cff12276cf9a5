"""Regenerate RESULTS.md's study tables (the blocks between ``<!-- begin:NAME ... -->`` markers) from the
committed run summaries in results/study-long/*.json: seed 0 at every budget, and at the largest budget the
seeds' mean ± sd and the paired difference to AB ± 2 standard errors (the same numbers as the study section
of ``rins report results/study-long``).

    .venv/bin/python tools/results_tables.py            # rewrites the blocks in RESULTS.md
    .venv/bin/python tools/results_tables.py --print    # prints them
    .venv/bin/python tools/results_tables.py --check    # exit 1 if RESULTS.md's blocks are stale
"""

import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from rins.runs import RunInfo, load_runs
from rins.study_report import lr_table, paired_diff

ORDER = ["AB", "A^2B", "A^3B", "(AB)^2", "AB^2C", "A^3B p_s=0.5 + adapters"]


SIZES = {"L6-d64": "S", "L6-d96": "M"}  # the study's sizes, as rins report names them (layers, width)


def load(runs: list[RunInfo]):
    """``(loss, r1, tok)`` from the study's runs: final loss by (size, layout) -> budget -> seed, the same at
    r = 1 for stochastic layouts, and (tokens, learning rate) by (size, layout, budget, seed);
    learning-rate-scan and out-of-sample (holdout) runs are left out."""
    loss = defaultdict(lambda: defaultdict(dict))
    r1 = defaultdict(lambda: defaultdict(dict))
    tok = {}
    for r in runs:
        if r.lr_scan or r.holdout or r.budget is None:
            continue
        layout = r.signature + (f" p_s={r.p_skip:g} + adapters" if r.p_skip else "")
        key = (SIZES.get(r.size, r.size), layout)
        loss[key][r.budget][r.seed] = r.val_loss
        tok[(*key, r.budget, r.seed)] = (r.tokens, r.lr)
        if r.p_skip:
            r1[key][r.budget][r.seed] = r.val_loss_r["1"]
    return loss, r1, tok


def _row(label: str, cells: list[str]) -> str:
    return f"| `{label}` | " + " | ".join(cells) + " |"


def _header(first: list[str], extra: str | None) -> str:
    cols = ["layout", *first] + ([extra] if extra else [])
    return "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols)


def tables(size: str, data) -> tuple[str, str]:
    """The loss table and the gap-to-AB table of one size (``data``: :func:`load`'s result), as markdown."""
    loss, r1, tok = data
    bs = sorted({b for (sz, _), v in loss.items() if sz == size for b in v})
    if not bs:
        return "", ""
    top = bs[-1]
    seeded = any(len(v.get(top, {})) > 1 for (sz, _), v in loss.items() if sz == size)
    cols = [f"C = {b:.2g}" for b in bs]
    t = [_header(cols, f"C = {top:.2g}, seeds: mean ± sd (n)" if seeded else None)]
    g = [_header(cols, f"C = {top:.2g}, paired over seeds: Δ ± 2 SE (per seed)" if seeded else None)]

    def spread(v: dict[int, float]) -> list[str]:
        x = np.array(list(v.values()))
        return ([f"{x.mean():.3f} ± {x.std(ddof=1):.3f} ({len(x)})" if len(x) > 1 else "–"]) if seeded else []

    for layout in ORDER:
        if v := loss.get((size, layout)):
            cells = []
            for b in bs:
                tokens, lr = tok.get((size, layout, b, 0), (0, 0))  # recorded with every seed-0 loss
                cells.append(f"{v[b][0]:.4f} ({tokens / 1e6:.1f} M tok, lr {lr:g})" if 0 in v.get(b, {}) else "–")
            t.append(_row(layout, cells + spread(v.get(top, {}))))
    for layout in ORDER:
        if v := r1.get((size, layout)):
            t.append(_row(layout, [f"{v[b][0]:.4f}" if 0 in v.get(b, {}) else "–" for b in bs]
                          + spread(v.get(top, {}))).replace("` |", "` at r = 1 |", 1))
    base = loss[(size, "AB")]
    rows = [(layout, loss.get((size, layout))) for layout in ORDER[1:]]
    rows += [(f"{layout} at r = 1 (no-regret)", r1[(size, layout)]) for layout in ORDER if r1.get((size, layout))]
    for layout, v in rows:
        if not v:
            continue
        cells = [f"{v[b][0] - base[b][0]:+.3f}" if 0 in v.get(b, {}) and 0 in base.get(b, {}) else "–" for b in bs]
        if seeded:
            d, se, per = paired_diff(v.get(top, {}), base.get(top, {}))
            cells.append(f"{d:+.3f} ± {2 * se:.3f} ({', '.join(f'{x:+.3f}' for x in per)})" if len(per) > 1 else "–")
        g.append(_row(layout, cells))
    return "\n".join(t), "\n".join(g)


def put(text: str, name: str, body: str) -> str:
    """Replace the generated block ``name`` in ``text`` with ``body``."""
    block = f"<!-- begin:{name} (generated from results/study-long) -->\n{body}\n<!-- end:{name} -->"
    if f"<!-- begin:{name} " not in text:
        raise SystemExit(f"RESULTS.md has no block {name!r}: add <!-- begin:{name} ... --> <!-- end:{name} -->")
    return re.sub(rf"<!-- begin:{re.escape(name)} .*?<!-- end:{re.escape(name)} -->", lambda _: block, text,
                  flags=re.S)


def lr_block(runs: list[RunInfo]) -> str:
    """The learning-rate table of ``rins report`` (every scanned point, its main run marked), S and M named."""
    text, _ = lr_table([r for r in runs if r.lr_scan], [r for r in runs if not r.lr_scan])
    table = text.split("\n\n")[1]
    for name, short in SIZES.items():
        table = table.replace(f"| {name} |", f"| {short} |")
    return table


def render(results_md: str, folder: str = "results/study-long") -> tuple[str, str]:
    """``(RESULTS.md with its generated blocks rewritten from the summaries in folder, the blocks alone)``."""
    runs, _ = load_runs([Path(folder)])
    data = load(runs)
    (ts, gs), (tm, gm) = tables("S", data), tables("M", data)
    lr = lr_block(runs)
    for name, body in (("lr_table", lr), ("results_table", ts), ("gap_table", gs), ("m_tables", f"{tm}\n\n{gm}")):
        results_md = put(results_md, name, body)
    return results_md, f"{lr}\n\n{ts}\n\n{gs}\n\n{tm}\n\n{gm}"


if __name__ == "__main__":
    text = open("RESULTS.md", encoding="utf-8").read()
    new, blocks = render(text)
    if "--print" in sys.argv:
        print(blocks)
    elif "--check" in sys.argv:
        if new != text:
            sys.exit("RESULTS.md's tables are stale: run .venv/bin/python tools/results_tables.py")
    else:
        open("RESULTS.md", "w", encoding="utf-8").write(new)
