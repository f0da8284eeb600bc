"""LeNet-style CNN (conv -> pool blocks, then dense layers) with analog matrix products."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from freqnoise.analog.layers import NoisyConv, NoisyDense
from freqnoise.analog.noise import NoiseConfig
from freqnoise.analog.product_quant import ProductQuant, analog_args
from freqnoise.models.registry import register


POOLS = {"max": nn.max_pool, "avg": nn.avg_pool}


@register("lenet")
class LeNet(nn.Module):
  """[Conv(k x k, SAME) -> ReLU -> Pool 2x2] per entry of `conv_features`, flatten,
  [Dense -> ReLU -> Dropout] per entry of `dense_features`, Dense(num_classes).

  With the defaults on 28x28x1 MNIST: 32 and 64 5x5 filters, 512 hidden units (the classic
  TensorFlow MNIST CNN), 1,663,370 parameters.

  `pool` is 'max' (the classic) or 'avg'. Under analog output noise, averaging four noisy values
  shrinks their noise; the max of four picks the largest noise draw.

  Input NHWC [B, H, W, C], output logits [B, num_classes].
  """

  num_classes: int
  conv_features: Sequence[int] = (32, 64)
  kernel_size: int = 5
  dense_features: Sequence[int] = (512,)
  dropout: float = 0.0
  pool: str = "max"
  noise: NoiseConfig | None = None
  quant: ProductQuant | None = None  # DAC / Q_w / ADC of the products (per `quant.layers`)

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if x.ndim != 4:
      raise ValueError(f"lenet expects NHWC images, got shape {x.shape}")
    if self.pool not in POOLS:
      raise ValueError(f"unknown lenet pool {self.pool!r}; expected one of {', '.join(POOLS)}")
    count = len(self.conv_features) + len(self.dense_features) + 1
    analog = lambda i: analog_args(self.noise, self.quant, i, count)
    layer = 0
    for i, features in enumerate(self.conv_features):
      x = NoisyConv(features, (self.kernel_size, self.kernel_size), **analog(layer),
                    name=f"conv{i}")(x)
      x = POOLS[self.pool](nn.relu(x), (2, 2), strides=(2, 2), padding="SAME")
      layer += 1
    x = x.reshape(x.shape[0], -1)
    for i, features in enumerate(self.dense_features):
      x = nn.relu(NoisyDense(features, **analog(layer), name=f"dense{i}")(x))
      if self.dropout:
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
      layer += 1
    return NoisyDense(self.num_classes, **analog(layer), name="logits")(x)
