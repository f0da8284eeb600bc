"""How freqnoise draws standard normal noise: 16-bit table lookup on partitionable Threefry bits.

Every analog-noise draw goes through `standard_normal(key, shape)`. It is a function of the key
(and the shape) alone: the same float32 numbers on 1 or 4 devices, inside or outside `jit`, with a
sharded or replicated output, under either setting of `jax_threefry_partitionable`.

Algorithm
---------
1. Bits. For `shape = (..., L)` the hash grid is `(..., ceil(L / 4))`. Cell `j` (row-major linear
   index over the grid, as uint32) is hashed with the Threefry-2x32 block function of the key,
   counter `(hi, lo) = (0x6e6f6973, j)`: 64 random bits per hash, four 16-bit uniforms
   `[w1 & 0xffff, w1 >> 16, w2 & 0xffff, w2 >> 16]` that become elements `4j .. 4j+3` along the last
   axis (the padding past `L` is dropped). Every step is elementwise in the leading axes, so XLA
   partitions it with no communication when the output is sharded on any axis but the last, and
   nothing depends on the device count. (JAX's partitionable `jax.random.bits` uses the counter
   `hi = 0` and folds the two words into one, so these streams never coincide with its.)
2. Normals. Each 16-bit uniform `k` indexes a 65,536-entry float32 table: `T[k]` is the
   conditional mean of a standard normal Z over the k-th of 2^16 equal-probability bins,
       T[k] = E[Z | a_k < Z < a_{k+1}] = 2^16 * (phi(a_k) - phi(a_{k+1})),  a_k = Phi^-1(k / 2^16),
   computed once in float64 (scipy.special.ndtri) and rounded to float32; T[65535 - k] = -T[k]
   exactly. So the draw is exactly the 2^16-level conditional-mean quantisation of N(0, 1):
   mean 0, variance 1 - 1.5e-6, fourth moment 2.99982 (N(0, 1): 3); `table_moments()` gives the
   exact values of the float32 table.

Bits per sample: 16 (four samples per Threefry hash; `jax.random.normal` uses one 32-bit hash per
sample plus an erf_inv). Tail bound: |z| <= TAIL_BOUND = |T[0]| = 2^16 * phi(Phi^-1(2^-16)) =
4.3875113 (float32) exactly, reached with probability 2^-15; a real normal exceeds it with
probability 1.1e-5. That truncation and the quantisation step (3.8e-5 near 0) are irrelevant for
analog noise, but a caller that needs > 4.39-sigma events must not use this.

Keys: raw uint32[2] keys (`jax.random.PRNGKey`) and typed threefry keys (`jax.random.key`) with
the same data give the same numbers. A key of another implementation (rbg, unsafe_rbg) is first
turned into a threefry key from 64 of its own bits (`jax.random.bits`), so it is as key-only as
that implementation's 2-word draw. Works for any shape (0-d, odd sizes, size 0), under `jit` and
`vmap` over keys.

Measured by experiments/benchmarks/bench_noise_draw.py (one float32 [28, 128, 512] draw, jitted,
median of 25 interleaved rounds) on the project's 2-core CPU machine on 2026-12-01, jax 0.10.2,
while a training job and another developer's tests ran on the same cores (load average 6.3-6.5
on 2 cores), so the absolute times are inflated ((a) was measured at 7.6 ms on quieter cores)
and only the ratios mean much. "Same on 1 and 4 devices": bitwise equal on 1 device and on 4 fake
CPU devices with the output sharded on axis 0, at [28, 128, 512] and [12, 5, 37].

| option                                                  | ms    | vs (a) | same on 1, 4 devices | max abs z |
|---------------------------------------------------------|-------|--------|----------------------|-----------|
| a  jax.random.normal, partitionable Threefry             | 39.42 | 1.00   | yes                  | 5.4200    |
| b  jax.random.normal, threefry_partitionable(False)      | 21.58 | 0.55   | yes                  | 5.4200    |
| c1 jax.random.normal, rbg key                           | 143.97| 3.65   | yes                  | 5.4200    |
| c2 jax.random.normal, unsafe_rbg key                    | 133.83| 3.40   | yes                  | 5.4200    |
| d  random.bits uint32 -> 2 x 16 bits, Box-Muller         | 41.43 | 1.05   | yes                  | 4.8546    |
| d  random.bits uint32 -> 2 x 16 bits, erf_inv            | 25.44 | 0.65   | yes                  | 4.3249    |
| d  random.bits uint32 -> 2 x 16 bits, this table         | 12.52 | 0.32   | yes                  | 4.3875    |
| e  64-bit Threefry hash -> 4 x 16 bits, Box-Muller       | 35.33 | 0.90   | yes                  | 4.8546    |
| e  64-bit Threefry hash -> 4 x 16 bits, erf_inv          | 16.51 | 0.42   | yes                  | 4.3249    |
| e  64-bit Threefry hash -> 4 x 16 bits, this table (here)| 6.66  | 0.17   | yes                  | 4.3875    |

Every option is a function of the key alone once the Threefry variant is fixed; (b) is too, but
the old code chose it by device count, which is what made 1 and 4 devices differ. Chosen: the
last row, the fastest (5.9x (a) here); its table also has the most accurate variance of the
16-bit options (erf_inv at the bin midpoints: variance 1 - 2.0e-5).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.random import threefry2x32_p

BITS_PER_SAMPLE = 16
SAMPLES_PER_HASH = 4  # one Threefry-2x32 hash = 64 bits
COUNTER_HI = 0x6E6F6973  # 'nois': the high counter word, a domain tag
TAIL_BOUND = 4.387511253356934  # float(np.float32(2**16 * phi(ndtri(2**-16)))) == float(|table()[0]|)


@functools.cache
def table() -> np.ndarray:
  """The 2^16 float32 values a draw takes, increasing; T[k] = E[Z | Z in the k-th of 2^16 bins]."""
  import scipy.special  # only here: the table is built once, on first use

  n = 1 << BITS_PER_SAMPLE
  half = n // 2
  # Bin edges a_1 .. a_half of the lower half (a_0 = -inf, a_half = 0).
  edges = scipy.special.ndtri(np.arange(1, half + 1, dtype=np.float64) / n)
  phi = np.exp(-0.5 * edges * edges) / math.sqrt(2.0 * math.pi)
  lo, hi = edges[:-1], edges[1:]
  # phi(lo) - phi(hi) without cancellation: phi(lo) * (1 - exp(-(hi - lo)(hi + lo) / 2)).
  diff = np.empty(half, np.float64)
  diff[0] = -phi[0]  # the first bin: (-inf, a_1), phi(-inf) = 0
  diff[1:] = phi[:-1] * -np.expm1(-0.5 * (hi - lo) * (hi + lo))
  lower = (diff * n).astype(np.float32)
  out = np.concatenate([lower, -lower[::-1]])
  out.setflags(write=False)
  return out


def table_moments() -> dict[str, float]:
  """Exact moments (float64) of the distribution a draw has: uniform over `table()`."""
  t = table().astype(np.float64)
  return {"mean": float(t.mean()), "var": float(np.mean(t**2) - t.mean() ** 2),
          "m3": float(np.mean(t**3)), "m4": float(np.mean(t**4)),
          "tail_bound": float(np.abs(t).max())}


def _threefry_words(key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The two uint32 words of a threefry key, from a raw uint32[2] key or any typed key."""
  if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
    if key.shape != ():
      raise ValueError(f"standard_normal takes one key, got a key array of shape {key.shape}; vmap")
    if str(jax.random.key_impl(key)) != "threefry2x32":
      key = jax.random.bits(key, (2,), jnp.uint32)  # 64 bits of the key's own generator
    else:
      key = jax.random.key_data(key)
  elif key.dtype != jnp.uint32 or key.shape != (2,):
    if key.dtype == jnp.uint32 and key.ndim == 1:  # the raw data of another default implementation
      return _threefry_words(jax.random.wrap_key_data(key))
    raise TypeError(f"standard_normal needs one uint32[2] or typed PRNG key, got {key.dtype}"
                    f"{list(key.shape)}")
  return key[0], key[1]


