"""The one analog matrix-vector product (DESIGN.md, "Analog matrix-vector product"):

    y = ADC( DAC(x) · W̃ + n + e ),   W̃ = Q_w(W) + weight noise,   n ~ N(0, P / 10^(SNR_dB / 10))

(the layer adds the bias after it), in this order: DAC on the input, weight quantizer Q_w, weight
noise, the product, output (SNR) noise n, ADC noise e ~ N(0, (σ_lsb·Δ)²) in units of the ADC's step
Δ, drawn before the ADC (as above) or after it (y = ADC(·) + e), then the ADC. `NoisyDense`,
`NoisyConv`, every recurrent gate and tied weights call `analog_product`; nothing else applies
DAC, Q_w, weight noise, output noise, ADC noise or ADC.

aihwkit's noise management (`scale_axes`): x is divided by α = max|x| over those axes (each input
vector) before the DAC and the output multiplied by α after the ADC, so DAC and ADC ranges are in
normalised units (REFERENCES.md, "Quantization"). Which axes hold one input vector depends on the
product's layout, not on the function that computes it (`vector_axes`): a dense product ('dense':
Dense, the tied softmax, recurrent gates; x [..., F], batch and time leading) contracts x's last
axis; a convolution ('conv': x [N, ..., C]) takes each example whole.

`groups` products can sit side by side in one fused kernel (the gates of a recurrent cell):
kernel [..., G·H], block k = product k. Per-example power P is then the mean square over each
block's own H units, and additive weight noise scales with each block's own max|W|.

With a `Periphery` (aihwkit's tiles, bound management, clip-only converters, zero vectors:
freqnoise.analog.tiles) the product after Q_w and weight noise runs on aihwkit's tiles; PCM weight
noise (`NoiseConfig.weight_noise = 'pcm'`, freqnoise.analog.pcm) acts per tile there, or on the
whole kernel of a product without one.

Keys come from `rng(stream)`, a `make_rng`-like callable:
* weight noise (PCM included): stream 'program' for programming noise (one realisation of W̃
  per model instance: the caller keeps that stream's key fixed over batches and time steps),
  'noise' for read noise (fresh at every product call) — `NoiseConfig.weight_draw`;
* output noise and ADC noise: stream 'noise' (fresh at every call).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from freqnoise.analog.noise import (NoiseConfig, add_noise, output_noise_variance, perturb_weights,
                                    standard_normal)
from freqnoise.analog.pcm import pcm_weights
from freqnoise.analog.quant import to_channels
from freqnoise.analog.tiles import Periphery, TileSpec, tiled_product

Quantizer = Callable[..., jax.Array] | None
RngFn = Callable[[str], jax.Array]
ADC_NOISE_POSITIONS = ("before", "after")
LAYOUTS = ("dense", "conv")


def vector_axes(layout: str, ndim: int) -> tuple[int, ...]:
  """The axes of an ndim-d product input (or output) that hold one input vector: 'dense' x
  [..., F]: the last axis (every leading batch or time index is its own vector); 'conv' x
  [N, ..., C]: all but the batch axis (aihwkit's vector is an unrolled patch; ours is the example).
  What aihwkit's α and LSQ's feature count N are taken over."""
  if layout not in LAYOUTS:
    raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
  return (ndim - 1,) if layout == "dense" else tuple(range(1, ndim))


class AdcNoise(NamedTuple):
  """Gaussian ADC noise: std `lsb` in units of the ADC's step, added `position` 'before' or
  'after' the ADC quantizer."""
  lsb: float
  position: str = "before"


def is_noisy(noise: NoiseConfig | None) -> bool:
  return noise is not None and not noise.statically_off


def module_rng(module) -> RngFn:
  """`module.make_rng`, with a clear error when the caller gave no key for the stream."""

  def rng(stream: str) -> jax.Array:
    # Flax falls back to the 'params' stream (e.g. in `init(key, ...)`): allow what Flax allows.
    if not (module.has_rng(stream) or module.has_rng("params")):
      hint = (" Programming weight noise is one chip per model instance: pass its own key, fixed "
              "over the batches of one evaluation (e.g. rngs={'noise': k1, 'program': k2}), or set "
              "weight_draw='read'." if stream == "program" else "")
      raise ValueError(f"{type(module).__name__} needs an RNG key for the {stream!r} stream "
                       f"(model.apply(..., rngs={{{stream!r}: key}})).{hint}")
    return module.make_rng(stream)

  return rng


def noisy_weights(rng: RngFn, w: jax.Array, noise: NoiseConfig, groups: int = 1) -> jax.Array:
  """W̃ of `groups` side-by-side products (blocks of the last axis), per `noise.weight_draw`
  (PCM: `analog_product` and the tiles apply it, per tile)."""
  if noise.weight_noise in ("none", "pcm"):
    return w
  key = rng("program" if noise.weight_draw == "programming" else "noise")
  if groups == 1:
    return perturb_weights(key, w, noise.weight_noise, noise.weight_sigma)
  blocks = jnp.split(w, groups, axis=-1)
  keys = jax.random.split(key, groups)
  return jnp.concatenate([perturb_weights(k, b, noise.weight_noise, noise.weight_sigma)
                          for k, b in zip(keys, blocks)], axis=-1)


def analog_product(op: Callable[..., jax.Array], x: jax.Array, w: jax.Array,
                   noise: NoiseConfig | None, rng: RngFn | None, *, groups: int = 1,
                   dac: Quantizer = None, weight_quantizer: Quantizer = None, adc: Quantizer = None,
                   adc_noise: AdcNoise | None = None, scale_axes: tuple[int, ...] | None = None,
                   defer_output_noise: bool = False, op_args: tuple = (),
                   op_kwargs: dict | None = None, periphery: Periphery | None = None):
  """ADC(DAC(x) · W̃ + n + e) with `op(DAC(x), W̃, *op_args, **op_kwargs)` the noiseless product.

  Args:
    op: the product, e.g. `lax.dot_general`, `lax.conv_general_dilated` or `jnp.dot`; its output
      has the units on the last axis ([..., G·H]).
    x, w: its two operands (w's last axis is the output units).
    noise: NoiseConfig or None; None or a statically-off config is exactly noiseless.
    rng: `rng(stream) -> key` (e.g. a module's `make_rng`); may be None when nothing is random.
    groups: G side-by-side products in the fused kernel.
    dac, weight_quantizer, adc: optional quantizers (identity when None). The weight quantizer
      sees the whole kernel (a fused gate kernel is one array: one range, or one per column).
    adc_noise: Gaussian noise in LSB units of `adc`, which must then have a `grid(y)` method
      (`Quantizer`, `stateless_quantizer`); its step is taken under stop_gradient.
    scale_axes: aihwkit's noise management: the axes of x over which α = max|x| is taken (each
      input vector: `vector_axes(layout, x.ndim)`); None = off.
    defer_output_noise: return `(y, variance)` without output noise (or ADC), so a caller that
      only sums several products can add one draw of the summed variance (same distribution).
    periphery: aihwkit's tile periphery (freqnoise.analog.tiles): the product must then be x
      [..., F] · w [F, O] (`op` is not called), `scale_axes` None or the last axis (noise
      management), `dac`/`adc` stateless or None (None: clipped at the periphery's bounds) and
      `adc_noise` None (the periphery's out_noise is the output noise).
  """
  if periphery is not None:
    return _peripheral_product(x, w, noise, rng, groups=groups, dac=dac,
                               weight_quantizer=weight_quantizer, adc=adc, adc_noise=adc_noise,
                               scale_axes=scale_axes, defer=defer_output_noise,
                               periphery=periphery)
  noisy = is_noisy(noise)
  adc_noisy = adc_noise is not None and adc_noise.lsb != 0
  if (noisy or adc_noisy) and rng is None:
    raise ValueError("a noisy analog product needs keys (rng) from the 'noise'/'program' streams")
  if adc_noisy and isinstance(adc_noise.lsb, (int, float)) and not adc_noise.lsb >= 0:
    raise ValueError(f"ADC noise must be >= 0 LSB (a standard deviation), got {adc_noise.lsb!r}")
  if adc_noisy and not hasattr(adc, "grid"):
    raise ValueError("ADC noise is in units of the ADC's step: it needs an ADC quantizer with a "
                     f"grid (a Quantizer or stateless_quantizer), got adc={adc!r}")
  if defer_output_noise and (adc is not None or adc_noisy or scale_axes is not None):
    raise ValueError("output noise can only be deferred for a product without an ADC, ADC noise "
                     "or input scaling")
  alpha = None
  if scale_axes is not None:
    alpha = jnp.max(jnp.abs(jax.lax.stop_gradient(x)), axis=scale_axes, keepdims=True)
    alpha = jnp.where(alpha > 0, alpha, jnp.ones_like(alpha))
    x = x / alpha
  if dac is not None:
    x = dac(x)
  if weight_quantizer is not None:
    w = weight_quantizer(w)
  if noisy:
    w = noisy_weights(rng, w, noise, groups)
  gain = None
  if noisy and noise.weight_noise == "pcm":  # one tile, read without a periphery: a = mean|W|
    w, gain = pcm_weights(_weight_key(rng, noise), w, noise.t_inference, noise.pcm,
                          lambda weights, _: weights)
  y = op(x, w, *op_args, **(op_kwargs or {}))
  if gain is not None:
    y = y * gain
  # A static +inf SNR (weight noise only) draws no output noise at all.
  output_noise = noisy and noise.kind == "output" and not (
      isinstance(noise.snr_db, (int, float)) and noise.snr_db == math.inf)
  if defer_output_noise:
    return y, (output_noise_variance(y, noise, groups) if output_noise else None)
  if output_noise:
    y = add_noise(rng("noise"), y, output_noise_variance(y, noise, groups), noise)
  if adc_noisy:
    y = _noisy_adc(adc, y, adc_noise, rng("noise"))
  elif adc is not None:
    y = adc(y)
  if alpha is not None:  # [..., 1] (dense, per vector) or [N, 1, 1, 1] (conv, per example)
    y = y * alpha
  return y


def _noisy_adc(adc, y: jax.Array, adc_noise: AdcNoise, key: jax.Array) -> jax.Array:
  """ADC(y + e) ('before') or ADC(y) + e ('after'), e = σ_lsb·Δ·ε on the grid of the noiseless y."""
  if adc_noise.position not in ADC_NOISE_POSITIONS:
    raise ValueError(f"ADC noise position must be one of {ADC_NOISE_POSITIONS}, got "
                     f"{adc_noise.position!r}")
  grid = adc.grid(y)
  step = jax.lax.stop_gradient(to_channels(grid.step, adc.config, y.ndim)).astype(y.dtype)
  e = (adc_noise.lsb * step * standard_normal(key, y.shape)).astype(y.dtype)
  return adc(y + e, grid=grid) if adc_noise.position == "before" else adc(y, grid=grid) + e



def _weight_key(rng: RngFn, noise: NoiseConfig) -> jax.Array:
  return rng("program" if noise.weight_draw == "programming" else "noise")


def _peripheral_product(x, w, noise, rng, *, groups, dac, weight_quantizer, adc, adc_noise,
                        scale_axes, defer, periphery: Periphery):
  """`analog_product` on aihwkit's tiles (see its `periphery` argument)."""
  if defer:
    raise ValueError("output noise cannot be deferred for a product on aihwkit's tiles")
  if adc_noise is not None and adc_noise.lsb:
    raise ValueError("a product on aihwkit's tiles takes its output noise from the periphery's "
                     "out_noise, not adc_noise")
  if scale_axes is not None and tuple(a % x.ndim for a in scale_axes) != (x.ndim - 1,):
    raise ValueError(f"aihwkit's noise management scales each input vector (the last axis); got "
                     f"scale_axes={scale_axes} for a {x.ndim}-d input")
  if w.ndim != 2 or x.shape[-1] != w.shape[0]:
    raise ValueError(f"a product on aihwkit's tiles is x [..., F] · w [F, O]; got x {x.shape}, "
                     f"w {w.shape}")
  noisy = is_noisy(noise)
  if noisy and rng is None:
    raise ValueError("a noisy analog product needs keys (rng) from the 'noise'/'program' streams")
  if weight_quantizer is not None:
    w = weight_quantizer(w)
  if noisy:
    w = noisy_weights(rng, w, noise, groups)
  output_noise = noisy and noise.kind == "output" and not (
      isinstance(noise.snr_db, (int, float)) and noise.snr_db == math.inf)
  spec = TileSpec(periphery, dac=dac, adc=adc, noise_management=scale_axes is not None,
                  groups=groups)
  tile_noise = noise if output_noise else None
  key = rng("noise") if (output_noise or periphery.out_noise) else None
  of_tile = None
  if noisy and noise.weight_noise == "pcm":
    pcm_key = _weight_key(rng, noise)

    def of_tile(w_tile, index, forward):
      tile_key = jax.random.fold_in(pcm_key, index)
      # the readouts' output noise is part of the chip: drawn from the programming key
      readout = lambda weights, k: forward(jnp.eye(weights.shape[0], dtype=weights.dtype),
                                           weights, k)
      return pcm_weights(tile_key, w_tile, noise.t_inference, noise.pcm, readout)

  if spec.groups > 1 and tile_noise is not None and periphery.max_output_size and (
      w.shape[1] > periphery.max_output_size):
    raise ValueError("SNR output noise of side-by-side products (groups) needs all outputs on "
                     "one tile: set max_output_size >= the product's outputs (or 0)")
  return tiled_product(spec, x, w, key, tile_noise, of_tile)
