"""A1111's `RNG: NV` noise: CUDA's Philox4x32-10 counter generator and Box-Muller transform, computed on the CPU.

The algorithm is the published Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011;
Random123). A1111 keys it with the 64-bit seed and gives element `i` of a draw the counter `(offset, 0, i, 0)`, where
`offset` counts the draws made with the generator so far; only the first two output words are used, turned into one
normal number by Box-Muller with CUDA's float32 constants, evaluated in float64 and rounded to float32 at the end.
This is what makes `RNG: NV` images reproducible on any machine. Only numpy is needed.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# Philox4x32 multipliers and Weyl key increments (Random123, philox.h).
PHILOX_M0 = 0xD2511F53
PHILOX_M1 = 0xCD9E8D57
PHILOX_W0 = 0x9E3779B9
PHILOX_W1 = 0xBB67AE85
_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)

# CUDA's curand constants as float32 (2**-32 and 2**-32 * 2*pi). A1111 multiplies the uint32 words by them as
# float32 arrays, which numpy promotes to float64: keep exactly that, or outputs differ in the last float32 bit.
_TWO_POW32_INV = np.float32(2.3283064e-10)
_TWO_POW32_INV_2PI = np.float32(2.3283064e-10 * 6.2831855)

U32Array = npt.NDArray[np.uint32]


def _mulhilo(a: U32Array, multiplier: int) -> tuple[U32Array, U32Array]:
    product = a.astype(np.uint64) * np.uint64(multiplier)
    return (product >> _SHIFT32).astype(np.uint32), (product & _MASK32).astype(np.uint32)


def philox4x32(counter: U32Array, key: U32Array, rounds: int = 10) -> U32Array:
    """Philox4x32-R over columns: `counter` is (4, N) uint32, `key` is (2, N) uint32; returns (4, N) uint32 words."""
    c0, c1, c2, c3 = (np.array(counter[i], dtype=np.uint32) for i in range(4))
    k0 = np.array(key[0], dtype=np.uint32)
    k1 = np.array(key[1], dtype=np.uint32)
    w0, w1 = np.uint32(PHILOX_W0), np.uint32(PHILOX_W1)
    for round_index in range(rounds):
        if round_index:
            # uint32 arithmetic wraps modulo 2**32, which is the key schedule's definition.
            k0 = k0 + w0
            k1 = k1 + w1
        hi0, lo0 = _mulhilo(c0, PHILOX_M0)
        hi1, lo1 = _mulhilo(c2, PHILOX_M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return np.stack([c0, c1, c2, c3])


def box_muller_first(x: U32Array, y: U32Array) -> npt.NDArray[np.float32]:
    """The first of the two Box-Muller normals for uint32 words `x` and `y`, as A1111 computes it."""
    u = x.astype(np.float64) * np.float64(_TWO_POW32_INV) + np.float64(_TWO_POW32_INV / np.float32(2))
    v = y.astype(np.float64) * np.float64(_TWO_POW32_INV_2PI) + np.float64(_TWO_POW32_INV_2PI / np.float32(2))
    radius = np.sqrt(-2.0 * np.log(u))
    return (radius * np.sin(v)).astype(np.float32)


class PhiloxGenerator:
    """A stream of normal draws identical to A1111's `rng_philox.Generator`: each `randn` call is one CUDA launch."""

    def __init__(self, seed: int) -> None:
        if not 0 <= seed < 2**64:
            raise ValueError(f"a Philox seed must be between 0 and 2**64-1, not {seed}")
        self.seed = seed
        self.offset = 0

    def randn(self, shape: tuple[int, ...]) -> npt.NDArray[np.float32]:
        """Draw `shape` standard normal float32 numbers and advance the stream by one launch."""
        count = 1
        for size in shape:
            count *= size
        if count >= 2**32:
            raise ValueError(f"a single Philox draw holds fewer than 2**32 numbers, not {count}")
        counter = np.zeros((4, count), dtype=np.uint32)
        counter[0] = self.offset
        counter[2] = np.arange(count, dtype=np.uint32)
        key = np.empty((2, count), dtype=np.uint32)
        key[0] = self.seed & 0xFFFFFFFF
        key[1] = self.seed >> 32
        self.offset += 1
        words = philox4x32(counter, key)
        return box_muller_first(words[0], words[1]).reshape(shape)
