"""Every hash CivitAI and A1111 know a file by, computed in one read pass.

SHA256 is the slowest of the set (about 2 GB/s with SHA-NI), so it runs on its own thread while the reading thread
does CRC32, BLAKE3 and AutoV1; hashlib, zlib and blake3 all release the GIL on large buffers, so on two cores the
whole set costs little more than SHA256 alone. AutoV3 (a second SHA256 over almost the whole file) gets a third
thread when asked for.

A1111/kohya definitions, reimplemented from their descriptions:
- AutoV1: SHA256 of the 0x10000 bytes at offset 0x100000 (whatever is there: fewer, or none, for small files),
  first 8 hex digits.
- AutoV2: first 10 hex digits of the full-file SHA256.
- AutoV3: SHA256 of a safetensors file after its 8-byte length and JSON header (the "addnet" hash); A1111 shows
  the first 12 digits, we keep all 64.
"""

from __future__ import annotations

import hashlib
import os
import threading
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3

from modeldex.errors import ReadError

CHUNK_SIZE = 4 << 20
"""Bytes per read. Large enough that the per-chunk Python overhead vanishes and every hasher drops the GIL."""
BUFFERS = 3
"""Chunks in flight per file: one being read while the hash threads work on the previous ones."""
AUTOV1_OFFSET = 0x100000
AUTOV1_LENGTH = 0x10000
SAFETENSORS_MAX_HEADER = 100 << 20
"""The safetensors library refuses larger headers; a bigger length means the file is not safetensors."""
_SNIFF_LEN = 9  # the 8-byte header length plus the `{` that opens the JSON header


@dataclass(frozen=True, slots=True)
class FileHashes:
    """The hashes of one file, lower-case hex; CivitAI writes the same values upper-case."""

    sha256: str
    autov1: str
    autov2: str
    autov3: str | None
    """None unless asked for and the file is safetensors."""
    crc32: str
    blake3: str

    def to_json(self) -> dict[str, str | None]:
        """The hashes by their JSON names, in a fixed order."""
        return {
            "sha256": self.sha256,
            "autov1": self.autov1,
            "autov2": self.autov2,
            "autov3": self.autov3,
            "crc32": self.crc32,
            "blake3": self.blake3,
        }


def autov3_matches(stored: str, shown: str) -> bool:
    """Whether an AutoV3 as A1111 shows it (12 digits, any case) or CivitAI sends it matches a stored full one."""
    shown = shown.strip().lower()
    return bool(shown) and stored.lower().startswith(shown)


class _Digests:
    """The state of one hashing pass; `feed_*` take consecutive chunks of the file."""

    def __init__(self, size: int, autov3: bool) -> None:
        self.size = size
        self.sha256 = hashlib.sha256()
        self.crc32 = 0
        self.blake3 = blake3.blake3()
        self.autov1_window = bytearray()
        self.want_autov3 = autov3
        self.prefix = bytearray()
        self.autov3_start: int | None = None
        """Where the tensor data begins; -1 once the file is known not to be safetensors."""
        self.autov3: Any = hashlib.sha256() if autov3 else None

    def sniff(self, chunk: memoryview, pos: int) -> None:
        """Learn from the first bytes where a safetensors header ends (needed before feeding AutoV3)."""
        if not self.want_autov3 or self.autov3_start is not None:
            return
        self.prefix += chunk[: _SNIFF_LEN - len(self.prefix)]
        if len(self.prefix) < _SNIFF_LEN and pos + len(chunk) < self.size:
            return
        self.autov3_start = _safetensors_data_start(bytes(self.prefix), self.size)

    def feed_side(self, chunk: memoryview, pos: int) -> None:
        """CRC32, BLAKE3 and the AutoV1 window."""
        self.crc32 = zlib.crc32(chunk, self.crc32)
        self.blake3.update(chunk)
        end = pos + len(chunk)
        if pos < AUTOV1_OFFSET + AUTOV1_LENGTH and end > AUTOV1_OFFSET:
            lo = max(AUTOV1_OFFSET, pos) - pos
            hi = min(AUTOV1_OFFSET + AUTOV1_LENGTH, end) - pos
            self.autov1_window += chunk[lo:hi]

    def feed_autov3(self, chunk: memoryview, pos: int, start: int | None) -> None:
        """The part of the chunk after the safetensors header, if the file is one."""
        if start is None or start < 0:
            return
        end = pos + len(chunk)
        if end > start:
            self.autov3.update(chunk[max(0, start - pos) :])

    def result(self) -> FileHashes:
        sha = self.sha256.hexdigest()
        autov3 = None
        if self.autov3 is not None and self.autov3_start is not None and self.autov3_start >= 0:
            autov3 = self.autov3.hexdigest()
        return FileHashes(
            sha256=sha,
            autov1=hashlib.sha256(self.autov1_window).hexdigest()[:8],
            autov2=sha[:10],
            autov3=autov3,
            crc32=f"{self.crc32 & 0xFFFFFFFF:08x}",
            blake3=self.blake3.hexdigest(),
        )


