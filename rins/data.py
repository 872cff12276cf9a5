"""Text data layer: document-level splits, a byte-level BPE tokenizer and token files.

The pipeline is :func:`rins.corpora.load_corpus` -> ``split_documents`` -> ``train_tokenizer`` -> token files,
wrapped by ``prepare_data``, which caches everything under ``cache_dir``; training reads the token files through
``TokenDataset``. The corpus specs (``shakespeare``, ``mix``, ``mix-large``, local paths, ``hf:...``) are
described in :mod:`rins.corpora`.

Token files are flat ``np.uint16`` arrays: the tokens of every document of a split, each followed by the
end-of-document token ``<|endoftext|>`` (id 0).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from .corpora import Document, corpus_identity, load_corpus
from .corpora.cache import exclusive
from .corpora.files import content_sha256
from .fields import default_cache_dir
from .runfiles import clean_stale_temps

__all__ = [
    "EOD_TOKEN",
    "DataBundle",
    "Document",
    "TokenDataset",
    "bytes_per_token",
    "data_identity",
    "identity_change",
    "load_bundle",
    "load_corpus",
    "load_tokenizer",
    "prepare_data",
    "split_documents",
    "train_tokenizer",
]

EOD_TOKEN = "<|endoftext|>"
SPECIAL_TOKENS = [EOD_TOKEN]
MIN_VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)
MAX_VOCAB_SIZE = 65535  # token files are uint16
FORMAT_VERSION = 1
# BPE training reads at most this much text: a deterministic sample of document chunks (by hash), so that
# memory stays bounded and every part of a large corpus is represented (not only the first documents)
TOKENIZER_TRAIN_MAX_BYTES = 48_000_000
ENCODE_CHUNK_CHARS = 1 << 18  # documents are encoded in pieces of at most this many characters


# ----------------------------------------------------------------------------------------------------------
# splitting
# ----------------------------------------------------------------------------------------------------------


def _unit_hash(name: str, seed: int) -> float:
    h = hashlib.sha256(f"{seed}\x00{name}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def _split_text_near(text: str, position: int) -> int:
    """Index of the paragraph boundary (else line break, else space) nearest to ``position``.

    A boundary is the end of a run of the separator with text (not only whitespace) on both sides; ties go
    to the earlier one. One pass over the matches with O(1) memory and no copies of ``text``, so a single
    huge document splits in linear time.
    """
    n = len(text)
    # text[:c] holds non-whitespace iff c > first; text[c:] iff c <= last
    first = next((i for i, ch in enumerate(text) if not ch.isspace()), n)
    last = next((i for i in range(n - 1, -1, -1) if not text[i].isspace()), -1)
    for sep in ("\n\n", "\n", " "):
        best = -1
        for m in re.finditer(re.escape(sep) + "+", text):
            c = m.end()
            if c > last:
                break
            if not (0 < c < n and first < c):
                continue
            if best < 0 or abs(c - position) < abs(best - position):
                best = c
            elif c > position:
                break  # the matches only move away from position from here on
        if best >= 0:
            return best
    return min(max(position, 1), n - 1)


def split_documents(docs: Sequence[Document], val_fraction: float = 0.1, seed: int = 0
                    ) -> tuple[list[Document], list[Document]]:
    """Split a corpus into (train, val) BY DOCUMENT, deterministically.

    A document goes to validation when ``sha256(seed, name)`` mapped to [0, 1) is below ``val_fraction``,
    so the split does not depend on the order of ``docs`` and never cuts a document's tokens. With two or
    more documents each side gets at least one (the lowest-hash document moves to val, or the highest to
    train). A single-document corpus is the exception: its text is cut at the paragraph boundary
    (blank line; else line break; else space) nearest to ``(1 - val_fraction)`` of its length, giving
    ``NAME#train`` and ``NAME#val``. Input order is kept within each side.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    docs = list(docs)
    if not docs:
        raise ValueError("corpus is empty: no documents to split")
    if len(docs) == 1:
        d = docs[0]
        if len(d.text) < 2:
            raise ValueError(f"corpus is too small to split: document {d.name!r} has {len(d.text)} chars")
        cut = _split_text_near(d.text, round(len(d.text) * (1.0 - val_fraction)))
        return [Document(f"{d.name}#train", d.text[:cut])], [Document(f"{d.name}#val", d.text[cut:])]
    names = [d.name for d in docs]
    if len(set(names)) != len(names):
        raise ValueError("document names must be unique for a deterministic split")
    u = {d.name: _unit_hash(d.name, seed) for d in docs}
    val_names = {n for n in names if u[n] < val_fraction}
    if not val_names:
        val_names = {min(names, key=u.__getitem__)}
    if len(val_names) == len(names):
        val_names.discard(max(names, key=u.__getitem__))
    train = [d for d in docs if d.name not in val_names]
    val = [d for d in docs if d.name in val_names]
    return train, val


