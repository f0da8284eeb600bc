"""Multi-layer perceptron with analog (optionally noisy) matrix products."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from freqnoise.analog.layers import NoisyDense
from freqnoise.analog.noise import NoiseConfig
from freqnoise.analog.product_quant import ProductQuant, analog_args
from freqnoise.models.registry import register


@register("mlp")
class MLP(nn.Module):
  """Flatten -> [Dense -> ReLU -> Dropout] x len(hidden) -> Dense(num_classes).

  Attributes:
    num_classes: output logits.
    hidden: widths of the hidden layers.
    dropout: dropout rate on hidden activations (training only).
    noise: analog noise of the products; which ones are analog follows `noise.layers`.
    quant: DAC / Q_w / ADC of the products; which ones follows `quant.layers`.
  Input [B, ...] (flattened), output logits [B, num_classes].
  """

  num_classes: int
  hidden: Sequence[int] = (256, 128)
  dropout: float = 0.0
  noise: NoiseConfig | None = None
  quant: ProductQuant | None = None

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = x.reshape(x.shape[0], -1)
    count = len(self.hidden) + 1
    analog = lambda i: analog_args(self.noise, self.quant, i, count)
    for i, width in enumerate(self.hidden):
      x = NoisyDense(width, **analog(i), name=f"dense{i}")(x)
      x = nn.relu(x)
      if self.dropout:
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return NoisyDense(self.num_classes, **analog(count - 1), name="logits")(x)
