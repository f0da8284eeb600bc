"""Uniform fake quantizers for DACs, ADCs and weights (DESIGN.md, "Quantizers"); the config they
read, `QuantConfig`, is in quant_config.py.

    y = (clip(round(x/Δ) + z, qmin, qmax) − z) · Δ          (z = 0 when symmetric)

Codes and levels (b = `bits`):
* signed (symmetric, weights and bipolar signals), b ≥ 2: codes −(2^(b−1)−1) … 2^(b−1)−1, so 2^b − 1
  levels, zero exact, and ±bound are the end levels (Δ = bound / (2^(b−1)−1)). This is aihwkit's
  `res = 1/(2^b−2)` converter (REFERENCES.md, "Quantization"), not two's complement: the extra
  code −2^(b−1) would make the grid lopsided.
* signed, b = 1: binary, codes ±1, y = sign(x)·bound with sign(0) = +1 (BinaryConnect-style);
  the straight-through range is [−bound, bound] (the hardtanh STE).
* unsigned (asymmetric, activations): codes 0 … 2^b − 1 with an integer zero point z; a range
  [lo, hi] is first widened to contain 0 (so zeros and ReLU outputs stay exact), Δ = (hi − lo) /
  (2^b − 1), z = round(−lo/Δ) (Jacob et al. 2018). A scalar bound B means [0, B] (z = 0).

Rounding is `jnp.round` (half to even). Stochastic rounding is floor(x/Δ + u), u ~ U[0, 1) drawn
from an explicit key (binary: P(+1) = (1 + x/Δ)/2): unbiased inside the range.

Gradient (one `jax.custom_vjp`): straight-through for x — 1 where x/Δ is in the closed code range,
0 outside; for Δ none ('ste'), LSQ's (Esser et al. 2020, × 1/sqrt(N·qmax), N the elements of one
example sharing the step, never the batch: `quant_module.lsq_count`) or PACT's (Choi et al. 2018).
Ranges: 'fixed' (given), 'dynamic' (max|x| or min/max of the tensor itself at each call: the usual
choice for weights, Qwix's absmax/minmax), 'tracked' (their EMA, in 'quant_ranges'), 'learned'
(LSQ step or PACT clip, a param); the last two need `quant_module.Quantizer`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

# The config half lives in quant_config.py; its names are re-exported here, where callers look.
from freqnoise.analog.quant_config import (COLLECTION, LEARNED, MODES,  # noqa: F401
                                           QuantConfig)


class Grid(NamedTuple):
  """A quantization grid: y = (code − zero_point)·step. Shapes () or [C] (per channel)."""
  step: jax.Array
  zero_point: jax.Array  # integer-valued floats; 0 for symmetric grids


def channel_axis(config: QuantConfig, ndim: int) -> int | None:
  """The non-negative per-channel axis of an ndim-d x, or None (per tensor)."""
  if config.per_channel is None:
    return None
  if not -ndim <= config.per_channel < ndim:
    raise ValueError(f"QuantConfig.per_channel={config.per_channel} is not an axis of a {ndim}-d "
                     "array")
  return config.per_channel % ndim


def to_channels(v: jax.Array, config: QuantConfig, ndim: int) -> jax.Array:
  """A () or [C] range/step reshaped to broadcast against an ndim-d x along the channel axis."""
  axis = channel_axis(config, ndim)
  v = jnp.asarray(v)
  if axis is None or v.ndim == 0:
    return v
  return v.reshape([-1 if a == axis else 1 for a in range(ndim)])


def data_range(x: jax.Array, config: QuantConfig) -> tuple[jax.Array, jax.Array]:
  """(lo, hi) of x, shapes () or [C], under stop_gradient: (−max|x|, max|x|) if signed, else
  (min x, max x)."""
  x = jax.lax.stop_gradient(x)
  axis = channel_axis(config, x.ndim)
  axes = tuple(a for a in range(x.ndim) if a != axis)
  if config.signed:
    hi = jnp.max(jnp.abs(x), axis=axes)
    return -hi, hi
  return jnp.min(x, axis=axes), jnp.max(x, axis=axes)


def grid_from_range(config: QuantConfig, lo, hi) -> Grid:
  """The grid whose end levels are ±hi (signed; lo is ignored) or that covers [lo, hi] ∪ {0}."""
  hi = jnp.asarray(hi, jnp.float32)
  if config.signed:
    return Grid(_positive(hi / config.qmax), jnp.zeros_like(hi))
  lo, hi = jnp.minimum(jnp.asarray(lo, jnp.float32), 0), jnp.maximum(hi, 0)
  step = _positive((hi - lo) / config.qmax)
  return Grid(step, jnp.clip(jnp.round(-lo / step), 0, config.qmax))


def _positive(step: jax.Array) -> jax.Array:
  return jnp.where(step > 0, step, jnp.ones_like(step))  # an all-zero tensor: any step keeps 0


def stateless_grid(x: jax.Array, config: QuantConfig) -> Grid:
  """The grid of a 'fixed' or 'dynamic' config for this x."""
  if config.mode == "fixed":
    bound = config.bound
    lo, hi = bound if isinstance(bound, tuple) else (-bound if config.signed else 0.0, bound)
    return grid_from_range(config, lo, hi)
  if config.mode == "dynamic":
    return grid_from_range(config, *data_range(x, config))
  raise _stateful(config)


def _stateful(config: QuantConfig) -> ValueError:
  return ValueError(f"QuantConfig.mode {config.mode!r} keeps state (a tracked range or a learned "
                    "step): use freqnoise.analog.quant_module.Quantizer")


def fake_quant(x: jax.Array, config: QuantConfig, grid: Grid | None = None, *,
               key: jax.Array | None = None, grad: str = "ste", grad_scale: float = 1.0):
  """x fake-quantized: the nearest level of the grid (same shape and dtype as x).

  Args:
    x: any shape; per-channel grids run along `config.per_channel`.
    grid: step and zero point, () or [C]; default: the config's 'fixed' or 'dynamic' grid.
    key: the uniform draws of stochastic rounding (required when `config.stochastic`).
    grad: the step's gradient: 'ste' (none), 'lsq' (× `grad_scale`) or 'pact' (`_quant_bwd`).
  """
  if config.stochastic and key is None:
    raise ValueError("stochastic rounding (QuantConfig.stochastic=True) needs a key: pass key=...")
  if grad not in ("ste", "lsq", "pact"):
    raise ValueError(f"fake_quant grad must be 'ste', 'lsq' or 'pact', got {grad!r}")
  if grid is None:
    grid = stateless_grid(x, config)
  step = to_channels(grid.step, config, x.ndim).astype(x.dtype)
  zero = to_channels(grid.zero_point, config, x.ndim).astype(x.dtype)
  noise = jax.random.uniform(key, x.shape, x.dtype) if config.stochastic else None
  binary = config.signed and config.bits == 1
  return _quant(grad, float(grad_scale), binary, x, step, config.qmin - zero, config.qmax - zero,
                noise)


@dataclasses.dataclass(frozen=True)
class StatelessQuantizer:
  """`q(x)`, `q(x, grid=g)` and `q.grid(x)` of a 'fixed' or 'dynamic' config, as `Quantizer` has."""
  config: QuantConfig
  key: jax.Array | None = None

  def grid(self, x: jax.Array) -> Grid:
    return stateless_grid(x, self.config)

  def __call__(self, x: jax.Array, *, grid: Grid | None = None) -> jax.Array:
    return fake_quant(x, self.config, grid, key=self.key)


def stateless_quantizer(config: QuantConfig, key: jax.Array | None = None) -> StatelessQuantizer:
  """A 'fixed' or 'dynamic' config as a plain function: a slot of `analog_product` (DAC, weights,
  ADC). A stochastic one uses `key` at every call (the same draws); the `Quantizer` module takes
  a fresh key from the 'noise' stream instead."""
  if config.mode not in ("fixed", "dynamic"):
    raise _stateful(config)
  if config.stochastic and key is None:
    raise ValueError("stochastic rounding (QuantConfig.stochastic=True) needs a key: "
                     "stateless_quantizer(config, key=...)")
  return StatelessQuantizer(config, key)


def _codes(u, kmin, kmax, noise, binary):
  if binary:
    return jnp.where(u >= 0 if noise is None else noise < (1 + u) / 2, 1.0, -1.0).astype(u.dtype)
  k = jnp.round(u) if noise is None else jnp.floor(u + noise)
  return jnp.clip(k, kmin, kmax)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _quant(grad, grad_scale, binary, x, step, kmin, kmax, noise):
  return _quant_fwd(grad, grad_scale, binary, x, step, kmin, kmax, noise)[0]


def _quant_fwd(grad, grad_scale, binary, x, step, kmin, kmax, noise):
  u = x / step
  k = _codes(u, kmin, kmax, noise, binary)
  return k * step, (u, k, step, kmin, kmax, noise)


def _quant_bwd(grad, grad_scale, binary, res, ct):
  """dx = ct where kmin ≤ x/Δ ≤ kmax, else 0. dΔ: 'ste' 0; 'lsq' g·Σ ct·(k − x/Δ inside, k
  outside) (Esser et al. 2020, eq. 3); 'pact' Σ ct·k outside only, so that with Δ = α/qmax,
  dα = Σ ct·[x > α] (− Σ ct·[x < −α] if signed), Choi et al. 2018, eq. 3."""
  u, k, step, kmin, kmax, noise = res
  inside = (u >= kmin) & (u <= kmax)
  dx = jnp.where(inside, ct, 0)
  if grad == "ste":
    dstep = jnp.zeros_like(step)
  else:
    per_elem = jnp.where(inside, k - u if grad == "lsq" else 0, k) * ct
    dstep = _sum_to(per_elem, step.shape) * (grad_scale if grad == "lsq" else 1)
  zero = lambda v: None if v is None else jnp.zeros_like(v)
  return dx, dstep, zero(kmin), zero(kmax), zero(noise)


_quant.defvjp(_quant_fwd, _quant_bwd)


def _sum_to(a: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """Sums a (broadcast from `shape`) back down to `shape`."""
  if not shape:
    return jnp.sum(a)
  axes = tuple(i for i, (n, m) in enumerate(zip(shape, a.shape)) if n == 1 and m != 1)
  return jnp.sum(a, axis=axes, keepdims=True)
