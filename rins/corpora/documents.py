"""The unit every corpus source produces, :class:`Document`, and the decoders they share.

Local files are the user's text: :func:`decode_utf8` keeps them UTF-8 and warns once about bytes it had to
replace. Fetched packages are trusted data of mixed age: :func:`decode_lenient` reads UTF-8, else latin-1.
"""

from __future__ import annotations

import codecs
import threading
import warnings
from dataclasses import dataclass

__all__ = ["CorpusUnavailableError", "Document", "decode_lenient", "decode_utf8", "normalize_newlines"]


@dataclass
class Document:
    """One document of a corpus: a unique ``name`` and its ``text``."""

    name: str
    text: str


class CorpusUnavailableError(RuntimeError):
    """A corpus part could not be fetched (no network client, no package lists, ...)."""


_tls = threading.local()


def _count_replace(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    _tls.replaced = getattr(_tls, "replaced", 0) + (exc.end - exc.start)
    return "\ufffd", exc.end


codecs.register_error("rins.count_replace", _count_replace)


def decode_utf8(raw: bytes, source: str) -> str:
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
    return normalize_newlines(text.removeprefix("\ufeff"))


def normalize_newlines(text: str) -> str:
    """``\\r\\n`` and lone ``\\r`` as ``\\n``."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def decode_lenient(raw: bytes) -> str:
    """Decode fetched (trusted) data: UTF-8 if valid, else latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
