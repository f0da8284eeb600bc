"""Analog layers: `nn.Dense` / `nn.Conv` whose matrix product is an analog product.

    y = ADC( DAC(x) · W̃ + n ) + b,   W̃ = Q_w(W) + weight noise   (DESIGN.md)

`NoisyDense` and `NoisyConv` *are* `nn.Dense` / `nn.Conv` (subclasses, same `kernel`/`bias`
params, same code path). When noise or a converter is on they hand Flax's `dot_general_cls` /
`conv_general_dilated_cls` hook an `AnalogProduct`, which calls the one `analog_product` (DAC,
Q_w, weight noise, the product, output noise, ADC noise, ADC); Flax then adds the bias after it,
as the definition requires. With `noise=None`, a statically-off config and no converters, nothing
is swapped in, so outputs are bitwise those of the plain layers (`NoisyConv`'s depthwise
convolutions on CPU excepted: `conv_op` sums their taps in another order, equal to float32
rounding). Keys come only from the `noise` and `program` RNG streams (see
`freqnoise.analog.product`).

Converters: `quant` (a `ProductQuant`, what models thread from `config.quant`) builds the layer's
own `Quantizer` submodules under `<layer>/analog/{dac,weight,adc}`; with aihwkit's periphery
(`quant.periphery`) the product runs on aihwkit's tiles, a convolution unfolded into patches.
`input_quantizer` (DAC) and `output_quantizer` (ADC) take any other callable or Linen module
mapping an array to an array of the same shape (not together with the same converter of `quant`);
None is the identity.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
from jax import lax

import freqnoise.analog.conv_op as conv_op
from freqnoise.analog.noise import NoiseConfig
from freqnoise.analog.product import LAYOUTS, analog_product, module_rng, vector_axes
from freqnoise.analog.product_quant import ProductQuant
from freqnoise.analog.quant import stateless_quantizer

Quantizer = Callable[[jax.Array], jax.Array] | nn.Module | None


class AnalogProduct(nn.Module):
  """Flax's product hook around `op` (lax.dot_general, lax.conv_general_dilated, jnp.dot, ...):
  calls the one `analog_product` with this module's `make_rng` and converters.

  Called by Flax exactly like `op(lhs, rhs, ...)`; the output has the units on its last axis
  (Dense: [..., features]; Conv: [N, H, W, features]) which is what per-example power averages over.
  `layout` says what the product is, whatever function computes it: 'dense' (lhs [..., F]
  contracted on its last axis: one input vector per leading index, batch and time alike) or 'conv'
  (lhs [N, ..., C]: one example per N). aihwkit's α and LSQ's feature count follow it
  (`freqnoise.analog.product.vector_axes`).
  """

  op: Callable[..., jax.Array]
  layout: str
  noise: NoiseConfig | None = None
  input_quantizer: Quantizer = None
  output_quantizer: Quantizer = None
  quant: ProductQuant | None = None

  @nn.compact
  def __call__(self, lhs: jax.Array, rhs: jax.Array, *args, **kwargs) -> jax.Array:
    if self.layout not in LAYOUTS:
      raise ValueError(f"AnalogProduct.layout must be one of {LAYOUTS}, got {self.layout!r}")
    quant = self.quant or ProductQuant()
    periphery = quant.periphery
    if periphery is not None and (self.input_quantizer is not None
                                  or self.output_quantizer is not None):
      raise ValueError("input_quantizer/output_quantizer cannot be combined with aihwkit's tile "
                       "periphery (quant.periphery)")
    if periphery is not None and (self.layout == "dense" or periphery.conv_alpha == "patch"):
      return self._on_tiles(quant, lhs, rhs, args, kwargs)
    if periphery is not None and (quant.dac is None or quant.adc is None):
      raise ValueError("config.quant.aihwkit.conv_alpha='example' (freqnoise's per-example α, "
                       "without tiles) needs inp_res > 0 and out_res > 0")
    dac, weight, adc = quant.converters("dac", "weight", "adc", layout=self.layout)
    for mine, given, name in ((dac, self.input_quantizer, "input_quantizer"),
                              (adc, self.output_quantizer, "output_quantizer")):
      if mine is not None and given is not None:
        raise ValueError(f"{name} and the same converter of `quant` are both set; give one")
    # aihwkit's α per input vector: a dense product's last axis, a convolution's whole example.
    axes = vector_axes(self.layout, lhs.ndim) if quant.scale_inputs else None
    return analog_product(self.op, lhs, rhs, self.noise, module_rng(self),
                          dac=self.input_quantizer if dac is None else dac,
                          weight_quantizer=weight,
                          adc=self.output_quantizer if adc is None else adc,
                          adc_noise=quant.adc_noise,
                          scale_axes=axes, op_args=args, op_kwargs=kwargs)

  def _on_tiles(self, quant: ProductQuant, lhs, rhs, args, kwargs) -> jax.Array:
    """The product on aihwkit's tiles: a dense lhs [..., F] as it is, a convolution unfolded into
    patches [N, H', W', C·kh·kw] (torch's (C, kh, kw) order, the kernel likewise) so that α, the
    tiles and bound management act per patch, as aihwkit's `AnalogConv2d` does."""
    (weight,) = quant.converters("weight", layout=self.layout)
    dac, adc = (None if c is None else stateless_quantizer(c) for c in (quant.dac, quant.adc))
    if self.layout == "conv":
      lhs, rhs = _patches(lhs, rhs, *args, **kwargs)
    else:  # nn.Dense calls lax.dot_general(x, w, (((x.ndim - 1,), (0,)), ((), ()))); jnp.dot(x, w)
      dims = args[0] if args else kwargs.get("dimension_numbers")
      if rhs.ndim != 2 or dims not in (None, (((lhs.ndim - 1,), (0,)), ((), ()))):
        raise ValueError("aihwkit's tiles take a dense product x [..., F] · w [F, O], got "
                         f"w {rhs.shape} and dimension numbers {dims}")
    y = analog_product(None, lhs, rhs, self.noise, module_rng(self), dac=dac,
                       weight_quantizer=weight, adc=adc,
                       scale_axes=(lhs.ndim - 1,) if quant.scale_inputs else None,
                       periphery=quant.periphery)
    return y


def _patches(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
             dimension_numbers=None, feature_group_count=1, batch_group_count=1, precision=None,
             preferred_element_type=None):
  """(patches [N, H', W', C·kh·kw], kernel [C·kh·kw, O]) of an NHWC / HWIO convolution."""
  if feature_group_count != 1 or batch_group_count != 1:
    raise ValueError("aihwkit's convolutions have one group: a grouped (e.g. depthwise) "
                     "convolution needs config.quant.aihwkit.conv_alpha='example'")
  dims = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  if dims != lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC")):
    raise ValueError(f"aihwkit's per-patch convolution expects NHWC / HWIO, got {dims}")
  patches = lax.conv_general_dilated_patches(
      lhs, rhs.shape[:2], window_strides, padding, lhs_dilation, rhs_dilation,
      ("NHWC", "HWIO", "NHWC"), precision)
  return patches, rhs.transpose(2, 0, 1, 3).reshape(-1, rhs.shape[-1])


def _analog_hook(module, op, layout: str) -> Any:
  """The product class to hand Flax, or None when the layer is exactly the plain layer."""
  noise = module.noise
  if noise is not None and not isinstance(noise, NoiseConfig):
    raise TypeError(f"{type(module).__name__}.noise must be a NoiseConfig or None, got "
                    f"{type(noise).__name__} (build it with noise_from_config)")
  if module.quant is not None and not isinstance(module.quant, ProductQuant):
    raise TypeError(f"{type(module).__name__}.quant must be a ProductQuant or None, got "
                    f"{type(module.quant).__name__} (build it with quant_from_config)")
  noise_off = noise is None or noise.statically_off
  if (noise_off and module.quant is None and module.input_quantizer is None
      and module.output_quantizer is None):
    return None
  # Named only with converters (their variables live under it); without, Flax's automatic name
  # keeps the noise draws of earlier runs (keys fold in the module path).
  name = {"name": "analog"} if module.quant is not None else {}
  return functools.partial(AnalogProduct, op=op, layout=layout, noise=None if noise_off else noise,
                           input_quantizer=module.input_quantizer,
                           output_quantizer=module.output_quantizer, quant=module.quant, **name)


class NoisyDense(nn.Dense):
  """`nn.Dense` computed as an analog product.

  Attributes (besides nn.Dense's features, use_bias, kernel_init, bias_init, ...):
    noise: NoiseConfig or None (None = plain nn.Dense, bitwise).
    quant: ProductQuant or None: DAC, Q_w, ADC and ADC noise (see the module docstring).
    input_quantizer / output_quantizer: optional DAC / ADC callables, identity when None.
  Input [..., in_features] -> output [..., features].
  """

  noise: NoiseConfig | None = None
  quant: ProductQuant | None = None
  input_quantizer: Quantizer = None
  output_quantizer: Quantizer = None

  def __post_init__(self):
    # Always recompute the hook from `noise`, so `clone(noise=...)` never keeps a stale product.
    object.__setattr__(self, "dot_general_cls", _analog_hook(self, lax.dot_general, "dense"))
    super().__post_init__()


class NoisyConv(nn.Conv):
  """`nn.Conv` computed as an analog product at every output position.

  Attributes (besides nn.Conv's features, kernel_size, strides, padding, use_bias,
  feature_group_count, kernel_init, bias_init, ...):
    noise: NoiseConfig or None (None = plain nn.Conv, bitwise).
    quant: ProductQuant or None: DAC, Q_w, ADC and ADC noise (see the module docstring).
    input_quantizer / output_quantizer: optional DAC / ADC callables, identity when None.
  Input NHWC [N, H, W, C] -> output [N, H', W', features].
  """

  noise: NoiseConfig | None = None
  quant: ProductQuant | None = None
  input_quantizer: Quantizer = None
  output_quantizer: Quantizer = None

  def __post_init__(self):
    # `conv_op.conv_general_dilated` is lax's, except depthwise convs on CPU (much faster there).
    if self.conv_general_dilated is None:
      object.__setattr__(self, "conv_general_dilated", conv_op.conv_general_dilated)
    object.__setattr__(self, "conv_general_dilated_cls",
                       _analog_hook(self, self.conv_general_dilated, "conv"))
    super().__post_init__()
