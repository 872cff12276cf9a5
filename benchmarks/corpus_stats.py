"""Bytes, documents and tokens per part of a built-in corpus, and the peak memory of preparing it.

    .venv/bin/python benchmarks/corpus_stats.py mix-large --vocab-size 8192 1024

For each vocabulary size the corpus is prepared as training does (``prepare_data``: document split,
BPE trained on the training split, token files), timed, with the peak resident memory of this process
(``ru_maxrss``); then every part is encoded with that tokenizer to count its tokens. Prints a Markdown
table (the one in docs/corpora.md) and the versions of the packages read.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections import defaultdict

from rins import data as D
from rins.corpora import load_corpus
from rins.corpora.mixes import parse_corpus_parts, part_versions


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", nargs="?", default="mix-large")
    ap.add_argument("--vocab-size", type=int, nargs="+", default=[8192])
    ap.add_argument("--cache-dir", default=".cache/rins")
    a = ap.parse_args()
    rows: dict[str, dict] = {}
    for vocab in a.vocab_size:
        t0 = time.perf_counter()
        bundle = D.prepare_data(a.corpus, a.cache_dir, vocab_size=vocab)
        prep = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"prepare_data({a.corpus!r}, vocab_size={vocab}): {prep:.0f} s (0 s when cached), "
              f"peak RSS so far {peak:.2f} GiB; {bundle.meta['n_train_tokens']:,} train + "
              f"{bundle.meta['n_val_tokens']:,} val tokens", flush=True)
        tok = D.load_tokenizer(bundle.tokenizer_path)
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for doc in load_corpus(a.corpus, a.cache_dir):
            part = doc.name.split("/")[0]
            c = counts[part]
            c[0] += 1
            c[1] += len(doc.text.encode("utf-8"))
            c[2] += sum(len(e.ids) for e in tok.encode_batch(list(D._pieces(doc.text)), add_special_tokens=False))
        for part, (n, b, t) in counts.items():
            r = rows.setdefault(part, {"docs": n, "bytes": b})
            r[vocab] = t
    head = "| part | documents | MB | " + " | ".join(f"tokens (BPE {v})" for v in a.vocab_size) + " |"
    print("\n" + head + "\n|" + "---|" * (3 + len(a.vocab_size)))
    tot = defaultdict(int)
    for part, r in rows.items():
        print(f"| {part} | {r['docs']:,} | {r['bytes'] / 1e6:.1f} | "
              + " | ".join(f"{r[v] / 1e6:.2f} M" for v in a.vocab_size) + " |")
        for k, v in r.items():
            tot[k] += v
    print(f"| **all** | {tot['docs']:,} | {tot['bytes'] / 1e6:.1f} | "
          + " | ".join(f"{tot[v] / 1e6:.2f} M" for v in a.vocab_size) + " |")
    grouped = parse_corpus_parts(a.corpus)
    if grouped:
        print("\nversions read:", part_versions(grouped[1], a.cache_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
