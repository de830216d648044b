"""A1111 noise: Philox4x32-10 known answers, A1111's Box-Muller, RNG sources, ENSD, variation seeds, seed resize."""

from __future__ import annotations

import math
import struct
import warnings

import numpy as np
import pytest
import torch

from modeldex.errors import GenerationError
from modeldex.generator.rng import A1111Noise, batch_seeds, normalize_source, randn, slerp
from modeldex.generator.rng_philox import PhiloxGenerator, philox4x32

MASK32 = 0xFFFFFFFF

# Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter[4], key[2] -> output[4].
KAT_VECTORS = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK32,) * 4, (MASK32,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


def reference_philox(counter: tuple[int, ...], key: tuple[int, ...], rounds: int = 10) -> list[int]:
    """Philox4x32-R from the paper, one block at a time with Python integers."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for round_index in range(rounds):
        if round_index:
            k0, k1 = (k0 + 0x9E3779B9) & MASK32, (k1 + 0xBB67AE85) & MASK32
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & MASK32, p1 & MASK32, ((p0 >> 32) ^ c3 ^ k1) & MASK32, p0 & MASK32
    return [c0, c1, c2, c3]


def to_float32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


def reference_nv(seed: int, count: int, offset: int = 0) -> list[float]:
    """A1111's NV draw: counter (offset, 0, i, 0), key = seed; Box-Muller in float64 with CUDA's float32 constants."""
    inv = to_float32(2.3283064e-10)
    inv_2pi = to_float32(2.3283064e-10 * 6.2831855)
    key = (seed & MASK32, seed >> 32)
    values = []
    for index in range(count):
        x, y, _, _ = reference_philox((offset, 0, index, 0), key)
        u = x * inv + inv / 2
        v = y * inv_2pi + inv_2pi / 2
        values.append(to_float32(math.sqrt(-2.0 * math.log(u)) * math.sin(v)))
    return values


@pytest.mark.parametrize(("counter", "key", "expected"), KAT_VECTORS)
def test_philox_matches_random123_known_answers(counter, key, expected):
    words = philox4x32(np.array(counter, dtype=np.uint32)[:, None], np.array(key, dtype=np.uint32)[:, None])
    assert [int(word) for word in words[:, 0]] == list(expected)
    assert reference_philox(counter, key) == list(expected)


def test_philox_is_vectorised_over_columns():
    counters = np.array([kat[0] for kat in KAT_VECTORS], dtype=np.uint32).T
    keys = np.array([kat[1] for kat in KAT_VECTORS], dtype=np.uint32).T
    words = philox4x32(counters, keys)
    assert [[int(w) for w in words[:, column]] for column in range(3)] == [list(kat[2]) for kat in KAT_VECTORS]


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**32 + 7, 2**64 - 1])
def test_nv_draws_match_the_reference_exactly(seed):
    generator = PhiloxGenerator(seed)
    first = generator.randn((2, 3, 5))
    second = generator.randn((2, 3, 5))
    assert first.dtype == np.float32 and first.shape == (2, 3, 5)
    assert first.ravel().tolist() == reference_nv(seed, 30, offset=0)
    assert second.ravel().tolist() == reference_nv(seed, 30, offset=1)


def test_nv_seed_zero_is_close_to_a1111_published_output():
    # A1111's rng_philox docstring prints Generator(0).randn((3, 4)); those digits were made with exact float64
    # constants, the shipped code (reproduced here) uses CUDA's float32 ones: they agree to a few float32 ulps.
    published = [
        [-0.92466259, -0.42534415, -2.6438457, 0.14518388],
        [-0.12086647, -0.57972564, -0.62285122, -0.32838709],
        [-1.07454231, -0.36314407, -1.67105067, 2.26550497],
    ]
    drawn = PhiloxGenerator(0).randn((3, 4))
    assert np.abs(drawn - np.array(published)).max() < 5e-7
    assert drawn[0, 0] == np.float32(-0.9246624)


def test_randn_nv_and_cpu_sources():
    nv = randn(7, (1, 2, 3), "NV")
    assert nv.dtype == torch.float32 and nv.shape == (1, 2, 3)
    assert nv.flatten().tolist() == reference_nv(7, 6)
    cpu = randn(7, (1, 2, 3), "cpu")
    expected = torch.randn((1, 2, 3), generator=torch.Generator().manual_seed(7))
    assert torch.equal(cpu, expected)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fallback only applies without CUDA")
def test_gpu_source_without_cuda_falls_back_to_nv_with_a_warning():
    with pytest.warns(RuntimeWarning, match="NV"):
        gpu = randn(99, (4, 3), "GPU")
    assert torch.equal(gpu, randn(99, (4, 3), "NV"))


@pytest.mark.parametrize("bad", ["TPU", "", "nv2"])
def test_unknown_source_is_a_clear_error(bad):
    with pytest.raises(GenerationError, match="RNG source"):
        normalize_source(bad)


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, True])
def test_bad_seeds_are_clear_errors(seed):
    with pytest.raises(GenerationError, match="seed"):
        randn(seed, (2,), "CPU")


def cpu_draws(seed: int, shape: tuple[int, ...], count: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator) for _ in range(count)]


@pytest.mark.parametrize("source", ["CPU", "NV"])
def test_initial_noise_stacks_one_generator_per_image(source):
    noise = A1111Noise((4, 3, 2), [10, 11, 500], source=source)
    first = noise.initial_noise()
    assert first.shape == (3, 4, 3, 2) and first.dtype == torch.float32
    for index, seed in enumerate([10, 11, 500]):
        assert torch.equal(first[index], randn(seed, (4, 3, 2), source))


def test_step_noise_continues_each_generator_without_ensd():
    noise = A1111Noise((2, 3, 3), [5, 6], source="CPU")
    noise.initial_noise()
    steps = [noise.noise_sampler(torch.tensor(1.0), torch.tensor(0.5)) for _ in range(2)]
    for index, seed in enumerate([5, 6]):
        draws = cpu_draws(seed, (2, 3, 3), 3)
        assert torch.equal(steps[0][index], draws[1])
        assert torch.equal(steps[1][index], draws[2])


def test_nv_step_noise_uses_the_next_philox_offset():
    noise = A1111Noise((1, 2, 2), [3], source="NV")
    noise.initial_noise()
    assert noise.next()[0].flatten().tolist() == reference_nv(3, 4, offset=1)


@pytest.mark.parametrize("source", ["CPU", "NV"])
def test_ensd_reseeds_step_noise_with_seed_plus_delta(source):
    noise = A1111Noise((2, 2, 2), [100, 101], source=source, ensd=31337)
    first = noise.initial_noise()
    step = noise.noise_sampler(torch.tensor(2.0), torch.tensor(1.0))
    for index, seed in enumerate([100, 101]):
        assert torch.equal(first[index], randn(seed, (2, 2, 2), source))
        assert torch.equal(step[index], randn(seed + 31337, (2, 2, 2), source))


def test_step_noise_before_the_initial_noise_is_refused():
    noise = A1111Noise((1, 2, 2), [1], source="CPU")
    with pytest.raises(GenerationError, match="initial noise"):
        noise.noise_sampler(torch.tensor(1.0), torch.tensor(0.0))
    noise.initial_noise()
    with pytest.raises(GenerationError, match="already drawn"):
        noise.initial_noise()


def test_next_draws_the_initial_noise_first_like_a1111():
    noise = A1111Noise((1, 2, 2), [8], source="CPU")
    assert torch.equal(noise.next()[0], randn(8, (1, 2, 2), "CPU"))


def reference_slerp(strength: float, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Spherical interpolation per (channel, column) vector along the rows, in float64."""
    out = np.empty_like(low, dtype=np.float64)
    for c in range(low.shape[0]):
        for w in range(low.shape[2]):
            a, b = low[c, :, w].astype(np.float64), high[c, :, w].astype(np.float64)
            omega = math.acos(float(np.dot(a / np.linalg.norm(a), b / np.linalg.norm(b))))
            out[c, :, w] = (math.sin((1 - strength) * omega) * a + math.sin(strength * omega) * b) / math.sin(omega)
    return out


def test_variation_seed_mixes_with_a1111_slerp():
    noise = A1111Noise((2, 6, 3), [42], source="NV", subseeds=[7], subseed_strength=0.3).initial_noise()[0]
    expected = reference_slerp(0.3, randn(42, (2, 6, 3), "NV").numpy(), randn(7, (2, 6, 3), "NV").numpy())
    assert np.abs(noise.numpy() - expected).max() < 1e-5


def test_variation_strength_one_is_the_subseed_noise():
    noise = A1111Noise((4, 5, 5), [42], source="CPU", subseeds=[7], subseed_strength=1.0).initial_noise()[0]
    assert torch.allclose(noise, randn(7, (4, 5, 5), "CPU"), atol=1e-6)


def test_missing_subseed_for_an_image_is_zero():
    noise = A1111Noise((1, 4, 4), [1, 2], source="CPU", subseeds=[9], subseed_strength=1.0).initial_noise()
    assert torch.allclose(noise[0], randn(9, (1, 4, 4), "CPU"), atol=1e-6)
    assert torch.allclose(noise[1], randn(0, (1, 4, 4), "CPU"), atol=1e-6)


def test_nearly_parallel_noise_uses_a1111s_reversed_lerp():
    low = torch.linspace(1.0, 2.0, 12).reshape(1, 4, 3)
    high = low * 1.0001
    mixed = slerp(0.25, low, high)
    assert torch.allclose(mixed, low * 0.25 + high * 0.75)


def test_seed_resize_pastes_the_old_size_noise_centred():
    noise = A1111Noise((2, 8, 6), [21], source="CPU", seed_resize_from=(16, 32)).initial_noise()[0]
    old = randn(21, (2, 4, 2), "CPU")  # 32 px high, 16 px wide
    full = randn(21, (2, 8, 6), "CPU")
    assert torch.equal(noise[:, 2:6, 2:4], old)
    outside = torch.ones(2, 8, 6, dtype=torch.bool)
    outside[:, 2:6, 2:4] = False
    assert torch.equal(noise[outside], full[outside])


def test_seed_resize_from_a_larger_size_crops_the_centre():
    noise = A1111Noise((1, 4, 4), [3], source="NV", seed_resize_from=(64, 64)).initial_noise()[0]
    old = randn(3, (1, 8, 8), "NV")
    assert torch.equal(noise, old[:, 2:6, 2:6])


def test_seed_resize_with_the_same_size_is_plain_noise():
    noise = A1111Noise((1, 4, 4), [3], source="CPU", seed_resize_from=(32, 32)).initial_noise()[0]
    assert torch.equal(noise, randn(3, (1, 4, 4), "CPU"))


def test_batch_seeds_follow_a1111_numbering():
    assert batch_seeds(100, 3) == ([100, 101, 102], [0, 1, 2])
    assert batch_seeds(100, 3, subseed=50, subseed_strength=0.5) == ([100, 100, 100], [50, 51, 52])
    with pytest.raises(GenerationError):
        batch_seeds(1, 0)


def test_bad_shapes_are_clear_errors():
    with pytest.raises(GenerationError, match="latent shape"):
        A1111Noise((4, 64), [1], source="CPU")
    with pytest.raises(GenerationError, match="at least one seed"):
        A1111Noise((4, 8, 8), [], source="CPU")


def test_noise_is_returned_on_the_requested_device():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        noise = A1111Noise((1, 2, 2), [1], source="NV", device="cpu").initial_noise()
    assert noise.device.type == "cpu"