def _quarters(key: jax.Array, shape: tuple[int, ...]) -> tuple[list[jax.Array], tuple[int, ...]]:
  """The four uint32 arrays of 16-bit uniforms (each of the hash grid's shape) and the grid."""
  k1, k2 = _threefry_words(key)
  full = shape if shape else (1,)
  grid = (*full[:-1], -(-full[-1] // SAMPLES_PER_HASH))
  if math.prod(grid) > 1 << 32:
    raise ValueError(f"standard_normal of shape {shape} needs more than 2^32 hashes")
  strides = np.cumprod((*grid[1:], 1)[::-1])[::-1]
  counter = functools.reduce(lax.add, [
      lax.broadcasted_iota(jnp.uint32, grid, axis) * np.uint32(stride)
      for axis, stride in enumerate(strides)])
  w1, w2 = threefry2x32_p.bind(k1, k2, jnp.full(grid, COUNTER_HI, jnp.uint32), counter)
  mask = np.uint32(0xFFFF)
  return [w1 & mask, w1 >> 16, w2 & mask, w2 >> 16], grid


def _interleave(parts: list[jax.Array], grid: tuple[int, ...], shape: tuple[int, ...]) -> jax.Array:
  """Quarter t of hash cell j -> element 4j + t of the last axis; drop the padding."""
  x = jnp.stack(parts, axis=-1).reshape(*grid[:-1], grid[-1] * SAMPLES_PER_HASH)
  return x[..., :(shape[-1] if shape else 1)].reshape(shape)


def uniform16(key: jax.Array, shape: Sequence[int]) -> jax.Array:
  """The 16-bit uniforms (uint32, 0 .. 65535) of `shape` that `standard_normal` looks up."""
  shape = tuple(int(d) for d in shape)
  if math.prod(shape) == 0:
    _threefry_words(key)  # still check the key
    return jnp.zeros(shape, jnp.uint32)
  parts, grid = _quarters(key, shape)
  return _interleave(parts, grid, shape)


def standard_normal(key: jax.Array, shape: Sequence[int]) -> jax.Array:
  """float32 N(0, 1) of `shape` (2^16 levels, |z| <= TAIL_BOUND), a function of `key` alone:
  `table()[uniform16(key, shape)]`. See the module docstring for the algorithm."""
  shape = tuple(int(d) for d in shape)
  if math.prod(shape) == 0:
    _threefry_words(key)
    return jnp.zeros(shape, jnp.float32)
  parts, grid = _quarters(key, shape)
  t = jnp.asarray(table())
  # Look up each quarter, then interleave: measured faster than interleaving the indices first.
  # The indices are < 2^16 = len(t) by construction, so no clamping.
  return _interleave([t.at[p].get(mode="promise_in_bounds") for p in parts], grid, shape)
