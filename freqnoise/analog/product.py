"""The one analog matrix-vector product (DESIGN.md, "Analog matrix-vector product"):

    y = ADC( DAC(x) · W̃ + n ),   W̃ = W + weight noise,   n ~ N(0, P / 10^(SNR_dB / 10))

(the layer adds the bias after it). `NoisyDense`, `NoisyConv`, every recurrent gate and tied weights
call `analog_product`; nothing else applies DAC, weight noise, output noise or ADC.

`groups` products can sit side by side in one fused kernel (the gates of a recurrent cell):
kernel [..., G·H], block k = product k. Per-example power P is then the mean square over each
block's own H units, and additive weight noise scales with each block's own max|W|.

Keys come from `rng(stream)`, a `make_rng`-like callable:
* weight noise: stream 'program' for programming noise (one realisation of W̃ per model instance:
  the caller keeps that stream's key fixed over batches and time steps), 'noise' for read noise
  (fresh at every product call) — `NoiseConfig.weight_draw`;
* output noise: stream 'noise' (fresh at every call).
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from freqnoise.analog.noise import NoiseConfig, add_noise, output_noise_variance, perturb_weights

Quantizer = Callable[[jax.Array], jax.Array] | None
RngFn = Callable[[str], jax.Array]


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
  """W̃ of `groups` side-by-side products (blocks of the last axis), per `noise.weight_draw`."""
  if noise.weight_noise == "none":
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
                   dac: Quantizer = None, adc: Quantizer = None, defer_output_noise: bool = False,
                   op_args: tuple = (), op_kwargs: dict | None = None):
  """ADC(DAC(x) · W̃ + n) with `op(DAC(x), W̃, *op_args, **op_kwargs)` the noiseless product.

  Args:
    op: the product, e.g. `lax.dot_general`, `lax.conv_general_dilated` or `jnp.dot`; its output
      has the units on the last axis ([..., G·H]).
    x, w: its two operands (w's last axis is the output units).
    noise: NoiseConfig or None; None or a statically-off config is exactly noiseless.
    rng: `rng(stream) -> key` (e.g. a module's `make_rng`); may be None when noiseless.
    groups: G side-by-side products in the fused kernel.
    dac, adc: optional quantizers (identity when None).
    defer_output_noise: return `(y, variance)` without output noise (or ADC), so a caller that
      only sums several products can add one draw of the summed variance (same distribution).
  """
  noisy = is_noisy(noise)
  if noisy and rng is None:
    raise ValueError("a noisy analog product needs keys (rng) from the 'noise'/'program' streams")
  if dac is not None:
    x = dac(x)
  if noisy:
    w = noisy_weights(rng, w, noise, groups)
  y = op(x, w, *op_args, **(op_kwargs or {}))
  # A static +inf SNR (weight noise only) draws no output noise at all.
  output_noise = noisy and noise.kind == "output" and not (
      isinstance(noise.snr_db, (int, float)) and noise.snr_db == math.inf)
  if defer_output_noise:
    if adc is not None:
      raise ValueError("output noise can only be deferred for a product without an ADC")
    return y, (output_noise_variance(y, noise, groups) if output_noise else None)
  if output_noise:
    y = add_noise(rng("noise"), y, output_noise_variance(y, noise, groups), noise)
  if adc is not None:
    y = adc(y)
  return y