def _safetensors_data_start(prefix: bytes, size: int) -> int:
    """Offset of the tensor data if the file looks like safetensors, else -1."""
    if len(prefix) < _SNIFF_LEN or prefix[8] != ord("{"):
        return -1
    header_len = int.from_bytes(prefix[:8], "little")
    if header_len > SAFETENSORS_MAX_HEADER or 8 + header_len > size:
        return -1
    return 8 + header_len


class HashingStopped(Exception):
    """`hash_file` gave up part-way because its `stop` event was set (the user pressed Ctrl-C)."""


def hash_file(
    path: Path,
    *,
    autov3: bool = False,
    chunk_size: int = CHUNK_SIZE,
    threaded: bool | None = None,
    stop: threading.Event | None = None,
) -> FileHashes:
    """Hash `path` in one read pass: SHA256, AutoV1, AutoV2, CRC32, BLAKE3, and AutoV3 when `autov3` is set.

    `threaded` (default: when the file spans more than one chunk) spreads the hashers over threads; results are
    identical either way. Raises `ReadError` when the file cannot be read, and `HashingStopped` once `stop` is set
    (checked every chunk: a worker thread hashing a 7 GB file must not hold up a Ctrl-C for a minute).
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    try:
        with open(path, "rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
            digests = _Digests(size, autov3)
            if threaded is None:
                threaded = size > chunk_size
            if threaded:
                _pass_threaded(f, digests, chunk_size, stop)
            else:
                # A small file gets a small buffer: zero-filling 4 MiB per file would dominate a folder of them.
                _pass_inline(f, digests, min(chunk_size, size + 1), stop)
    except IsADirectoryError as exc:
        raise ReadError(f"{path} is a folder, not a file") from exc
    except OSError as exc:
        raise ReadError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return digests.result()


def _check(stop: threading.Event | None) -> None:
    if stop is not None and stop.is_set():
        raise HashingStopped


def _pass_inline(f: Any, digests: _Digests, chunk_size: int, stop: threading.Event | None = None) -> None:
    """Every hasher on the calling thread (small files, or when the caller already runs one file per core)."""
    buf = bytearray(chunk_size)
    view = memoryview(buf)
    pos = 0
    while n := f.readinto(buf):
        _check(stop)
        chunk = view[:n]
        digests.sniff(chunk, pos)
        digests.sha256.update(chunk)
        digests.feed_side(chunk, pos)
        digests.feed_autov3(chunk, pos, digests.autov3_start)
        pos += n


def _pass_threaded(f: Any, digests: _Digests, chunk_size: int, stop: threading.Event | None = None) -> None:
    """SHA256 (and AutoV3) on worker threads, the rest on this one; `BUFFERS` chunks rotate between them."""
    buffers = [bytearray(chunk_size) for _ in range(BUFFERS)]
    views = [memoryview(b) for b in buffers]
    lanes = [ThreadPoolExecutor(1, thread_name_prefix="modeldex-sha256")]
    if digests.want_autov3:
        lanes.append(ThreadPoolExecutor(1, thread_name_prefix="modeldex-autov3"))
    # Futures of the chunk held by each buffer: a buffer is reused only after every lane is done with it.
    pending: deque[list[Future[None]]] = deque()
    pos = 0
    index = 0
    try:
        while True:
            if len(pending) == BUFFERS:
                _wait(pending.popleft())
            buf = buffers[index % BUFFERS]
            n = f.readinto(buf)
            if not n:
                break
            _check(stop)
            chunk = views[index % BUFFERS][:n]
            digests.sniff(chunk, pos)
            futures: list[Future[None]] = [lanes[0].submit(digests.sha256.update, chunk)]
            if len(lanes) > 1:
                futures.append(lanes[1].submit(digests.feed_autov3, chunk, pos, digests.autov3_start))
            digests.feed_side(chunk, pos)
            pending.append(futures)
            pos += n
            index += 1
        while pending:
            _wait(pending.popleft())
    finally:
        for lane in lanes:
            lane.shutdown(wait=True)


def _wait(futures: list[Future[None]]) -> None:
    for future in futures:
        future.result()