# ----------------------------------------------------------------------------------------------------------
# tokenizer
# ----------------------------------------------------------------------------------------------------------


def _check_vocab_size(vocab_size: int) -> None:
    if vocab_size > MAX_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size={vocab_size} exceeds {MAX_VOCAB_SIZE}, the largest that uint16 token files hold; "
            f"use vocab_size <= {MAX_VOCAB_SIZE}"
        )
    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: a byte-level BPE needs 256 byte tokens + "
            f"{len(SPECIAL_TOKENS)} special token(s); use vocab_size >= {MIN_VOCAB_SIZE}"
        )


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8192, path: str | Path | None = None
                    ) -> Tokenizer:
    """Train a byte-level BPE tokenizer (HF ``tokenizers``; GPT-2 pre-tokenization, lossless decoding).

    Id 0 is ``<|endoftext|>``; ids 1..256 are the bytes. A tiny corpus may yield fewer than
    ``vocab_size`` tokens (check ``get_vocab_size()``). Saves the tokenizer JSON to ``path`` if given.
    """
    _check_vocab_size(vocab_size)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tok.save(str(path))
    return tok


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Load a tokenizer saved by :func:`train_tokenizer` (or :func:`prepare_data`)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"tokenizer file {str(path)!r} does not exist; run prepare_data first")
    from .runfiles import read_tokenizer

    return read_tokenizer(path)


# ----------------------------------------------------------------------------------------------------------
# prepared data
# ----------------------------------------------------------------------------------------------------------


@dataclass
class DataBundle:
    """A prepared dataset folder: tokenizer, train/val token files (uint16) and ``meta.json``."""

    dir: Path
    tokenizer_path: Path
    train_path: Path
    val_path: Path
    vocab_size: int
    meta: dict = field(default_factory=dict)


def load_bundle(directory: str | Path) -> DataBundle:
    """Open a folder written by :func:`prepare_data`."""
    d = Path(directory)
    meta_path = d / "meta.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{d} is not a prepared data folder (no meta.json); run prepare_data")
    from .runfiles import RunFileError, read_json_object

    fix = f"delete {d} so that prepare_data rebuilds it"
    meta = read_json_object(meta_path, fix)
    vocab = meta.get("vocab_size")
    if isinstance(vocab, bool) or not isinstance(vocab, int) or not 0 < vocab <= MAX_VOCAB_SIZE:
        raise RunFileError(f"{meta_path}: vocab_size={vocab!r} is not a vocabulary size; {fix}")
    return DataBundle(d, d / "tokenizer.json", d / "train.bin", d / "val.bin", vocab, meta)


def bytes_per_token(bundle: DataBundle) -> float:
    """UTF-8 bytes per token of the validation split (end-of-document tokens counted as tokens).

    Convert a mean validation loss in nats/token to bits per byte with
    ``loss / math.log(2) / bytes_per_token(bundle)``.
    """
    return bundle.meta["val_bytes"] / max(1, bundle.meta["n_val_tokens"])


def _cache_key(corpus: str, vocab_size: int, val_fraction: float, seed: int,
               tokenizer: str | Path | None = None, cache_dir: Path = Path(".cache/rins")) -> tuple[str, dict]:
    ident: dict = {"corpus": corpus, "vocab_size": vocab_size, "val_fraction": val_fraction, "seed": seed,
                   "format": FORMAT_VERSION}
    if tokenizer is not None:
        ident["tokenizer_sha256"] = content_sha256(Path(tokenizer))
    ident.update(corpus_identity(corpus, cache_dir))  # package versions and local content drift: in the key
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:16]
    return digest, ident


