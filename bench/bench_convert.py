"""Convert throughput against a plain file copy of the same bytes (goal: ratio >= 0.8).

Builds a Lightning-style SD checkpoint of real random data (default ~1.5 GB: fp16 / fp32 tensors with SD-like keys,
a few transposed views), then times, alternately and with the page cache warm for all:
  - convert as `modeldex convert` runs it (read_header + streaming write + fsync before the rename),
  - `shutil.copyfile` of the checkpoint followed by fsync (the same durability),
  - convert with `durable=False` (no fsync) and `shutil.copyfile` alone (both leave the data in the page cache).
`--cold` evicts the checkpoint from the page cache before every run, so reads come from the disk.
Ratios compare like with like: bytes per second of convert / bytes per second of the copy (1.0 = as fast), from
the best run of each (the least disturbed by other work on the machine) and from the median run.

    .venv/bin/python bench/bench_convert.py [--size-gb 1.5] [--repeats 3] [--dir /some/tmp]
Needs torch (to write the checkpoint only).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def build_checkpoint(path: Path, size_bytes: int) -> int:
    """A state_dict of random fp16/fp32 tensors with SD UNet-like names; returns the tensor bytes."""
    import torch

    rng = np.random.default_rng(0)
    state: dict[str, torch.Tensor] = {}
    shapes = [(1280, 1280, 3, 3), (640, 640, 3, 3), (1280, 1280), (320, 320, 3, 3), (640, 640), (1280,), (320,)]
    total = 0
    block = 0
    while total < size_bytes:
        for i, shape in enumerate(shapes):
            dtype = torch.float16 if i % 2 == 0 else torch.float32
            numel = int(np.prod(shape))
            data = rng.bytes(numel * (2 if dtype == torch.float16 else 4))
            tensor = torch.frombuffer(bytearray(data), dtype=dtype).reshape(shape)
            name = f"model.diffusion_model.input_blocks.{block}.{i}.weight"
            # A square matrix saved transposed now and then, as some exporters leave them.
            state[name] = tensor.t() if len(shape) == 2 and shape[0] == shape[1] and block % 3 == 0 else tensor
            total += tensor.numel() * tensor.element_size()
        block += 1
    torch.save({"state_dict": state, "global_step": 470000, "epoch": 6}, path)
    return total


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def evict(path: Path) -> None:
    """Drop this one file's pages from the page cache (no root needed, other files untouched)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def warm(path: Path) -> None:
    with open(path, "rb") as stream:
        while stream.read(64 << 20):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gb", type=float, default=1.5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--cold", action="store_true", help="evict the checkpoint from the page cache before each run")
    args = parser.parse_args()

    from modeldex.identify.convert import convert_to_safetensors

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-convert-") as tmp:
        folder = Path(tmp)
        ckpt = folder / "model.ckpt"
        started = time.perf_counter()
        tensor_bytes = build_checkpoint(ckpt, int(args.size_gb * 1e9))
        file_bytes = ckpt.stat().st_size
        print(
            f"checkpoint: {file_bytes / 1e9:.2f} GB ({tensor_bytes / 1e9:.2f} GB of tensors), built in {time.perf_counter() - started:.1f} s"
        )
        warm(ckpt)
        out = folder / "model.safetensors"
        copy = folder / "copy.ckpt"
        times: dict[str, list[float]] = {"convert": [], "copy+fsync": [], "convert-nosync": [], "copy": []}
        out_bytes = 0
        for _ in range(args.repeats):
            for label in times:
                for leftover in (out, copy):
                    leftover.unlink(missing_ok=True)
                os.sync()
                if args.cold:
                    evict(ckpt)
                started = time.perf_counter()
                if label.startswith("convert"):
                    out_bytes = convert_to_safetensors(ckpt, out, durable=label == "convert").bytes_written
                elif label == "copy+fsync":
                    shutil.copyfile(ckpt, copy)
                    fsync_path(copy)
                else:
                    shutil.copyfile(ckpt, copy)
                times[label].append(time.perf_counter() - started)
        for label, values in times.items():
            size = out_bytes if label.startswith("convert") else file_bytes
            runs = ", ".join(f"{t:.3f}" for t in values)
            print(
                f"{label:>14}: best {size / min(values) / 1e9:.2f} GB/s, median {size / statistics.median(values) / 1e9:.2f} GB/s  (runs {runs} s)"
            )
        for pick in (min, statistics.median):
            speed = {
                label: (out_bytes if label.startswith("convert") else file_bytes) / pick(values)
                for label, values in times.items()
            }
            print(
                f"ratio ({pick.__name__ if pick is min else 'median'}): convert / copyfile+fsync {speed['convert'] / speed['copy+fsync']:.2f}, "
                f"convert without fsync / copyfile {speed['convert-nosync'] / speed['copy']:.2f}  (goal >= 0.8)"
            )


if __name__ == "__main__":
    main()
