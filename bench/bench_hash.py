"""Hashing throughput against one-stream SHA256 over the same bytes, measured in the same run.

1. One big file (default 2 GB of random bytes): `hash_file` (SHA256, AutoV1, AutoV2, CRC32, BLAKE3) versus
   `hashlib.file_digest(f, "sha256")` alone. Goal: ratio >= 0.9. Also shown: the same set plus AutoV3, and every
   hasher on one thread (what the threads buy).
2. A library of many files (default 48 files, 1.3 GB): `hash_files(jobs=N)` versus `hashlib.file_digest` file after
   file. Goal: ratio >= 1.2 with both cores.

Both sides read the same files from a warm page cache; each timing is the best of `--repeats`, alternating sides.
The data is random bytes written under `--dir` (default: the system temp folder) and deleted afterwards.

    .venv/bin/python bench/bench_hash.py [--size-gb 2] [--files 48] [--jobs 2] [--repeats 3] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from modeldex.identify.hash_pool import hash_files
from modeldex.identify.hashing import hash_file

BLOCK = 32 << 20


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(BLOCK, left)
            f.write(os.urandom(n))
            left -= n


def sha256_alone(paths: list[Path]) -> None:
    for path in paths:
        with open(path, "rb") as f:
            hashlib.file_digest(f, "sha256")


def best_of(repeats: int, *runs: Callable[[], object]) -> list[float]:
    """The best time of each run, the runs alternated so machine noise hits them alike."""
    best = [float("inf")] * len(runs)
    for _ in range(repeats):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            run()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def report(label: str, nbytes: int, baseline: float, seconds: float, goal: float | None) -> None:
    ratio = baseline / seconds
    verdict = "" if goal is None else ("  ok" if ratio >= goal else f"  BELOW GOAL {goal}")
    print(f"{label:<44} {nbytes / seconds / 1e9:6.2f} GB/s   ratio {ratio:5.2f}{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gb", type=float, default=2.0, help="size of the single big file")
    parser.add_argument("--files", type=int, default=48, help="files in the library")
    parser.add_argument("--jobs", type=int, default=2, help="files hashed at once")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the data")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="modeldex-bench-hash-", dir=args.dir))
    try:
        big = work / "big.bin"
        size = int(args.size_gb * 1e9)
        write_random(big, size)
        # A library like a LoRA folder with some checkpoints: mostly 8-40 MB files, every sixth one 100 MB.
        library = []
        for i in range(args.files):
            path = work / f"lib{i:03d}.safetensors"
            write_random(path, (100 << 20) if i % 6 == 5 else ((8 + (i * 7) % 33) << 20))
            library.append(path)
        lib_bytes = sum(p.stat().st_size for p in library)
        sha256_alone([big, *library])  # warm the page cache

        print(f"single file: {size / 1e9:.2f} GB, best of {args.repeats}")
        base, default_set, with_v3, inline = best_of(
            args.repeats,
            lambda: sha256_alone([big]),
            lambda: hash_file(big),
            lambda: hash_file(big, autov3=True),
            lambda: hash_file(big, threaded=False),
        )
        report("hashlib.file_digest sha256 (baseline)", size, base, base, None)
        report("hash_file default set", size, base, default_set, 0.9)
        report("hash_file default set + AutoV3", size, base, with_v3, None)
        report("hash_file default set, one thread", size, base, inline, None)

        print(f"\nlibrary: {len(library)} files, {lib_bytes / 1e9:.2f} GB, best of {args.repeats}")
        lib_base, lib_one, lib_jobs = best_of(
            args.repeats,
            lambda: sha256_alone(library),
            lambda: list(hash_files(library, jobs=1)),
            lambda: list(hash_files(library, jobs=args.jobs)),
        )
        report("sha256 one file after another (baseline)", lib_bytes, lib_base, lib_base, None)
        report("hash_files default set, jobs=1", lib_bytes, lib_base, lib_one, None)
        report(f"hash_files default set, jobs={args.jobs}", lib_bytes, lib_base, lib_jobs, 1.2)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
