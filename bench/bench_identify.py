"""identify speed: files per second (warm page cache) and independence from file size.

Files come from tests/factory.py: real headers with full shapes (SD1 and SDXL checkpoints, SD1/SDXL kohya LoRAs,
an SD1 LyCORIS), the safetensors ones sparse, the pickles real torch zip files. Each template is hard-linked
`--copies` times so every call opens a different path while the page cache stays warm.

Printed, with the baseline measured in the same run (best and median of `--repeats` passes):
  - safetensors files/s with `identify_path` (goal >= 1000) against `safetensors.safe_open(...).keys()` alone;
  - the same mix through `identify_many(..., jobs=2)` (worker processes, `--jobs`) over `--bulk-files` hard links
    (goal >= 1000, pool start-up included), and the pool's start-up measured apart (start the same pool, one
    trivial task per worker, shut it down), to give the rate without it;
  - torch zip pickle files/s (goal >= 100) against `torch.load(weights_only=True, mmap=True)`;
  - size independence, both ways: the time to identify a 7 GB sparse SDXL checkpoint over the time for a 1 MB
    LoRA (goal <= 1.5; the two also differ in key count, and the time follows the header, not the file), and the
    same 7 GB file against its own key set written over 1 MB of data (file size alone, same keys).

    .venv/bin/python bench/bench_identify.py [--copies 100] [--bulk-files 2000] [--repeats 5] [--dir /tmp]
Needs torch (to write the pickles and for the pickle baseline).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from factory import ModelFactory, write_safetensors  # noqa: E402

from modeldex.identify.bulk import _context as bulk_context  # noqa: E402
from modeldex.identify.bulk import identify_many  # noqa: E402
from modeldex.identify.identify import identify_path  # noqa: E402
from modeldex.identify.readers import read_header  # noqa: E402


def links(template: Path, copies: int, folder: Path | None = None) -> list[Path]:
    """Hard links to one file: distinct paths, one set of cached pages."""
    out = []
    for i in range(copies):
        link = (folder or template.parent) / f"{template.stem}-{i:04d}{template.suffix}"
        os.link(template, link)
        out.append(link)
    return out


def rate(paths: list[Path], run: Callable[[Path], object], repeats: int) -> tuple[float, float]:
    """(best, median) files/s over `repeats` passes.

    Each pass starts after a full collection: this process holds torch and the factory's objects, and a full
    collection falling inside one pass would charge their cost to whatever that pass measures.
    """
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        for path in paths:
            run(path)
        times.append(time.perf_counter() - start)
    return len(paths) / min(times), len(paths) / statistics.median(times)


def bulk_seconds(paths: list[Path], jobs: int, repeats: int) -> tuple[float, float]:
    """(best, median) seconds of one identify_many call over `paths`, pool start-up and shut-down included."""
    targets = [(path, str(path)) for path in paths]
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        for _ident in identify_many(targets, jobs=jobs):
            pass
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def pool_start_seconds(jobs: int, repeats: int) -> float:
    """Best seconds to start the pool identify_many would start, get a trivial answer from each worker, shut it down."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        with ProcessPoolExecutor(max_workers=jobs, mp_context=bulk_context(None)) as pool:
            for future in [pool.submit(os.getpid) for _ in range(jobs)]:
                future.result()
        times.append(time.perf_counter() - start)
    return min(times)


def per_call(path: Path, repeats: int) -> float:
    """Median seconds of one identify_path call."""
    times = []
    for _ in range(repeats * 20):
        start = time.perf_counter()
        identify_path(path)
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def safe_open_keys(path: Path) -> None:
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        f.keys()
        f.metadata()


def torch_load(path: Path) -> None:
    import torch

    torch.load(path, weights_only=True, mmap=True)