def _safe_cuts(text: str, max_chars: int) -> list[int]:
    """Cut points that split ``text`` into pieces of at most ~``max_chars`` without changing its tokens.

    Byte-level BPE with GPT-2 pre-tokenization never merges across these boundaries: a cut just after a
    single ``\\n`` that sits between two non-space characters, else just before a space that sits between
    two letters (both places start a new pre-token whether or not the text is cut there). Only a piece
    with neither (e.g. one huge run of symbols) is cut hard.
    """
    cuts, start, n = [], 0, len(text)
    while n - start > max_chars:
        lo, hi = start + max_chars // 2, start + max_chars
        cut = -1
        i = text.rfind("\n", lo, hi)
        while i > lo:
            if i + 1 < n and not text[i - 1].isspace() and not text[i + 1].isspace():
                cut = i + 1
                break
            i = text.rfind("\n", lo, i)
        if cut < 0:
            i = text.rfind(" ", lo, hi)
            while i > lo:
                if i + 1 < n and text[i - 1].isalpha() and text[i + 1].isalpha():
                    cut = i
                    break
                i = text.rfind(" ", lo, i)
        if cut < 0:
            cut = hi
        cuts.append(cut)
        start = cut
    return cuts


def _pieces(text: str, max_chars: int = ENCODE_CHUNK_CHARS) -> Iterator[str]:
    """``text`` in token-preserving pieces of at most ~``max_chars`` (see :func:`_safe_cuts`)."""
    start = 0
    for cut in _safe_cuts(text, max_chars):
        yield text[start:cut]
        start = cut
    yield text[start:]


def _write_tokens(tok: Tokenizer, docs: Sequence[Document], out_path: Path, eod_id: int,
                  batch_chars: int = 4_000_000) -> int:
    """Encode ``docs`` and stream uint16 tokens (each doc + EOD) to ``out_path``.

    Documents are encoded in token-preserving pieces (:func:`_pieces`), a batch of pieces of at most
    ``batch_chars`` characters at a time, so memory stays bounded whatever the size of one document.
    """
    n = 0
    eod = np.array([eod_id], dtype=np.uint16).tobytes()

    def flush(batch: list[tuple[str, bool]], f) -> int:
        count = 0
        for (_, last), enc in zip(batch, tok.encode_batch([t for t, _ in batch], add_special_tokens=False)):
            f.write(np.asarray(enc.ids, dtype=np.uint16).tobytes())
            count += len(enc.ids)
            if last:
                f.write(eod)
                count += 1
        return count

    with open(out_path, "wb") as f:
        batch: list[tuple[str, bool]] = []
        size = 0
        for d in docs:
            # streamed with one piece of look-ahead (to mark the last), never a list of the whole document
            it = _pieces(d.text)
            piece = next(it)
            while piece is not None:
                following = next(it, None)
                if batch and size + len(piece) > batch_chars:
                    n += flush(batch, f)
                    batch, size = [], 0
                batch.append((piece, following is None))
                size += len(piece)
                piece = following
        if batch:
            n += flush(batch, f)
    return n


def _tokenizer_texts(docs: Sequence[Document], max_bytes: int, seed: int = 0) -> Iterator[str]:
    """The BPE training set: every document piece when they fit in ``max_bytes``, else a sample of pieces
    chosen by hash (deterministic in ``seed``), so that a large corpus is represented evenly."""
    # pieces cover their document exactly, so the total is known without copying the corpus into pieces
    total = sum(len(d.text) for d in docs)
    keep = max_bytes / total if total > max_bytes else None
    for d in docs:
        for k, p in enumerate(_pieces(d.text, 1 << 16)):
            if keep is None or _unit_hash(f"{d.name}#{k}", seed) < keep:
                yield p


