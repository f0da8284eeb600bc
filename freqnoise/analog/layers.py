"""Analog layers: `nn.Dense` / `nn.Conv` whose matrix product is an analog product.

    y = ADC( DAC(x) · W̃ + n ) + b          (DESIGN.md, "Analog matrix-vector product")

`NoisyDense` and `NoisyConv` *are* `nn.Dense` / `nn.Conv` (subclasses, same `kernel`/`bias`
params, same code path). When noise is on they hand Flax's `dot_general_cls` /
`conv_general_dilated_cls` hook an `AnalogProduct`, which calls the one `analog_product` (DAC,
weight noise, the product, output noise, ADC); Flax then adds the bias after it, as the definition
requires. With
`noise=None`, a statically-off config and no quantizers, nothing is swapped in, so outputs are
bitwise those of the plain layers. Keys come only from the `noise` and `program` RNG streams (see `freqnoise.analog.product`).

Quantizer hook: `input_quantizer` (DAC) and `output_quantizer` (ADC) take any callable or Linen
module mapping an array to an array of the same shape; None is the identity.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
from jax import lax

from freqnoise.analog.noise import NoiseConfig
from freqnoise.analog.product import analog_product, module_rng

Quantizer = Callable[[jax.Array], jax.Array] | nn.Module | None


class AnalogProduct(nn.Module):
  """Flax's product hook around `op` (lax.dot_general or lax.conv_general_dilated): calls the one
  `analog_product` with this module's `make_rng`.

  Called by Flax exactly like `op(lhs, rhs, ...)`; the output has the units on its last axis
  (Dense: [..., features]; Conv: [N, H, W, features]) which is what per-example power averages over.
  """

  op: Callable[..., jax.Array]
  noise: NoiseConfig | None = None
  input_quantizer: Quantizer = None
  output_quantizer: Quantizer = None

  def __call__(self, lhs: jax.Array, rhs: jax.Array, *args, **kwargs) -> jax.Array:
    return analog_product(self.op, lhs, rhs, self.noise, module_rng(self), dac=self.input_quantizer,
                          adc=self.output_quantizer, op_args=args, op_kwargs=kwargs)


def _analog_hook(module, op) -> Any:
  """The product class to hand Flax, or None when the layer is exactly the plain layer."""
  noise = module.noise
  if noise is not None and not isinstance(noise, NoiseConfig):
    raise TypeError(f"{type(module).__name__}.noise must be a NoiseConfig or None, got "
                    f"{type(noise).__name__} (build it with noise_from_config)")
  noise_off = noise is None or noise.statically_off
  if noise_off and module.input_quantizer is None and module.output_quantizer is None:
    return None
  return functools.partial(AnalogProduct, op=op, noise=None if noise_off else noise,
                           input_quantizer=module.input_quantizer,
                           output_quantizer=module.output_quantizer)


class NoisyDense(nn.Dense):
  """`nn.Dense` computed as an analog product.

  Attributes (besides nn.Dense's features, use_bias, kernel_init, bias_init, ...):
    noise: NoiseConfig or None (None = plain nn.Dense, bitwise).
    input_quantizer / output_quantizer: optional DAC / ADC, identity when None.
  Input [..., in_features] -> output [..., features].
  """

  noise: NoiseConfig | None = None
  input_quantizer: Quantizer = None
  output_quantizer: Quantizer = None

  def __post_init__(self):
    # Always recompute the hook from `noise`, so `clone(noise=...)` never keeps a stale product.
    object.__setattr__(self, "dot_general_cls", _analog_hook(self, lax.dot_general))
    super().__post_init__()


class NoisyConv(nn.Conv):
  """`nn.Conv` computed as an analog product at every output position.

  Attributes (besides nn.Conv's features, kernel_size, strides, padding, use_bias,
  feature_group_count, kernel_init, bias_init, ...):
    noise: NoiseConfig or None (None = plain nn.Conv, bitwise).
    input_quantizer / output_quantizer: optional DAC / ADC, identity when None.
  Input NHWC [N, H, W, C] -> output [N, H', W', features].
  """

  noise: NoiseConfig | None = None
  input_quantizer: Quantizer = None
  output_quantizer: Quantizer = None

  def __post_init__(self):
    object.__setattr__(self, "conv_general_dilated_cls",
                       _analog_hook(self, lax.conv_general_dilated))
    super().__post_init__()
