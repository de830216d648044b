"""The ordered thread pool and hashing many files at once."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest

from modeldex.identify import hash_pool
from modeldex.identify.hash_pool import OrderedPool, hash_files, map_ordered


@pytest.mark.parametrize("jobs", [1, 2, 3])
def test_results_come_in_input_order(jobs: int) -> None:
    def slow_first(i: int) -> int:
        time.sleep(0.02 if i % 5 == 0 else 0)
        return i * i

    assert list(map_ordered(slow_first, range(40), jobs)) == [i * i for i in range(40)]


def test_uses_several_threads_at_once() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    def task(_: int) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    list(map_ordered(task, range(8), 2))
    assert peak == 2


def test_work_in_flight_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hash_pool, "WINDOW_PER_JOB", 2)
    started: list[int] = []

    def task(i: int) -> int:
        started.append(i)
        return i

    results = OrderedPool(2).map(task, iter(range(100)))
    first = next(results)
    assert first == 0
    assert len(started) <= 2 * 2 + 1
    assert list(results) == list(range(1, 100))


def test_an_exception_reaches_the_consumer() -> None:
    def task(i: int) -> int:
        if i == 3:
            raise ValueError("boom")
        return i

    got = []
    with pytest.raises(ValueError, match="boom"):
        for value in map_ordered(task, range(10), 2):
            got.append(value)
    assert got == [0, 1, 2]


def test_draining_only_after_every_item_started() -> None:
    pool = OrderedPool(2)
    seen: dict[int, bool] = {}
    gate = threading.Event()

    def task(i: int) -> int:
        if i == 0:
            gate.wait(30)
            time.sleep(0.05)  # let the submitting thread note that the input is exhausted
        seen[i] = pool.draining
        if i == 5:
            gate.set()
        return i

    assert list(pool.map(task, range(6))) == list(range(6))
    assert seen[0] is True  # item 0 waited until every other item had started
    assert seen[1] is False
    assert pool.draining


def test_hash_files_matches_hashlib_and_keeps_order(tmp_path: Path) -> None:
    paths = []
    for i in range(12):
        path = tmp_path / f"f{i:02d}.bin"
        path.write_bytes(bytes([i]) * (i * 100_003))
        paths.append(path)
    missing = tmp_path / "missing.bin"
    paths.insert(5, missing)
    outcomes = list(hash_files(paths, jobs=2))
    assert [o.path for o in outcomes] == paths
    for outcome in outcomes:
        if outcome.path == missing:
            assert outcome.hashes is None and outcome.error and "cannot read" in outcome.error
        else:
            assert outcome.error is None and outcome.hashes is not None
            assert outcome.hashes.sha256 == hashlib.sha256(outcome.path.read_bytes()).hexdigest()


@pytest.mark.parametrize("jobs", [1, 2])
def test_ready_items_skip_the_workers(jobs: int) -> None:
    ran: list[int] = []

    def task(i: int) -> str:
        ran.append(i)
        time.sleep(0.01 if i == 2 else 0)
        return f"worked {i}"

    def ready(i: int) -> str | None:
        return f"cached {i}" if i % 2 else None

    got = list(OrderedPool(jobs).map(task, range(10), ready=ready))
    assert got == [f"cached {i}" if i % 2 else f"worked {i}" for i in range(10)]
    assert sorted(ran) == [0, 2, 4, 6, 8]
