"""Checked readers for the files of a run directory and a prepared data folder (issue #28).

``config.json``, ``tokenizer.json``, checkpoint ``meta.json``, ``LATEST``, ``special_tokens_map.json`` and a
data folder's ``meta.json`` are read through :func:`read_json_object`, :func:`read_text_file` and
:func:`read_tokenizer`, which raise one :class:`RunFileError` (a ``ValueError``) that names the file, what is
wrong with it and how to fix it, instead of a bare ``JSONDecodeError`` or the tokenizers library's
``Exception: expected value at line 1 column 1``. Standard library only (the tokenizers import is lazy).

It also holds the one way files are written safely (:func:`atomic_write_text`, :func:`atomic_write_json`: a
temporary ``.NAME.tmp-PID`` sibling, flushed and fsynced, then ``os.replace``) and the one cleaner of what killed
writers leave behind (:func:`clean_stale_temps`), used by run directories, checkpoints and the data cache alike.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

__all__ = ["RunFileError", "atomic_write_json", "atomic_write_text", "clean_stale_temps", "ensure_dir", "path_error",
           "read_json_object", "read_text_file", "read_tokenizer", "temp_path"]

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


# -- writing safely ----------------------------------------------------------------------------------------------

# what a writer's temporary file or folder is called: `.NAME.tmp-PID` (atomic writes, checkpoint folders) or
# `.tmp-PID-...` (tempfile.mkdtemp with a PID prefix: the data cache's downloads and tokenisations)
_TMP_RE = re.compile(r"^\.(?:.+\.)?tmp-(\d+)(?:-.*)?$")


def temp_path(final: str | Path) -> Path:
    """Where a writer of ``final`` puts its work until it is complete: a hidden sibling named after the file and
    this process (``.NAME.tmp-PID``), which :func:`clean_stale_temps` removes once the process is gone."""
    final = Path(final)
    return final.with_name(f".{final.name}.tmp-{os.getpid()}")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader (or a crash) sees the old file or the new one, never a part: a
    temporary sibling, flushed and fsynced, then ``os.replace`` (atomic on POSIX). Creates missing parents."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_json(path: str | Path, obj: Any, default: Any = None) -> None:
    """Write ``obj`` as indented JSON (one trailing newline) to ``path`` with :func:`atomic_write_text`."""
    atomic_write_text(path, json.dumps(obj, indent=1, default=default) + "\n")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def clean_stale_temps(folder: str | Path, keep_own: bool = True) -> list[Path]:
    """Remove the temporary files and folders (``.NAME.tmp-PID``, ``.tmp-PID-...``) that writers which were killed
    left in ``folder`` (their PID is gone); returns what was removed. Those of live processes are left alone, and
    this process's own unless ``keep_own=False`` (a caller that knows none of its threads is writing there now,
    e.g. a trainer resuming in the process whose earlier attempt failed mid-write)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.iterdir():
        m = _TMP_RE.match(p.name)
        pid = int(m.group(1)) if m else None
        if pid is None or (pid == os.getpid() and keep_own) or (pid != os.getpid() and _pid_alive(pid)):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed
