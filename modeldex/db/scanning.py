"""`scan`: walk paths, reuse what `local_file` already knows, identify and hash the rest, keep the results.

A file whose path, size, mtime_ns and inode match its row is not opened at all: its identify results and hashes
come from the row. Everything else is identified and hashed on a pool of `jobs` threads, and written back in
batches (each its own short transaction, so a long first scan neither holds the write lock for hours nor loses
everything when interrupted). A row whose file is gone is deleted only when the file lay under a folder being
scanned; the scan reports it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session, sessionmaker

from modeldex.db.local_files import cached_rows, delete_paths, json_list, upsert_scanned
from modeldex.identify.hash_pool import OrderedPool
from modeldex.identify.hashing import FileHashes
from modeldex.identify.records import Identification
from modeldex.identify.scanning import Problem, ScanRecord, Target, examine, problem_record, walk

FLUSH_ROWS = 200
FLUSH_SECONDS = 5.0


class ScanObserver:
    """Hooks a front end overrides to show progress; the default does nothing."""

    def planned(self, files: int, to_examine: int, bytes_to_read: int) -> None:
        """Called once the walk is done and the cache consulted."""

    def record(self, record: ScanRecord) -> None:
        """Called for every target, in walk order, as soon as its record is ready."""


@dataclass(slots=True)
class ScanSummary:
    """What one scan did."""

    files: int = 0
    cached: int = 0
    examined: int = 0
    errors: int = 0
    bytes_hashed: int = 0
    vanished: list[str] = field(default_factory=list)
    """Rows deleted because their file is gone from a scanned folder (absolute paths)."""
    unrecorded: list[str] = field(default_factory=list)
    """Files identified and hashed but not stored: their names are not valid UTF-8, which the index cannot hold."""
    seconds: float = 0.0


def scan(
    paths: Sequence[Path],
    session_factory: sessionmaker[Session],
    *,
    jobs: int = 1,
    autov3: bool = False,
    observer: ScanObserver | None = None,
    stop: threading.Event | None = None,
) -> ScanSummary:
    """Scan files and folders (recursively) into `local_file`; see the module docstring.

    `autov3` asks for AutoV3 on every safetensors file (by default only adapters and embeddings get it). Setting
    `stop` (from a Ctrl-C handler) makes the worker threads abandon the files they are hashing, so the caller's
    KeyboardInterrupt is not held up; the files finished so far are still stored.
    """
    started = time.perf_counter()
    observer = observer or ScanObserver()
    targets = _each_path_once(walk(paths))
    roots = [os.path.abspath(p) for p in paths if os.path.isdir(p)]
    prefixes = tuple(root.rstrip(os.sep) + os.sep for root in roots)
    files = [t.path for t in targets if not t.path.startswith(prefixes)] if prefixes else [t.path for t in targets]
    with session_factory() as session:
        cache = cached_rows(session, roots=roots, files=files)
        session.rollback()

    fresh = {t.path: _cached_record(t, cache[t.path]) for t in targets if _is_hit(t, cache.get(t.path))}
    work = [t for t in targets if isinstance(t, Target) and t.path not in fresh]
    observer.planned(len(targets), len(work), sum(t.size for t in work if not t.folder))

    summary = ScanSummary(files=len(targets))
    writer = _BatchWriter(session_factory)
    pool = OrderedPool(jobs)

    def ready(target: Target | Problem) -> ScanRecord | None:
        if isinstance(target, Problem):
            return problem_record(target)
        return fresh.get(target.path)

    def run(target: Target | Problem) -> ScanRecord:
        assert isinstance(target, Target)
        return examine(target, autov3=autov3, threaded=pool.hash_threading(), stop=stop)

    try:
        for record in pool.map(run, targets, ready=ready):
            _count(summary, record)
            if not record.cached and isinstance(record.target, Target):
                if _utf8(record.target.path):
                    writer.add(_row_values(record))
                else:
                    summary.unrecorded.append(record.target.path)
            observer.record(record)
        seen = {t.path for t in targets}
        summary.vanished = _vanished(cache, roots, seen)
        writer.flush(delete=summary.vanished)
    finally:
        writer.flush()
    summary.seconds = time.perf_counter() - started
    return summary


def _utf8(path: str) -> bool:
    """Whether a path has a faithful UTF-8 spelling (undecodable bytes in a name come as surrogate escapes)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _each_path_once(targets: Iterable[Target | Problem]) -> list[Target | Problem]:
    """The first target for each absolute path (`scan a a`, or a folder and a file inside it, name it twice)."""
    unique: dict[str, Target | Problem] = {}
    for target in targets:
        unique.setdefault(target.path, target)
    return list(unique.values())


def _is_hit(target: Target | Problem, row: Row[Any] | None) -> bool:
    if row is None or not isinstance(target, Target):
        return False
    if (row.size, row.mtime_ns, row.inode) != (target.size, target.mtime_ns, target.inode):
        return False
    # A file that could not be hashed (no permission, I/O error) is retried: chmod does not change its mtime.
    return target.folder or row.sha256 is not None


def _cached_record(target: Target | Problem, row: Row[Any]) -> ScanRecord:
    assert isinstance(target, Target)
    identification = Identification(
        path=target.display,
        kind=row.kind,
        base=row.base,
        variant=row.variant,
        prediction=row.prediction,
        algo=row.algo,
        format=row.format,
        unsafe=row.unsafe,
        unsafe_globals=json_list(row.unsafe_globals),
        error=row.error,
        evidence=json_list(row.evidence),
    )
    hashes = None
    if row.sha256 is not None:
        hashes = FileHashes(
            sha256=row.sha256,
            autov1=row.autov1,
            autov2=row.autov2,
            autov3=row.autov3,
            crc32=row.crc32,
            blake3=row.blake3,
        )
    return ScanRecord(target, identification, hashes, cached=True)


def _row_values(record: ScanRecord) -> dict[str, Any]:
    target = record.target
    assert isinstance(target, Target)
    ident = record.identification
    values: dict[str, Any] = {
        "path": target.path,
        "size": target.size,
        "mtime_ns": target.mtime_ns,
        "inode": target.inode,
        "kind": ident.kind,
        "base": ident.base,
        "variant": ident.variant,
        "prediction": ident.prediction,
        "algo": ident.algo,
        "format": ident.format,
        "unsafe": ident.unsafe,
        "unsafe_globals": list(ident.unsafe_globals),
        "error": ident.error,
        "evidence": list(ident.evidence),
        "scanned_at": datetime.now(UTC),
    }
    hashes = record.hashes.to_json() if record.hashes is not None else {}
    for name in ("sha256", "autov1", "autov2", "autov3", "crc32", "blake3"):
        values[name] = hashes.get(name)
    return values


def _count(summary: ScanSummary, record: ScanRecord) -> None:
    if record.cached:
        summary.cached += 1
    elif isinstance(record.target, Target):
        summary.examined += 1
        if record.hashes is not None:
            summary.bytes_hashed += record.target.size
    if record.error is not None:
        summary.errors += 1


def _vanished(cache: dict[str, Row[Any]], roots: list[str], seen: set[str]) -> list[str]:
    """Cached paths under a scanned folder that the walk did not meet and that no longer exist."""
    prefixes = tuple(root.rstrip(os.sep) + os.sep for root in roots)
    if not prefixes:
        return []
    return sorted(
        path for path in cache if path not in seen and path.startswith(prefixes) and not os.path.lexists(path)
    )


class _BatchWriter:
    """Upserts scan rows in batches, each batch one transaction."""

    def __init__(self, session_factory: sessionmaker[Session], clock: Callable[[], float] = time.monotonic) -> None:
        self._factory = session_factory
        self._clock = clock
        self._rows: list[dict[str, Any]] = []
        self._since = clock()

    def add(self, values: dict[str, Any]) -> None:
        self._rows.append(values)
        if len(self._rows) >= FLUSH_ROWS or self._clock() - self._since >= FLUSH_SECONDS:
            self.flush()

    def flush(self, delete: Iterable[str] = ()) -> None:
        delete = list(delete)
        if self._rows or delete:
            with self._factory.begin() as session:
                upsert_scanned(session, self._rows)
                if delete:
                    delete_paths(session, delete)
        self._rows = []
        self._since = self._clock()
