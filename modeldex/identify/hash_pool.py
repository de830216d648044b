"""Hashing many files with every core: a thread pool (the hashers release the GIL) that keeps input order.

While files are queued, each worker hashes its file on its own thread (one file per core is the cheapest way to
use the cores). Once the queue is empty the last files may spread their hashers over threads, so one big file at
the end does not leave a core idle.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from modeldex.errors import ReadError
from modeldex.identify.hashing import FileHashes, hash_file

T = TypeVar("T")
R = TypeVar("R")

WINDOW_PER_JOB = 4
"""Tasks queued per worker: enough to keep workers busy while the consumer handles a slow result in order."""


class OrderedPool:
    """`map` a function over items on `jobs` threads, results in input order, a bounded number in flight."""

    def __init__(self, jobs: int) -> None:
        self.jobs = max(1, jobs)
        self._lock = threading.Lock()
        self._submitted = 0
        self._started = 0
        self._exhausted = False

    @property
    def draining(self) -> bool:
        """True once every item has been taken by a worker: a task may then use the spare cores itself."""
        with self._lock:
            return self._exhausted and self._started >= self._submitted

    def hash_threading(self) -> bool | None:
        """The `threaded` argument for `hash_file` inside a task: inline while other files keep the cores busy."""
        return None if self.jobs == 1 or self.draining else False

    def map(
        self, func: Callable[[T], R], items: Iterable[T], *, ready: Callable[[T], R | None] | None = None
    ) -> Iterator[R]:
        """Yield `func(item)` for each item in order. `ready(item)`, when given, may return a result at once (a
        cache hit): that item takes no worker. An exception from `func` propagates when its turn comes; tasks not
        yet started are then cancelled."""
        if self.jobs == 1:
            with self._lock:
                self._exhausted = True
            for item in items:
                result = ready(item) if ready is not None else None
                yield func(item) if result is None else result
            return

        def run(item: T) -> R:
            with self._lock:
                self._started += 1
            return func(item)

        window = self.jobs * WINDOW_PER_JOB
        with ThreadPoolExecutor(self.jobs, thread_name_prefix="modeldex-pool") as executor:
            pending: deque[Future[R] | _Ready[R]] = deque()
            in_flight = 0
            try:
                for item in items:
                    result = ready(item) if ready is not None else None
                    if result is not None:
                        pending.append(_Ready(result))
                    else:
                        with self._lock:
                            self._submitted += 1
                        pending.append(executor.submit(run, item))
                        in_flight += 1
                    # Hand out what is done at the head; wait only when the window of running tasks is full.
                    while pending and (isinstance(pending[0], _Ready) or in_flight >= window):
                        head = pending.popleft()
                        if isinstance(head, Future):
                            in_flight -= 1
                        yield head.result()
                with self._lock:
                    self._exhausted = True
                while pending:
                    yield pending.popleft().result()
            finally:
                for future in pending:
                    if isinstance(future, Future):
                        future.cancel()


@dataclass(frozen=True, slots=True)
class _Ready(Generic[R]):
    value: R

    def result(self) -> R:
        return self.value


def map_ordered(func: Callable[[T], R], items: Iterable[T], jobs: int) -> Iterator[R]:
    """`func` over `items` on `jobs` threads, results in input order (see `OrderedPool.map`)."""
    return OrderedPool(jobs).map(func, items)


@dataclass(frozen=True, slots=True)
class HashOutcome:
    """One file's hashes, or the reason it could not be hashed."""

    path: Path
    hashes: FileHashes | None
    error: str | None = None


def hash_files(paths: Iterable[Path], *, jobs: int, autov3: bool = False) -> Iterator[HashOutcome]:
    """Hash every path with `jobs` files in flight; unreadable files give an outcome with `error`, never raise."""
    pool = OrderedPool(jobs)

    def one(path: Path) -> HashOutcome:
        try:
            return HashOutcome(path, hash_file(path, autov3=autov3, threaded=pool.hash_threading()))
        except ReadError as exc:
            return HashOutcome(path, None, exc.message)

    return pool.map(one, paths)