def shrunk(spec: dict[str, tuple[tuple[int, ...], str]], total_bytes: int) -> dict[str, tuple[tuple[int, ...], str]]:
    """The same keys and ranks with every tensor cut down so the data adds up to about `total_bytes`."""
    each = max(1, total_bytes // (2 * len(spec)))
    return {key: ((each,) + (1,) * (len(shape) - 1) if shape else (), "F16") for key, (shape, _) in spec.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=100, help="hard links per template file")
    parser.add_argument("--bulk-files", type=int, default=2000, help="safetensors files for the identify_many line")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes for the identify_many line")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="modeldex-bench-identify-", dir=args.dir))
    try:
        factory = ModelFactory(work / "models")
        safetensors = [
            factory.checkpoint("sd1"),
            factory.checkpoint("sdxl"),
            factory.lora("sd1"),
            factory.lora("sdxl"),
            factory.lora("sd1", "locon"),
        ]
        pickles = [factory.checkpoint("sd1", fmt="pickle"), factory.lora("sd1", fmt="pickle")]
        for path in safetensors + pickles:
            kind = identify_path(path)
            print(
                f"template {path.name:<30} {os.stat(path).st_size / 1e6:9.1f} MB  -> {kind.kind + '/' + kind.base:<16}"
                f"{per_call(path, 1) * 1e3:7.2f} ms per identify"
            )

        st_files = [p for t in safetensors for p in links(t, args.copies)]
        pk_files = [p for t in pickles for p in links(t, max(1, args.copies // 4))]
        for path in st_files + pk_files:  # warm every page the readers touch
            identify_path(path)

        bulk_dir = work / "bulk"
        bulk_dir.mkdir()
        per_template = -(-args.bulk_files // len(safetensors))
        # Interleaved, as in a folder of mixed models, and so that any first half holds the same mix as the whole.
        linked = [links(t, per_template, bulk_dir) for t in safetensors]
        bulk_files = [group[i] for i in range(per_template) for group in linked][: args.bulk_files]
        for path in bulk_files:
            identify_path(path)

        st_rate, st_median = rate(st_files, identify_path, args.repeats)
        full_best, full_median = bulk_seconds(bulk_files, args.jobs, args.repeats)
        fixed = pool_start_seconds(args.jobs, args.repeats)
        steady = len(bulk_files) / max(full_best - fixed, 1e-9)
        st_base, _ = rate(st_files, safe_open_keys, args.repeats)
        pk_rate, pk_median = rate(pk_files, identify_path, args.repeats)
        pk_base, _ = rate(pk_files, torch_load, args.repeats)
        print(f"\nfiles/s, best (median) of {args.repeats} passes; load average {os.getloadavg()[0]:.2f}")
        print(
            f"safetensors: {st_rate:6.0f} ({st_median:4.0f}) identify   {st_base:6.0f} safe_open().keys()   "
            f"ratio {st_rate / st_base:5.2f}   {'ok' if st_rate >= 1000 else 'BELOW GOAL 1000'}"
        )
        bulk_rate = len(bulk_files) / full_best
        print(
            f"safetensors: {bulk_rate:6.0f} ({len(bulk_files) / full_median:4.0f}) identify_many(jobs={args.jobs}) over "
            f"{len(bulk_files)} files, pool start-up included ({full_best:.2f} s in all; without the "
            f"~{fixed * 1e3:.0f} ms start-up: {steady:.0f} files/s)   {'ok' if bulk_rate >= 1000 else 'BELOW GOAL 1000'}"
        )
        print(
            f"zip pickles: {pk_rate:6.0f} ({pk_median:4.0f}) identify   {pk_base:6.0f} torch.load(mmap)     "
            f"ratio {pk_rate / pk_base:5.2f}   {'ok' if pk_rate >= 100 else 'BELOW GOAL 100'}"
        )

        big = safetensors[1]
        small_lora = factory.safetensors("small-lora.safetensors", factory.lora_spec("sd1", rank=1, te=False))
        spec = factory.checkpoint_spec("sdxl")
        same_keys = write_safetensors(factory.path("sdxl-keys-1mb.safetensors"), shrunk(spec, 1 << 20))
        t_big = per_call(big, args.repeats)
        t_small = per_call(small_lora, args.repeats)
        t_same = per_call(same_keys, args.repeats)
        size = os.stat(big).st_size / 1e9
        keys = {path: len(read_header(path).tensors) for path in (big, small_lora, same_keys)}
        print("\nsize independence, median ms per identify_path:")
        rows = [
            (f"{size:.1f} GB SDXL checkpoint, {keys[big]:,} keys", t_big, ""),
            (
                f"{os.stat(small_lora).st_size / 1e6:.1f} MB LoRA, {keys[small_lora]:,} keys",
                t_small,
                f"ratio 7 GB / 1 MB {t_big / t_small:5.2f}  {'ok' if t_big / t_small <= 1.5 else 'ABOVE GOAL 1.5'}"
                " (key counts differ too)",
            ),
            (
                f"{os.stat(same_keys).st_size / 1e6:.1f} MB, the same {keys[same_keys]:,} keys",
                t_same,
                f"ratio 7 GB / 1 MB {t_big / t_same:5.2f}  (file size alone)",
            ),
        ]
        for label, seconds, note in rows:
            print(f"  {label:<34} {seconds * 1e3:6.2f} ms   {note}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
