"""identify speed: files per second (warm page cache) and independence from file size.

Files come from tests/factory.py: real headers with full shapes (SD1 and SDXL checkpoints, SD1/SDXL kohya LoRAs,
an SD1 LyCORIS), the safetensors ones sparse, the pickles real torch zip files. Each template is hard-linked
`--copies` times so every call opens a different path while the page cache stays warm.

Printed, with the baseline measured in the same run:
  - safetensors files/s with `identify_path` (goal >= 1000) against `safetensors.safe_open(...).keys()` alone;
  - torch zip pickle files/s (goal >= 100) against `torch.load(weights_only=True, mmap=True)`;
  - the time to identify a 7 GB sparse SDXL checkpoint over the time for a 1 MB LoRA (goal <= 1.5), and the
    same 7 GB file against its own key set written over 1 MB of data (size alone, same keys).

    .venv/bin/python bench/bench_identify.py [--copies 100] [--repeats 5] [--dir /tmp]
Needs torch (to write the pickles and for the pickle baseline).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from factory import ModelFactory, write_safetensors  # noqa: E402

from modeldex.identify.identify import identify_path  # noqa: E402


def links(template: Path, copies: int) -> list[Path]:
    """Hard links to one file: distinct paths, one set of cached pages."""
    out = []
    for i in range(copies):
        link = template.with_name(f"{template.stem}-{i:04d}{template.suffix}")
        os.link(template, link)
        out.append(link)
    return out


def rate(paths: list[Path], run: Callable[[Path], object], repeats: int) -> float:
    """Best files/s over `repeats` passes."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for path in paths:
            run(path)
        best = min(best, time.perf_counter() - start)
    return len(paths) / best


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

        st_rate = rate(st_files, identify_path, args.repeats)
        st_base = rate(st_files, safe_open_keys, args.repeats)
        pk_rate = rate(pk_files, identify_path, args.repeats)
        pk_base = rate(pk_files, torch_load, args.repeats)
        print(
            f"\nsafetensors: {st_rate:8.0f} files/s identify   {st_base:8.0f} files/s safe_open().keys()   "
            f"ratio {st_rate / st_base:5.2f}   {'ok' if st_rate >= 1000 else 'BELOW GOAL 1000'}"
        )
        print(
            f"zip pickles: {pk_rate:8.0f} files/s identify   {pk_base:8.0f} files/s torch.load(mmap)     "
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
        print(f"\n{size:.1f} GB SDXL checkpoint: {t_big * 1e3:7.2f} ms per identify")
        print(
            f"{os.stat(small_lora).st_size / 1e6:.1f} MB LoRA:           {t_small * 1e3:7.2f} ms   "
            f"ratio 7 GB / 1 MB {t_big / t_small:5.2f}   {'ok' if t_big / t_small <= 1.5 else 'ABOVE GOAL 1.5'}"
        )
        print(
            f"{os.stat(same_keys).st_size / 1e6:.1f} MB, SDXL keys:     {t_same * 1e3:7.2f} ms   "
            f"ratio (same keys) {t_big / t_same:5.2f}"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
