"""Local corpora: a ``.txt``/``.md`` file (one document), a folder (every ``*.txt``/``*.md`` below it, sorted,
one document each) or a ``.jsonl`` file (one document per line: field ``"text"``, optional ``"id"`` or
``"name"``), decoded as UTF-8 (:func:`~rins.corpora.documents.decode_utf8`); and the content hash that names
them in the prepared-data cache key.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .documents import Document, decode_utf8

__all__ = ["LOCAL_SUFFIXES", "content_sha256", "load_local"]

LOCAL_SUFFIXES = (".txt", ".md")


def load_local(path: Path) -> list[Document]:
    """The documents of an existing local file or folder (see the module docstring)."""
    if path.is_dir():
        files = sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in LOCAL_SUFFIXES
        )
        return [
            Document(p.relative_to(path).as_posix(), decode_utf8(p.read_bytes(), str(p))) for p in files
        ]
    if not path.is_file():  # a FIFO or a device (/dev/zero) would be read forever
        raise ValueError(f"corpus path {str(path)!r} is not a regular file or folder; pass a .txt/.md/.jsonl file "
                         "or a folder of them")
    if path.suffix.lower() == ".jsonl":
        return _load_jsonl(path)
    return [Document(path.name, decode_utf8(path.read_bytes(), str(path)))]


def _load_jsonl(path: Path) -> list[Document]:
    docs: list[Document] = []
    raw = path.read_bytes()
    text = decode_utf8(raw, str(path))
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


def content_sha256(path: Path) -> str:
    """SHA-256 over a file's bytes, or over a folder's files (relative names and bytes, sorted)."""
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

