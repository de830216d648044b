"""identify_many: identify_path over many targets in worker processes, results in input order.

identify_path is CPU-bound Python (header JSON decoding and classification), so threads add nothing under the GIL;
processes do. Small inputs run inline: starting a pool costs more than it saves.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import BaseContext
from pathlib import Path

from modeldex.identify.identify import identify_path
from modeldex.identify.records import Identification

INLINE_BELOW = 64
"""Fewer targets than this are identified in this process: a pool's start-up would outweigh the gain."""
MAX_CHUNK = 64
"""Targets sent to a worker at once, at most: enough to make the IPC cost per file negligible (a file takes
about 1 ms), few enough that results keep flowing and the workers finish together."""


def identify_many(
    targets: Iterable[tuple[Path, str]], *, jobs: int, start_method: str | None = None
) -> Iterator[Identification]:
    """identify_path(path, display) for every target, yielded in input order; never raises for a bad file.

    With `jobs` <= 1, or fewer than INLINE_BELOW targets, everything runs in this process. Otherwise `jobs`
    worker processes share the work; if the pool breaks (a worker killed or crashed), the targets whose results
    had not come back are identified in this process, so no result is lost. `start_method` forces a
    multiprocessing start method (default: see `_context`).
    """
    items = list(targets)
    if jobs <= 1 or len(items) < INLINE_BELOW:
        for path, display in items:
            yield identify_path(path, display)
        return
    workers = min(jobs, len(items))
    chunk = max(1, min(MAX_CHUNK, len(items) // (workers * 4)))
    # Plain strings cross the process boundary: a str pickles smaller and faster than a Path.
    payload = [(os.fspath(path), display) for path, display in items]
    done = 0
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_context(start_method), initializer=_ignore_sigint)
    try:
        for ident in pool.map(_identify_one, payload, chunksize=chunk):
            yield ident
            done += 1
    except BrokenProcessPool:
        # The results already yielded stand; the rest are done here. The target that broke the pool is retried
        # too: a worker can die for reasons outside the file (killed for memory), and every target gets a result.
        for path, display in items[done:]:
            yield identify_path(path, display)
    finally:
        # Reached early when the caller stops iterating (a closed pipe, Ctrl-C): drop the work not yet started.
        pool.shutdown(wait=True, cancel_futures=True)


def _identify_one(target: tuple[str, str]) -> Identification:
    return identify_path(Path(target[0]), target[1])


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group: the parent handles it and shuts the pool down, and workers
    # printing their own KeyboardInterrupt tracebacks would only bury its message.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _context(start_method: str | None) -> BaseContext:
    """fork while this process has a single thread, else forkserver (or spawn where there is no forkserver).

    fork is the cheapest start (no re-import, workers inherit the loaded classifier) and is safe when no other
    thread can hold a lock at the moment of the fork, as in the `modeldex identify` command. A caller with threads
    (the TUI, a server) gets workers started from a clean process instead.
    """
    if start_method is not None:
        return multiprocessing.get_context(start_method)
    available = multiprocessing.get_all_start_methods()
    if "fork" in available and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in available:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
        return context
    return multiprocessing.get_context("spawn")
