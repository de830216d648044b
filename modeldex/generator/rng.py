"""A1111's noise: per-image generators, RNG sources, ENSD, variation seeds and "Seed resize from".

A1111 (`modules/rng.py`) gives every image of a batch its own generator seeded with that image's seed. The first draw
is the initial latent noise (float32, shape `(C, H/8, W/8)` per image, stacked); if ENSD (eta noise seed delta) is
set, the generators are then re-created with `seed + ENSD`; every later draw (ancestral and DDIM step noise, one per
call of k-diffusion's `randn_like`) continues those generators. A variation seed ("subseed") draws a second noise from
a fresh generator and mixes it in with A1111's slerp; "Seed resize from WxH" draws the noise at the old size and
pastes it, centred, into noise of the new size.

RNG sources: "GPU" (A1111's default: torch's CUDA generator), "CPU" (torch's CPU generator) and "NV" (CUDA's Philox
generator computed on the CPU, `rng_philox`, bit for bit what A1111's `RNG: NV` draws). Without CUDA, "GPU" falls
back to NV with a warning: NV follows CUDA's counter layout but evaluates Box-Muller in float64 where CUDA uses
float32, so its numbers can differ from a GPU's in the last bits. Every tensor is returned as float32 on the CPU
(or `A1111Noise.device`). torch is imported inside functions only.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from modeldex.errors import GenerationError
from modeldex.generator.rng_philox import PhiloxGenerator

if TYPE_CHECKING:
    import torch

RNG_SOURCES = ("GPU", "CPU", "NV")

# A1111's latent channels and VAE downscale factor; "Seed resize from" is given in pixels.
LATENT_FACTOR = 8


class NoiseStream(Protocol):
    """One image's generator: every call is one draw, as one `torch.randn(shape, generator=g)` call in A1111."""

    def draw(self, shape: tuple[int, ...]) -> torch.Tensor:
        """The next draw of standard normal float32 numbers, on the CPU."""
        ...


class _PhiloxStream:
    def __init__(self, seed: int) -> None:
        self._generator = PhiloxGenerator(seed)

    def draw(self, shape: tuple[int, ...]) -> torch.Tensor:
        import torch

        return torch.from_numpy(self._generator.randn(shape))


class _TorchStream:
    def __init__(self, seed: int, device: str) -> None:
        import torch

        self._device = device
        self._generator = torch.Generator(device).manual_seed(seed)

    def draw(self, shape: tuple[int, ...]) -> torch.Tensor:
        import torch

        noise = torch.randn(shape, generator=self._generator, device=self._device, dtype=torch.float32)
        return noise.cpu()


def normalize_source(source: str) -> str:
    """The canonical RNG source name ("GPU", "CPU" or "NV") for an infotext's `RNG` value, case-insensitively."""
    canonical = str(source).strip().upper()
    if canonical not in RNG_SOURCES:
        raise GenerationError(f"unknown RNG source {source!r}: expected one of {', '.join(RNG_SOURCES)}")
    return canonical


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise GenerationError(f"a seed must be a whole number, not {seed!r}")
    if not 0 <= seed < 2**64:
        raise GenerationError(f"seed {seed} is out of range: A1111 seeds are between 0 and 2**64-1")
    return seed


def cuda_available() -> bool:
    """Whether torch can draw on a CUDA device here."""
    import torch

    return bool(torch.cuda.is_available())


def create_stream(seed: int, source: str = "GPU") -> NoiseStream:
    """A fresh generator for one seed, as A1111's `create_generator`; "GPU" without CUDA falls back to NV with a warning."""
    seed = _check_seed(seed)
    source = normalize_source(source)
    if source == "GPU":
        if cuda_available():
            return _TorchStream(seed, "cuda")
        warnings.warn(
            "RNG source GPU needs CUDA, which is not available: using the NV generator instead, A1111's CPU copy "
            "of CUDA's Philox generator (its numbers can differ from a real GPU's in the last float32 bits, and "
            "entirely for draws larger than one pass of the GPU's threads)",
            RuntimeWarning,
            stacklevel=3,
        )
        return _PhiloxStream(seed)
    if source == "CPU":
        return _TorchStream(seed, "cpu")
    return _PhiloxStream(seed)


def randn(seed: int, shape: tuple[int, ...], source: str = "GPU") -> torch.Tensor:
    """The first draw of a generator seeded with `seed`, as A1111 makes it: float32, on the CPU.

    `source` is A1111's `RNG` setting: "GPU" (torch's CUDA generator when CUDA is available, otherwise the NV
    generator with a warning), "CPU" (torch's CPU generator) or "NV" (CUDA's Philox generator computed on the CPU).
    """
    return create_stream(seed, source).draw(tuple(int(size) for size in shape))