def _bundle_tokenizer(train_docs: Sequence[Document], vocab_size: int, seed: int, tokenizer: str | Path | None,
                      out: Path) -> tuple[Tokenizer, int]:
    """The bundle's tokenizer, written to ``out``, and its end-of-document id: trained on the training split,
    or the given ``tokenizer.json`` copied as it is."""
    if tokenizer is None:
        tok = train_tokenizer(_tokenizer_texts(train_docs, TOKENIZER_TRAIN_MAX_BYTES, seed), vocab_size, out)
        return tok, tok.token_to_id(EOD_TOKEN)
    tok = load_tokenizer(tokenizer)
    if tok.get_vocab_size() > 65535:
        raise ValueError(f"tokenizer {tokenizer} has {tok.get_vocab_size()} tokens; token files are uint16 "
                         "(at most 65535): use a smaller vocabulary")
    shutil.copyfile(tokenizer, out)
    eod_id = next((i for t in (EOD_TOKEN, "</s>", "<eos>", "<|end_of_text|>")
                   if (i := tok.token_to_id(t)) is not None), None)
    if eod_id is None:
        raise ValueError(f"tokenizer {tokenizer} has no end-of-document token ({EOD_TOKEN}, </s>, <eos>); "
                         "add one to it")
    return tok, eod_id


def _split_stats(n_docs: int, train_docs: Sequence[Document], val_docs: Sequence[Document], n_train: int,
                 n_val: int) -> dict[str, Any]:
    """The documents, tokens and bytes of both splits, as ``meta.json`` records them."""
    train_bytes = sum(len(d.text.encode("utf-8")) for d in train_docs)
    val_bytes = sum(len(d.text.encode("utf-8")) for d in val_docs)
    return {
        "n_docs": n_docs,
        "n_train_docs": len(train_docs),
        "n_val_docs": len(val_docs),
        "n_train_tokens": n_train,
        "n_val_tokens": n_val,
        "train_bytes": train_bytes,
        "val_bytes": val_bytes,
        "bytes_per_token_train": train_bytes / max(1, n_train),
        "bytes_per_token_val": val_bytes / max(1, n_val),
        "train_docs": [d.name for d in train_docs],
        "val_docs": [d.name for d in val_docs],
    }


def data_identity(corpus: str = "shakespeare", cache_dir: str | Path | None = None, vocab_size: int = 8192,
                  val_fraction: float = 0.1, seed: int = 0, tokenizer: str | Path | None = None) -> dict[str, Any]:
    """What :func:`prepare_data` with these arguments would record as the corpus's identity (its cache key:
    the settings, and the source versions read or the local file's SHA-256), without tokenising anything;
    a built-in corpus's sources are fetched into the cache when missing."""
    cache_dir = Path(default_cache_dir() if cache_dir is None else cache_dir)
    return _cache_key(corpus, vocab_size, val_fraction, seed, tokenizer, cache_dir)[1]


def identity_change(started: dict[str, Any] | None, here: dict[str, Any] | None,
                    cache_dir: str | Path | None = None, corpus_dir: str | Path | None = None,
                    then: str = "before") -> str:
    """In words, what differs between a data identity (:func:`data_identity`) recorded earlier (``then``: at a
    run's start, in a summary) and the one here; empty when nothing differs or the earlier one is unknown.

    Where a Debian package's version differs it adds the fix, naming the data cache ``cache_dir`` and the
    prepared corpus ``corpus_dir`` (a folder of ``cache_dir/data``): ``apt-get download`` takes the newest
    version the machine's package lists know and the cache keeps the first version read, so a machine whose
    lists are older (or newer) reads another one."""
    if not started or not here:
        return ""
    diffs, debs = [], []
    for key in sorted(set(started) | set(here)):
        a, b = started.get(key), here.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):  # "source": {part: version read}
            for part in sorted(set(a) | set(b)):
                va, vb = a.get(part), b.get(part)
                if va != vb:
                    diffs.append(f"{part}: {va} {then}, {vb} here")
                    debs += [v.split("_")[0] for v in (va, vb) if isinstance(v, str) and v.endswith(".deb")]
        else:
            diffs.append(f"{key}: {a} {then}, {b} here")
    if not diffs:
        return ""
    text = "; ".join(diffs)
    if debs:
        cache = Path(cache_dir or "CACHE_DIR")
        folders = ", ".join(str(cache / "corpora" / "debian" / d) for d in dict.fromkeys(debs))
        corpus = corpus_dir or f"the prepared corpus (in {cache / 'data'})"
        text += (f". apt downloads the newest version its package lists know and the cache keeps the first one "
                 f"read: to read the earlier versions, update the lists (`apt-get update`), delete {folders} and "
                 f"{corpus}, then run again (a mirror may no longer serve an old version)")
    return text


