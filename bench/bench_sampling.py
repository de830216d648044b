"""Overhead of A1111 noise, sigma lists and sampling loops, without a model.

Times, each as the best of `--repeats` runs:
  - the NV (Philox) generator and torch's CPU generator for one SD 1.5 (4x64x64) and one SDXL (4x128x128) latent,
  - `a1111_sigmas` for every schedule type at 30 steps,
  - every sampler's loop over 30 steps with a free analytic denoiser on an SDXL-sized batch of 1, i.e. the time a
    real generation spends outside the UNet (per step).

    .venv/bin/python bench/bench_sampling.py [--repeats 5]
Needs torch and torchsde (the generator extra).
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable


def best_of(repeats: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import torch

    from modeldex.generator.rng import randn
    from modeldex.generator.samplers import a1111_sigmas, initial_latent, sample
    from modeldex.generator.samplers.names import SAMPLERS, SCHEDULES

    torch.set_num_threads(1)
    print("noise (one latent):")
    for label, shape in (("SD 1.5 4x64x64", (4, 64, 64)), ("SDXL 4x128x128", (4, 128, 128))):
        for source in ("NV", "CPU"):
            seconds = best_of(args.repeats, lambda shape=shape, source=source: randn(1234, shape, source))
            print(f"  {label:16s} {source:4s} {seconds * 1e3:8.2f} ms")

    print("a1111_sigmas, 30 steps:")
    for schedule in SCHEDULES:
        if schedule.name == "automatic":
            continue
        seconds = best_of(args.repeats, lambda name=schedule.label: a1111_sigmas("Euler", 30, name))
        print(f"  {schedule.label:18s} {seconds * 1e3:8.3f} ms")

    def denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return x / (1 + sigma.view(-1, 1, 1, 1) ** 2)

    noise = randn(1, (1, 4, 128, 128), "CPU")
    print("sampling loop overhead, 30 steps, SDXL latent, free denoiser:")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for info in SAMPLERS:
            sigmas = a1111_sigmas(info.label, 30)
            x = initial_latent(info.label, noise, sigmas)
            seconds = best_of(
                max(1, args.repeats // 2),
                lambda label=info.label, x=x, sigmas=sigmas: sample(label, denoiser, x, sigmas, seed=1),
            )
            per_step = seconds / (len(sigmas) - 1)
            print(f"  {info.label:18s} {seconds * 1e3:8.1f} ms total  {per_step * 1e3:6.2f} ms/step")


if __name__ == "__main__":
    main()
