"""The R-CNN heads on pooled RoI features: the Fast R-CNN box head and the 4-conv mask head.

`BoxHead`: flatten the 7x7 RoI features -> FC 1024 -> ReLU -> FC 1024 -> ReLU (mmdetection's
`SharedFCBBoxHead`, 2 shared FCs), then a (K + 1)-way classifier (index 0 = background) and
class-specific box deltas [R, K + 1, 4].
`MaskHead`: four 3x3 convs of 256 with ReLU on the 14x14 RoI features, a 2x2 stride-2 transposed
conv (-> 28x28) with ReLU, and a 1x1 conv to K + 1 mask logits [R, 28, 28, K + 1].
Every conv and FC is an analog product except the transposed conv (exact): the hidden ones under
`noise` / `quant`, the predictors (classifier, box deltas, mask logits: the model's "last"
products) under `out_noise` / `out_quant`.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from freqnoise.analog.layers import NoisyConv, NoisyDense
from freqnoise.analog.noise import NoiseConfig
from freqnoise.analog.product_quant import ProductQuant

_MSRA = nn.initializers.variance_scaling(2.0, "fan_out", "normal")  # Kaiming, mask head convs


class BoxHead(nn.Module):
  """RoI features [R, 7, 7, C] -> (class logits [R, K + 1], box deltas [R, K + 1, 4])."""

  num_classes: int  # K, without the background
  hidden: int = 1024
  noise: NoiseConfig | None = None
  quant: ProductQuant | None = None
  out_noise: NoiseConfig | None = None
  out_quant: ProductQuant | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    x = x.reshape(x.shape[0], -1)
    for i in range(2):
      x = nn.relu(NoisyDense(self.hidden, noise=self.noise, quant=self.quant,
                             name=f"fc{i + 1}")(x))
    logits = NoisyDense(self.num_classes + 1, kernel_init=nn.initializers.normal(0.01),
                        noise=self.out_noise, quant=self.out_quant, name="cls")(x)
    deltas = NoisyDense(4 * (self.num_classes + 1), kernel_init=nn.initializers.normal(0.001),
                        noise=self.out_noise, quant=self.out_quant, name="reg")(x)
    return logits, deltas.reshape(x.shape[0], self.num_classes + 1, 4)


class MaskHead(nn.Module):
  """RoI features [R, 14, 14, C] -> mask logits [R, 28, 28, K + 1]."""

  num_classes: int
  features: int = 256
  num_convs: int = 4
  noise: NoiseConfig | None = None
  quant: ProductQuant | None = None
  out_noise: NoiseConfig | None = None
  out_quant: ProductQuant | None = None

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for i in range(self.num_convs):
      x = nn.relu(NoisyConv(self.features, (3, 3), kernel_init=_MSRA, noise=self.noise,
                            quant=self.quant, name=f"conv{i + 1}")(x))
    x = nn.relu(nn.ConvTranspose(self.features, (2, 2), strides=(2, 2), kernel_init=_MSRA,
                                 name="upsample")(x))
    return NoisyConv(self.num_classes + 1, (1, 1), kernel_init=_MSRA, noise=self.out_noise,
                     quant=self.out_quant, name="logits")(x)