def prepare_data(corpus: str = "shakespeare", cache_dir: str | Path | None = None, vocab_size: int = 8192,
                 val_fraction: float = 0.1, seed: int = 0, tokenizer: str | Path | None = None) -> DataBundle:
    """Load, split, tokenize and cache a corpus; return the :class:`DataBundle`.

    The result lives in ``cache_dir/data/<hash>`` where the hash covers (corpus spec, vocab_size,
    val_fraction, seed, format version, and for local paths a SHA-256 of their content), so a second call
    with the same arguments returns at once. The folder is built under a temporary name and moved into
    place with ``os.replace``: an interrupted run never leaves a partial cache. The tokenizer is trained
    on the training split only — unless ``tokenizer`` names an existing ``tokenizer.json`` (e.g. of a
    converted Hugging Face model), which is then used as it is (``vocab_size`` is ignored). Documents are
    encoded in batches and streamed to disk.
    """
    if tokenizer is None:
        _check_vocab_size(vocab_size)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    cache_dir = Path(default_cache_dir() if cache_dir is None else cache_dir)
    digest, ident = _cache_key(corpus, vocab_size, val_fraction, seed, tokenizer, cache_dir)
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(corpus).name if not corpus.startswith("hf:") else corpus)[:40]
    final = cache_dir / "data" / f"{slug}-{digest}"
    if (final / "meta.json").exists():
        return load_bundle(final)
    # two sweep workers starting on a fresh machine would both tokenise the corpus (minutes): one does, the
    # other waits for it and reads its cache
    with exclusive(cache_dir / ".locks" / f"data-{final.name}.lock"):  # apart: data/ holds only the caches
        if (final / "meta.json").exists():
            return load_bundle(final)
        return _prepare(corpus, cache_dir, vocab_size, val_fraction, seed, tokenizer, final, digest, ident)


