"""Checked readers for the files of a run directory and a prepared data folder (issue #28).

``config.json``, ``tokenizer.json``, checkpoint ``meta.json``, ``LATEST``, ``special_tokens_map.json`` and a
data folder's ``meta.json`` are read through :func:`read_json_object`, :func:`read_text_file` and
:func:`read_tokenizer`, which raise one :class:`RunFileError` (a ``ValueError``) that names the file, what is
wrong with it and how to fix it, instead of a bare ``JSONDecodeError`` or the tokenizers library's
``Exception: expected value at line 1 column 1``. Standard library only (the tokenizers import is lazy).
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

__all__ = ["RunFileError", "ensure_dir", "path_error", "read_json_object", "read_text_file",
           "read_tokenizer"]

MAX_JSON_BYTES = 256 << 20  # a run's JSON files are small; a huge one is not ours (and would be read whole)


class RunFileError(ValueError):
    """A file of a run directory or data folder that is missing, unreadable or corrupt; the message names the
    file and the fix."""


def _fail(path: Path, problem: str, fix: str) -> RunFileError:
    return RunFileError(f"{path}: {problem}; {fix}")


def read_text_file(path: str | Path, fix: str, max_bytes: int = MAX_JSON_BYTES) -> str:
    """The UTF-8 text of ``path``; :class:`RunFileError` naming the file and ``fix`` when it is missing, not a
    regular file, larger than ``max_bytes``, unreadable or not UTF-8."""
    path = Path(path)
    if not path.exists():
        raise _fail(path, "does not exist", fix)
    if not path.is_file():
        raise _fail(path, "is not a regular file", fix)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise _fail(path, f"is {size:,} bytes, more than the {max_bytes:,} such a file can be", fix)
        raw = path.read_bytes()
    except OSError as e:
        raise _fail(path, f"cannot be read ({e.strerror or e})", fix) from e
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _fail(path, f"is not UTF-8 text (byte {e.start})", fix) from e


def read_json_object(path: str | Path, fix: str) -> dict[str, Any]:
    """The JSON object in ``path``; :class:`RunFileError` naming the file, the problem (with the line and column
    of a syntax error) and ``fix`` otherwise."""
    path = Path(path)
    text = read_text_file(path, fix)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise _fail(path, f"is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})", fix) from e
    except RecursionError as e:
        raise _fail(path, "is not valid JSON (nested too deeply)", fix) from e
    if not isinstance(obj, dict):
        raise _fail(path, f"holds a JSON {type(obj).__name__}, not an object", fix)
    return obj


def read_tokenizer(path: str | Path, fix: str = "restore it from the data folder it was trained with "
                   "(.cache/rins/data/*/tokenizer.json) or retrain the run"):
    """A ``tokenizers.Tokenizer`` from a ``tokenizer.json``; :class:`RunFileError` naming the file and ``fix``
    when it is missing or is not a tokenizer the library can read."""
    from tokenizers import Tokenizer

    path = Path(path)
    text = read_text_file(path, fix)
    try:
        return Tokenizer.from_str(text)
    except Exception as e:  # the library raises a bare Exception on any parse error
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise _fail(path, f"is not a valid tokenizer file ({msg})", fix) from e


NAME_MAX = 255  # bytes of one folder or file name on Linux/macOS file systems
_WHY = {errno.EEXIST: "exists and is not a folder", errno.ENOTDIR: "has a part that is a file, not a folder",
        errno.EACCES: "is not writable (permission denied)", errno.EPERM: "is not writable (operation not permitted)",
        errno.EROFS: "is on a read-only file system", errno.ENOSPC: "is on a full disk",
        errno.ENAMETOOLONG: f"has a name longer than the file system allows ({NAME_MAX} bytes per name)",
        errno.ENOENT: "cannot be created there (a parent is missing or not a real folder)"}


def path_error(e: OSError, what: str, fix: str = "pass another --out-dir / --name") -> RunFileError:
    """An ``OSError`` about a path as one sentence: which path, why in words (not only the errno), the fix."""
    why = _WHY.get(e.errno or -1, e.strerror or str(e))
    return RunFileError(f"{what} {e.filename or '?'} {why}; {fix}")


def ensure_dir(path: str | Path, what: str, fix: str = "pass another --out-dir / --name") -> Path:
    """``path`` created as a folder (with its parents) unless it is one; :class:`RunFileError` naming the path, why
    it cannot be (a file there, no permission, a name too long ...) and the fix."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunFileError(f"{what} {path} exists and is not a folder; {fix}, or move it away")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        if e.filename is None:
            e.filename = str(path)
        raise path_error(e, what, fix) from e
    return path
