"""aihwkit's tile periphery around the analog product (`config.quant.preset = 'aihwkit'`;
REFERENCES.md "IBM aihwkit semantics"; aihwkit 1.1.0 `TileModuleArray` and the C++ tile's
`ForwardBackwardPassIOManaged::forwardVector`, which `InferenceRPUConfig` runs on CPU):

* Tiles: a weight [F, O] with F > max_input_size (O > max_output_size) is split into n =
  ceil(F / max_input_size) near-equal input chunks (the first F mod n one longer), likewise the
  outputs; every tile has its own periphery, and the outputs of the input chunks are summed
  digitally. 0 = no splitting.
* Noise management: each input vector of a tile is scaled by α = max|x| before the DAC and its
  output by α after the ADC. A vector with α = 0 gives exact zeros (no output noise).
* DAC / ADC: a converter (res > 0, `QuantConfig.from_aihwkit`) or, res ≤ 0, infinite resolution
  but still clipped at ±bound. Output noise N(0, out_noise²) before the ADC.
* Bound management 'iterative': when an output of a vector clips (its discretised value beyond
  ±out_bound, tested in aihwkit's float32 arithmetic), that vector's product is recomputed with its
  input scaled down by 2 (fresh noise), until nothing clips or the reduction exceeds
  `max_bm_factor` or `max_bm_res / Δ_DAC` — at most `Periphery.bm_rounds` products, run as a
  bounded `lax.while_loop` (a round only while some vector still clips). Its gradient (a
  `custom_vjp`) is that of the accepted round, with that round's noise held fixed.
Convolutions (layers.py) unfold their input into patches first: α, tiles and bound management are
then per patch, as in aihwkit's `AnalogConv2d` (torch `unfold`, features in (C, kh, kw) order).

PCM programming noise and drift (freqnoise.analog.pcm) act per tile, on the tile's own weights.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from freqnoise.analog.noise import NoiseConfig, output_noise_variance, standard_normal

BOUND_MANAGEMENTS = ("iterative", "none")
CONV_ALPHAS = ("patch", "example")
ZERO_VECTORS = ("zeros", "noisy")


@dataclasses.dataclass(frozen=True)
class Periphery:
  """The periphery of every tile (hashable: a Flax module attribute).

  Attributes:
    inp_bound, out_bound: DAC / ADC range ±bound (normalised units); also the clip of a converter
      of infinite resolution.
    out_noise: std of the Gaussian output noise before the ADC (normalised units).
    inp_step, out_step: aihwkit's DAC / ADC step, float32(res)·2·bound in float32 (0 = infinite
      resolution): the bound test and the bound-management limit use its arithmetic.
    bound_management: 'iterative' (aihwkit's default) or 'none'.
    max_bm_factor, max_bm_res: bound management stops once the reduction r exceeds max_bm_factor
      or max_bm_res / inp_step.
    max_input_size, max_output_size: tile size (0 = one tile along that axis).
    conv_alpha: 'patch' (aihwkit: a convolution's input vector is an unfolded patch) or 'example'
      (one α per example, no tiles or bound management: freqnoise's convolution before).
    zero_vectors: 'zeros' (aihwkit: α = 0 gives exact zeros) or 'noisy' (the periphery runs, noise
      included, on the zero vector).
  """

  inp_bound: float = 1.0
  out_bound: float = 12.0
  out_noise: float = 0.0
  inp_step: float = 0.0
  out_step: float = 0.0
  bound_management: str = "iterative"
  max_bm_factor: int = 1000
  max_bm_res: float = 0.25
  max_input_size: int = 512
  max_output_size: int = 512
  conv_alpha: str = "patch"
  zero_vectors: str = "zeros"

  def __post_init__(self):
    for name, choices in (("bound_management", BOUND_MANAGEMENTS), ("conv_alpha", CONV_ALPHAS),
                          ("zero_vectors", ZERO_VECTORS)):
      if getattr(self, name) not in choices:
        raise ValueError(f"Periphery.{name} must be one of {choices}, got {getattr(self, name)!r}")
    for name in ("inp_bound", "out_bound"):
      v = getattr(self, name)
      if not (isinstance(v, (int, float)) and v > 0):
        raise ValueError(f"Periphery.{name} must be > 0 (inf = unbounded), got {v!r}")
    for name in ("out_noise", "inp_step", "out_step", "max_bm_res"):
      v = getattr(self, name)
      if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
        raise ValueError(f"Periphery.{name} must be a finite number >= 0, got {v!r}")
    for name in ("max_bm_factor", "max_input_size", "max_output_size"):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"Periphery.{name} must be an int >= 0, got {v!r}")
    if self.bound_management == "iterative" and not math.isfinite(self.out_bound):
      raise ValueError("Periphery.bound_management='iterative' needs a finite out_bound")

  @property
  def bm_rounds(self) -> int:
    """Products bound management may run per vector: the reduction r = 1, 2, 4, … stops at the
    first r with int(r) > max_bm_factor or r > max_bm_res / inp_step (float32, as the C++ tile)."""
    if self.bound_management == "none":
      return 1
    f32 = np.float32
    limit = f32(self.max_bm_res) / f32(self.inp_step) if self.inp_step > 0 else np.inf
    r, rounds = f32(1), 1
    while not (int(r) > self.max_bm_factor or r > limit):
      r, rounds = r * f32(2), rounds + 1
    return rounds


def split_sizes(size: int, max_size: int) -> list[int]:
  """aihwkit's `TileModuleArray.get_split_sizes`: ceil(size / max_size) near-equal chunks."""
  if max_size <= 0:
    return [size]
  n = -(-size // max_size)
  base, extra = divmod(size, n)
  return [base + (i < extra) for i in range(n)]


def dot(x: jax.Array, w: jax.Array) -> jax.Array:
  """The product of a tile: x [..., F] · w [F, O]."""
  return jnp.matmul(x, w)


def diagonal_dot(x: jax.Array, w: jax.Array) -> jax.Array:
  """`dot` for a diagonal x [F, F] (a tile read with one-hot inputs, whose DAC keeps zeros zero):
  row i of the output is x[i, i]·w[i] — the same numbers without the F²·O multiply."""
  return jnp.diagonal(x)[:, None] * w


@dataclasses.dataclass(frozen=True)
class TileSpec:
  """What one tile forward needs besides its arrays (static, hashable).

  op: `dot` or `diagonal_dot`; dac, adc: stateless converters or None (clip only);
  noise_management: α = max|x| per vector; noise: the static part of the SNR output noise (its
  leaves are arguments); groups: fused side-by-side products (SNR power per block)."""
  periphery: Periphery
  op: Callable = dot
  dac: Callable | None = None
  adc: Callable | None = None
  noise_management: bool = True
  groups: int = 1


def _clips(y: jax.Array, p: Periphery) -> jax.Array:
  """[..., 1]: whether a vector's output clips, in aihwkit's float32 arithmetic: its discretised
  value round(y/Δ)·Δ beyond ±out_bound (so with the default ADC the top code 255·Δ = 12.000001
  counts as clipping)."""
  if p.out_step > 0:
    step = jnp.float32(p.out_step)
    y = jnp.round(y.astype(jnp.float32) / step) * step
  bound = jnp.float32(p.out_bound)
  return jnp.any((y > bound) | (y < -bound), axis=-1, keepdims=True)


def _mv(spec: TileSpec, x, w, scale, eps, noise: NoiseConfig | None):
  """One round: (ADC(op(DAC(x·scale), w) + n) / scale, clipped [..., 1]); scale [..., 1] =
  1 / (α·r), eps [..., O] the round's standard normals."""
  p = spec.periphery
  xs = x * scale
  xs = spec.dac(xs) if spec.dac is not None else jnp.clip(xs, -p.inp_bound, p.inp_bound)
  y = spec.op(xs, w)
  variance = None
  if noise is not None:  # SNR output noise of the tile's own product (0 where SNR = inf)
    snr_inf = jnp.isposinf(jnp.asarray(noise.snr_db, jnp.float32))
    variance = jnp.where(snr_inf, 0.0, output_noise_variance(y, noise, spec.groups))
  if p.out_noise:
    variance = p.out_noise**2 if variance is None else variance + p.out_noise**2
  if variance is not None:  # two independent Gaussians: one draw of the summed variance
    y = y + (jnp.sqrt(variance) * eps).astype(y.dtype)
  clipped = _clips(y, p)
  y = spec.adc(y) if spec.adc is not None else jnp.clip(y, -p.out_bound, p.out_bound)
  return y * (1 / scale), clipped


def _round_eps(key, k, shape):
  return standard_normal(jax.random.fold_in(key, k), shape)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _bound_managed(spec: TileSpec, x, w, inv_alpha, noise, key):
  return _bm_fwd(spec, x, w, inv_alpha, noise, key)[0]


def _bm_fwd(spec, x, w, inv_alpha, noise, key):
  """Rounds r = 2^k, k < bm_rounds, while some vector still clips; each vector keeps the first
  round in which it does not (or the last)."""
  rounds = spec.periphery.bm_rounds
  shape = x.shape[:-1] + (w.shape[-1],)

  def body(state):
    k, done, y, scale, eps = state
    s = inv_alpha / jnp.exp2(k.astype(jnp.float32))
    e = _round_eps(key, k, shape)
    y_k, clipped = _mv(spec, x, w, s, e, noise)
    take = ~done & (~clipped | (k == rounds - 1))
    return (k + 1, done | take, jnp.where(take, y_k, y), jnp.where(take, s, scale),
            jnp.where(take, e, eps))

  def cond(state):
    return (state[0] < rounds) & ~jnp.all(state[1])

  done = jnp.zeros(shape[:-1] + (1,), bool)
  init = (jnp.zeros((), jnp.int32), done, jnp.zeros(shape, x.dtype), jnp.ones_like(inv_alpha),
          jnp.zeros(shape, jnp.float32))
  _, _, y, scale, eps = jax.lax.while_loop(cond, body, init)
  return y, (x, w, scale, eps, noise, key)


def _bm_bwd(spec, residuals, ct):
  x, w, scale, eps, noise, key = residuals
  _, vjp = jax.vjp(lambda x, w: _mv(spec, x, w, scale, eps, noise)[0], x, w)
  dx, dw = vjp(ct)
  zeros = jax.tree.map(jnp.zeros_like, noise)
  return dx, dw, None, zeros, None


_bound_managed.defvjp(_bm_fwd, _bm_bwd)


def tile_forward(spec: TileSpec, x: jax.Array, w: jax.Array, key: jax.Array | None,
                 noise: NoiseConfig | None = None) -> jax.Array:
  """One tile's output [..., O] for x [..., F] and w [F, O]: noise management, DAC, product,
  output noise, ADC and bound management. `key` draws the output noise (None: noiseless)."""
  p = spec.periphery
  x32 = jax.lax.stop_gradient(x)
  if spec.noise_management:
    alpha = jnp.max(jnp.abs(x32), axis=-1, keepdims=True)
    zero = alpha <= 0
    inv_alpha = 1 / jnp.where(zero, jnp.ones_like(alpha), alpha)
  else:
    zero, inv_alpha = None, jnp.ones(x.shape[:-1] + (1,), x.dtype)
  random = noise is not None or p.out_noise > 0
  if random and key is None:
    raise ValueError("a tile with output noise needs a key")
  key = key if random else jax.random.key(0)  # unused draws of a noiseless tile
  if p.bm_rounds == 1:
    shape = x.shape[:-1] + (w.shape[-1],)
    eps = _round_eps(key, 0, shape) if random else jnp.zeros(shape, jnp.float32)
    y = _mv(spec, x, w, inv_alpha, eps, noise)[0]
  else:
    y = _bound_managed(spec, x, w, inv_alpha, noise, key)
  if zero is not None and p.zero_vectors == "zeros":
    y = jnp.where(zero, jnp.zeros_like(y), y)
  return y


def tiled_product(spec: TileSpec, x: jax.Array, w: jax.Array, key: jax.Array | None,
                  noise: NoiseConfig | None = None,
                  weights_of_tile: Callable | None = None) -> jax.Array:
  """x [..., F] · w [F, O] on aihwkit's tiles: each input chunk's tiles computed by `tile_forward`,
  the chunks' outputs summed digitally. `weights_of_tile(w_tile, index, forward)` may replace a
  tile's weights and scale its output (PCM noise and drift compensation: it returns (w̃, c) and
  the tile's output is c·forward(x, w̃)); `forward(x, w, key)` reads the same tile."""
  p = spec.periphery
  ins, outs = split_sizes(w.shape[0], p.max_input_size), split_sizes(w.shape[1], p.max_output_size)
  x_chunks = jnp.split(x, np.cumsum(ins)[:-1], axis=-1)
  w_rows = jnp.split(w, np.cumsum(ins)[:-1], axis=0)
  total = None
  for i, (xi, wi) in enumerate(zip(x_chunks, w_rows)):
    parts = []
    for j, wij in enumerate(jnp.split(wi, np.cumsum(outs)[:-1], axis=1)):
      index = i * len(outs) + j
      tile_key = None if key is None else jax.random.fold_in(key, index)
      if weights_of_tile is None:
        parts.append(tile_forward(spec, xi, wij, tile_key, noise))
        continue
      forward = functools.partial(tile_forward, dataclasses.replace(spec, op=diagonal_dot),
                                  noise=noise)
      wij, gain = weights_of_tile(wij, index, forward)
      parts.append(gain * tile_forward(spec, xi, wij, tile_key, noise))
    y = parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=-1)
    total = y if total is None else total + y
  return total
