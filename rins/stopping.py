"""Stopping worker processes cleanly: a parent (``rins sweep --procs N``, ``rins demo``) forwards the stop signals
it receives to its workers, which run in their own process group.

Why their own group: a terminal's Ctrl-C goes to the whole foreground process group, so workers in the parent's
group would get it twice (from the terminal and forwarded), and a trainer takes a second SIGINT as "stop at once",
without its step-end checkpoint. In their own group they get it once, through the parent, and ``kill -INT`` or
``kill -TERM`` on the parent alone (a scheduler, a script) reaches them too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator

__all__ = ["forward_stop_signals", "own_process_group"]


@contextlib.contextmanager
def forward_stop_signals(pids: Callable[[], Iterable[int]], what: str) -> Iterator[Callable[[], bool]]:
    """While active, SIGINT and SIGTERM sent to this process are forwarded as SIGINT to the live worker processes
    ``pids()``: the first asks each to finish its step, checkpoint and stop; a second SIGINT stops them at once.
    ``what``: who is stopping, for the one line printed at the first signal. Yields ``stopped()``, true once a
    signal came. Outside the main thread (where handlers cannot be installed) nothing is forwarded."""
    hits = 0

    def forward(signum: int, frame: object) -> None:
        nonlocal hits
        if hits and signum != signal.SIGINT:  # only a second Ctrl-C means "at once"; a SIGTERM now changes nothing
            return
        hits += 1
        if hits == 1:
            print(f"[{what}] stopping: each worker checkpoints its run at the end of its step (Ctrl-C again to stop "
                  "at once)", file=sys.stderr, flush=True)
        for pid in pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)

    old = {}
    if threading.current_thread() is threading.main_thread():
        old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: hits > 0
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def own_process_group() -> None:
    """Put the calling worker process in a process group of its own (see the module's docstring); a no-op where
    the platform has no process groups."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpgid(0, 0)
