"""MobileNetV2 (Sandler et al. 2018; torchvision layout, width 1.0) with a spatial or a frequency stem.

  * `stem='spatial'`: 3x3/2 conv to 32 channels, BN, ReLU6 (224x224 image -> 112x112);
    `small_images=True` makes that conv stride 1 (32x32 / 64x64 images).
  * `stem='frequency'`: no stem; the input is DCT coefficients `[B, 112, 112, C]` (896x896 image), and
    the first inverted-residual block (expansion 1: depthwise 3x3 then 1x1 to 16) works on the C
    input channels directly, whatever C is.
`gate=True` puts a `FrequencyGate` on the input. Every conv and the classifier are analog layers
(`noise`, with `noise.layers` counting the first product that reads the input as "first").
Parameters with 1000 classes: 3,504,872 (as torchvision; BN running statistics not counted).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from freqnoise.analog.layers import NoisyConv, NoisyDense
from freqnoise.analog.noise import NoiseConfig
from freqnoise.analog.product_quant import ProductQuant, analog_args
from freqnoise.freq.gate import FrequencyGate
from freqnoise.models.registry import check_stem_input, register

# (expansion t, output channels c, repeats n, first stride s), from the paper's Table 2.
INVERTED_RESIDUAL_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                              (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
_CONV_INIT = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class MobileNetV2(nn.Module):
  """Input NHWC pixels (spatial) or DCT channels (frequency) -> logits `[B, num_classes]`.

  Attributes:
    num_classes: classifier outputs.
    stem: 'spatial' or 'frequency'.
    small_images: stride-1 spatial stem for small images.
    dropout: dropout rate before the classifier (0.2 in the paper).
    gate / gate_*: learned channel gate on the input (`FrequencyGate` attributes).
    noise: NoiseConfig for the analog products, None = exact.
    quant: ProductQuant (DAC / Q_w / ADC) of the analog products, None = float.
  """

  num_classes: int
  stem: str = "spatial"
  small_images: bool = False
  dropout: float = 0.2
  gate: bool = False
  gate_sparsity: float = 0.0
  gate_tau_start: float = 1.0
  gate_tau_end: float = 1.0
  gate_anneal_steps: int = 0
  noise: NoiseConfig | None = None
  quant: ProductQuant | None = None

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    check_stem_input("MobileNetV2", self.stem, x)
    x = x.astype(jnp.float32)
    blocks = [(t, c, s if i == 0 else 1) for t, c, n, s in INVERTED_RESIDUAL_SETTINGS for i in range(n)]
    # Products: stem conv, 2 or 3 per block (expansion 1 has no expand conv), last 1x1 conv, classifier.
    count = (self.stem == "spatial") + sum(2 if t == 1 else 3 for t, _, _ in blocks) + 2
    analog = lambda i: analog_args(self.noise, self.quant, i, count)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9, epsilon=1e-5)
    conv = functools.partial(NoisyConv, use_bias=False, kernel_init=_CONV_INIT)
    if self.gate:
      x = FrequencyGate(sparsity_weight=self.gate_sparsity, tau_start=self.gate_tau_start,
                        tau_end=self.gate_tau_end, anneal_steps=self.gate_anneal_steps,
                        **analog(1), input_noise=analog(0)["noise"], input_quant=analog(0)["quant"],
                        name="input_gate")(x, train=train)
    index = 0
    if self.stem == "spatial":
      x = conv(32, (3, 3), strides=1 if self.small_images else 2, **analog(0), name="stem_conv")(x)
      x = nn.relu6(norm(name="stem_bn")(x))
      index = 1
    for b, (t, c, s) in enumerate(blocks):
      # Without a stem, block 0's first conv reads the input: "first" (as the stem conv would be).
      first_block = self.stem == "frequency" and b == 0
      at = lambda k: analog(0 if first_block and k == 0 else index + k)
      y, k = x, 0
      hidden = x.shape[-1] * t
      if t != 1:
        y = conv(hidden, (1, 1), **at(k), name=f"block{b}_expand")(y)
        y = nn.relu6(norm(name=f"block{b}_expand_bn")(y))
        k += 1
      y = conv(hidden, (3, 3), strides=s, feature_group_count=hidden, **at(k),
               name=f"block{b}_depthwise")(y)
      y = nn.relu6(norm(name=f"block{b}_depthwise_bn")(y))
      y = conv(c, (1, 1), **at(k + 1), name=f"block{b}_project")(y)
      y = norm(name=f"block{b}_project_bn")(y)
      x = x + y if s == 1 and x.shape[-1] == c else y
      index += k + 2
    x = conv(1280, (1, 1), **analog(count - 2), name="last_conv")(x)
    x = nn.relu6(norm(name="last_bn")(x))
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return NoisyDense(self.num_classes, **analog(count - 1), name="classifier")(x)


@register("mobilenet_v2")
def mobilenet_v2(*, num_classes: int, **kwargs) -> MobileNetV2:
  """MobileNetV2, width 1.0; keyword options (noise, quant, ...) as `MobileNetV2`'s attributes."""
  return MobileNetV2(num_classes=num_classes, **kwargs)