def _prepare(corpus: str, cache_dir: Path, vocab_size: int, val_fraction: float, seed: int,
             tokenizer: str | Path | None, final: Path, digest: str, ident: Any) -> DataBundle:
    """Build the cache folder ``final`` of :func:`prepare_data` (under a temporary name, moved into place)."""
    t0 = time.perf_counter()
    docs = load_corpus(corpus, cache_dir)
    train_docs, val_docs = split_documents(docs, val_fraction=val_fraction, seed=seed)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(final.parent)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".tmp-{os.getpid()}-{digest}-"))
    try:
        tok, eod_id = _bundle_tokenizer(train_docs, vocab_size, seed, tokenizer, tmp / "tokenizer.json")
        n_train = _write_tokens(tok, train_docs, tmp / "train.bin", eod_id)
        n_val = _write_tokens(tok, val_docs, tmp / "val.bin", eod_id)
        meta = {
            "corpus": corpus,
            "cache_key": ident,
            "vocab_size": tok.get_vocab_size(),
            "requested_vocab_size": vocab_size,
            "eod_id": eod_id,
            "eod_token": EOD_TOKEN,
            "dtype": "uint16",
            "val_fraction": val_fraction,
            "seed": seed,
            **_split_stats(len(docs), train_docs, val_docs, n_train, n_val),
            "prepare_seconds": round(time.perf_counter() - t0, 3),
            "format": FORMAT_VERSION,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.replace(tmp, final)
        except OSError:
            if not (final / "meta.json").exists():  # not a concurrent winner: a real failure
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return load_bundle(final)


# ----------------------------------------------------------------------------------------------------------
# datasets of tokens
# ----------------------------------------------------------------------------------------------------------


class TokenDataset:
    """Random or sequential (x, y) windows over a uint16 token file, read through ``np.memmap``."""

    def __init__(self, path: str | Path, seq_len: int):
        """Open ``path`` (a ``.bin`` written by :func:`prepare_data`) for windows of ``seq_len`` tokens."""
        self.path = Path(path)
        if seq_len < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        if not self.path.exists():
            raise FileNotFoundError(f"token file {str(self.path)!r} does not exist; run prepare_data first")
        self.seq_len = int(seq_len)
        n = self.path.stat().st_size // 2
        if n < self.seq_len + 1:
            raise ValueError(
                f"{self.path.name} holds {n} tokens, fewer than seq_len + 1 = {self.seq_len + 1} needed for "
                "one (x, y) window; use a smaller seq_len or a larger corpus (or a larger val_fraction)"
            )
        self.data = np.memmap(self.path, dtype=np.uint16, mode="r", shape=(n,))

    def __len__(self) -> int:
        """Number of tokens in the file."""
        return int(self.data.shape[0])

    def _windows(self, starts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        idx = starts[:, None] + np.arange(self.seq_len + 1)[None, :]
        chunk = torch.from_numpy(self.data[idx].astype(np.int64))
        return chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous()

    def get_batch(self, step: int, batch_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """The global batch of a training step: random windows, int64 ``(x, y)`` of shape
        ``(batch_size, seq_len)``, ``y`` being ``x`` shifted left by one token.

        Window starts come from ``np.random.default_rng([seed, step, 0])``, so the batch depends only on
        (seed, step): a resumed run replays it, and data-parallel ranks each take a contiguous slice of it
        (:meth:`rins.tasks.lm.LMTask.train_batch`), so every world size and ``grad_accum`` trains on the
        same examples.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if step < 0 or seed < 0:
            raise ValueError(f"step and seed must be >= 0, got step={step}, seed={seed}")
        # the trailing 0 was a rank (each rank once drew its own windows); kept so that batches stay the same
        rng = np.random.default_rng([seed, step, 0])
        starts = rng.integers(0, len(self) - self.seq_len, size=batch_size)
        return self._windows(starts)

    def n_eval_windows(self) -> int:
        """Number of non-overlapping windows that :meth:`iter_eval_batches` covers."""
        return (len(self) - 1) // self.seq_len

    def iter_eval_batches(self, batch_size: int, max_batches: int | None = None, drop_last: bool = False
                          ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Fixed windows for held-out loss: window k starts at ``k * seq_len`` (targets never overlap),
        ``batch_size`` per batch; at most ``max_batches``. The last batch may be smaller unless ``drop_last``.

        Without a limit (or when the limit covers every window) the windows run in order from the start of
        the split. With a limit that covers only part of it, the windows are spread evenly over the whole
        split (always the same ones), so that a few batches sample every document type of a mixed corpus
        rather than its first documents.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n = self.n_eval_windows()
        idx = np.arange(n, dtype=np.int64)
        if max_batches is not None and max_batches * batch_size < n:
            idx = np.unique(np.linspace(0, n - 1, max_batches * batch_size).round().astype(np.int64))
        starts = idx * self.seq_len
        n_batches = 0
        for i in range(0, len(starts), batch_size):
            if max_batches is not None and n_batches >= max_batches:
                return
            s = starts[i : i + batch_size]
            if drop_last and len(s) < batch_size:
                return
            yield self._windows(s)
            n_batches += 1


def _describe(bundle: DataBundle) -> str:  # pragma: no cover - convenience for the command line
    m = bundle.meta
    return (f"{m['corpus']}: {m['n_train_tokens']:,} train / {m['n_val_tokens']:,} val tokens, vocab "
            f"{bundle.vocab_size}, {bytes_per_token(bundle):.3f} bytes/token, {bundle.dir}")


if __name__ == "__main__":  # pragma: no cover
    _b = prepare_data(sys.argv[1] if len(sys.argv) > 1 else "shakespeare")
    print(_describe(_b))
