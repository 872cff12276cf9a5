"""Building a cached folder once among processes that start together (sweep workers on a fresh machine).

Downloads (:mod:`rins.corpora.packages`) and prepared data (:func:`rins.data.prepare_data`) both build under a
temporary ``.tmp-PID-...`` name, move the result into place, and hold :func:`exclusive` while they do, so one
process builds and the others wait and reuse it; :func:`rins.runfiles.clean_stale_temps` (the one cleaner of the
package, re-exported here) removes what killed builders left.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from ..runfiles import clean_stale_temps

__all__ = ["clean_stale_temps", "exclusive"]


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path``, waiting for it: processes (or threads) that start together
    build a cached thing once, the others wait and reuse it. Released when the holder exits, even if killed."""
    import fcntl  # POSIX only, like apt-get itself

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
