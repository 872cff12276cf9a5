"""RESULTS.md's generated blocks: the text between ``<!-- begin:NAME ... -->`` and ``<!-- end:NAME -->``, read by
the staleness tests and rewritten by the tools that generate it (the begin line, with its note, is kept)."""

from __future__ import annotations

import re


def _pattern(name: str) -> re.Pattern[str]:
    # the name ends at a space or the marker's end, so that block "a" does not match "a_M"'s begin line
    return re.compile(rf"(<!-- begin:{re.escape(name)}(?:\s[^>]*)?-->\n)(.*?)(<!-- end:{re.escape(name)} -->)", re.S)


def read_block(text: str, name: str) -> str | None:
    """The content of block ``name`` in ``text`` (after the begin line, up to the end marker), None without one."""
    m = _pattern(name).search(text)
    return m.group(2) if m else None


def write_block(text: str, name: str, content: str) -> str:
    """``text`` with the content of block ``name`` replaced by ``content``; SystemExit naming the block without it."""
    if read_block(text, name) is None:
        raise SystemExit(f"RESULTS.md has no {name} block: add <!-- begin:{name} --> and <!-- end:{name} --> first")
    return _pattern(name).sub(lambda m: m.group(1) + content + m.group(3), text, count=1)