def slerp(strength: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """A1111's variation-seed mix of `low` (seed noise) and `high` (subseed noise) for one `(C, H, W)` image.

    Faithful to A1111, quirks included: vectors are taken along dim 1 (the latent rows, one vector per channel and
    column), and when they are nearly parallel A1111 falls back to `low * strength + high * (1 - strength)`, the
    reverse weighting of the slerp it replaces.
    """
    import torch

    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * strength + high * (1 - strength)
    omega = torch.acos(dot)
    sin_omega = torch.sin(omega)
    low_weight = (torch.sin((1.0 - strength) * omega) / sin_omega).unsqueeze(1)
    high_weight = (torch.sin(strength * omega) / sin_omega).unsqueeze(1)
    return low_weight * low + high_weight * high


def batch_seeds(
    seed: int, count: int, subseed: int | None = None, subseed_strength: float = 0.0
) -> tuple[list[int], list[int]]:
    """Per-image seeds and subseeds for a batch, as A1111 numbers them.

    Seeds count up from `seed`, except when a variation strength is set: then every image keeps `seed` and the
    subseeds count up instead. Each image's infotext records its own values, so reproducing one image needs only its.
    """
    if count < 1:
        raise GenerationError(f"a batch holds at least one image, not {count}")
    seeds = [seed + (index if subseed_strength == 0 else 0) for index in range(count)]
    base_subseed = 0 if subseed is None else subseed
    return seeds, [base_subseed + index for index in range(count)]


def _paste_centered(target: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    # A1111's "Seed resize from": the old-size noise is centred on the new-size noise, cropped when it is larger.
    dx = (target.shape[2] - source.shape[2]) // 2
    dy = (target.shape[1] - source.shape[1]) // 2
    width = source.shape[2] if dx >= 0 else source.shape[2] + 2 * dx
    height = source.shape[1] if dy >= 0 else source.shape[1] + 2 * dy
    tx, ty = max(dx, 0), max(dy, 0)
    sx, sy = max(-dx, 0), max(-dy, 0)
    target[:, ty : ty + height, tx : tx + width] = source[:, sy : sy + height, sx : sx + width]
    return target


@dataclass
class A1111Noise:
    """A1111's `ImageRNG`: the initial noise and the per-step noise stream of one batch.

    `shape` is one image's latent shape `(C, H/8, W/8)`; `seeds` holds one seed per image; `source` is the `RNG`
    value ("GPU", "CPU", "NV"); `ensd` the `ENSD` value; `subseeds` and `subseed_strength` the `Variation seed` and
    `Variation seed strength`; `seed_resize_from` the `Seed resize from` size as `(width, height)` in pixels.

    Call `initial_noise()` once for the unscaled first noise (`x = noise * sigmas[0]` for k-diffusion samplers), then
    pass `noise_sampler` to `modeldex.generator.samplers.sample`: every call returns the next step noise, exactly
    as A1111's hijacked `randn_like` does. Tensors come back as float32 on `device`.
    """

    shape: tuple[int, ...]
    seeds: Sequence[int]
    source: str = "GPU"
    ensd: int = 0
    subseeds: Sequence[int] | None = None
    subseed_strength: float = 0.0
    seed_resize_from: tuple[int, int] | None = None
    device: str = "cpu"
    _streams: list[NoiseStream] = field(init=False, repr=False)
    _drawn_first: bool = field(init=False, default=False, repr=False)

    def __post_init__(self) -> None:
        self.shape = tuple(int(size) for size in self.shape)
        if len(self.shape) != 3 or min(self.shape) < 1:
            raise GenerationError(f"the latent shape must be (channels, height, width), not {self.shape}")
        self.seeds = [_check_seed(seed) for seed in self.seeds]
        if not self.seeds:
            raise GenerationError("A1111Noise needs at least one seed")
        self.source = normalize_source(self.source)
        self._streams = [create_stream(seed, self.source) for seed in self.seeds]

    @property
    def batch_size(self) -> int:
        """How many images the noise is drawn for."""
        return len(self.seeds)

    def _noise_shape(self) -> tuple[int, ...]:
        if self.seed_resize_from is None:
            return self.shape
        width, height = self.seed_resize_from
        if width <= 0 or height <= 0:
            return self.shape
        return (self.shape[0], int(height) // LATENT_FACTOR, int(width) // LATENT_FACTOR)

    def _first_for_image(self, index: int, seed: int, noise_shape: tuple[int, ...]) -> torch.Tensor:
        subnoise = None
        if self.subseeds is not None and self.subseed_strength != 0:
            subseed = 0 if index >= len(self.subseeds) else self.subseeds[index]
            subnoise = randn(subseed, noise_shape, self.source)
        if noise_shape != self.shape:
            noise = randn(seed, noise_shape, self.source)
        else:
            noise = self._streams[index].draw(self.shape)
        if subnoise is not None:
            noise = slerp(self.subseed_strength, noise, subnoise)
        if noise_shape != self.shape:
            noise = _paste_centered(self._streams[index].draw(self.shape), noise)
        return noise

    def initial_noise(self) -> torch.Tensor:
        """The first draw, `(batch, C, H, W)` unit noise; re-seeds the generators with `seed + ENSD` afterwards."""
        import torch

        if self._drawn_first:
            raise GenerationError("the initial noise was already drawn from this A1111Noise")
        noise_shape = self._noise_shape()
        images = [self._first_for_image(index, seed, noise_shape) for index, seed in enumerate(self.seeds)]
        if self.ensd:
            self._streams = [create_stream(seed + self.ensd, self.source) for seed in self.seeds]
        self._drawn_first = True
        return torch.stack(images).to(self.device)

    def next(self) -> torch.Tensor:
        """The next draw of A1111's stream: the initial noise on the first call, step noise after it."""
        import torch

        if not self._drawn_first:
            return self.initial_noise()
        return torch.stack([stream.draw(self.shape) for stream in self._streams]).to(self.device)

    def noise_sampler(self, sigma: object = None, sigma_next: object = None) -> torch.Tensor:
        """k-diffusion's noise sampler interface: the next step noise (the sigmas do not change it)."""
        if not self._drawn_first:
            raise GenerationError("draw the initial noise before the step noise (call initial_noise() first)")
        return self.next()
