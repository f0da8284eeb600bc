"""Feature pyramid (Lin et al. 2017) and the RPN head shared by its levels.

`FPN`: lateral 1x1 convs on C2..C5, top-down nearest-neighbour upsampling and sums, 3x3 output
convs -> P2..P5, and P6 = 1x1 max-pool with stride 2 of P5 (the 5th level RPN anchors use, as
torchvision / mmdetection's `num_outs=5`). Every conv is an analog product (`noise`), exact when
`noise` is None. Xavier-uniform weights and zero biases, as mmdetection's FPN.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from freqnoise.analog.layers import NoisyConv
from freqnoise.analog.noise import NoiseConfig
from freqnoise.analog.product_quant import ProductQuant

_XAVIER = nn.initializers.xavier_uniform()
_HEAD_INIT = nn.initializers.normal(0.01)  # RPN convs, as mmdetection / torchvision


def _upsample_to(x: jax.Array, like: jax.Array) -> jax.Array:
  """Nearest-neighbour upsampling of `x` [B, h, w, C] to `like`'s spatial size (x2, cropped)."""
  b, h, w, c = like.shape
  up = jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)
  return up[:, :h, :w]


class FPN(nn.Module):
  """[C2, C3, C4, C5] -> [P2, P3, P4, P5, P6], `features` channels each."""

  features: int = 256
  noise: NoiseConfig | None = None
  quant: ProductQuant | None = None

  @nn.compact
  def __call__(self, inputs: Sequence[jax.Array]) -> list[jax.Array]:
    if len(inputs) != 4:
      raise ValueError(f"FPN expects 4 backbone levels C2..C5, got {len(inputs)}")
    conv = lambda k, name: NoisyConv(self.features, (k, k), kernel_init=_XAVIER, noise=self.noise,
                                     quant=self.quant, name=name)
    laterals = [conv(1, f"lateral{i + 2}")(c) for i, c in enumerate(inputs)]
    for i in range(len(laterals) - 1, 0, -1):  # top-down: P5 -> P2
      laterals[i - 1] = laterals[i - 1] + _upsample_to(laterals[i], laterals[i - 1])
    outs = [conv(3, f"output{i + 2}")(x) for i, x in enumerate(laterals)]
    outs.append(outs[-1][:, ::2, ::2])  # P6: max-pool 1x1, stride 2 (torchvision's LastLevelMaxPool)
    return outs


class RPNHead(nn.Module):
  """Per level: 3x3 conv + ReLU, then 1x1 convs to `num_anchors` objectness logits and
  `4 * num_anchors` box deltas; weights shared across levels. Returns, concatenated over levels in
  the anchors' order (position-major, then anchor), objectness [B, A_total] and deltas [B, A_total, 4].
  `noise` / `quant`: the 3x3 conv's; `out_noise` / `out_quant`: the two predictors' (the model's
  "last" products)."""

  num_anchors: int = 3
  features: int = 256
  noise: NoiseConfig | None = None
  quant: ProductQuant | None = None
  out_noise: NoiseConfig | None = None
  out_quant: ProductQuant | None = None

  @nn.compact
  def __call__(self, levels: Sequence[jax.Array]) -> tuple[jax.Array, jax.Array]:
    conv = NoisyConv(self.features, (3, 3), kernel_init=_HEAD_INIT, noise=self.noise,
                     quant=self.quant, name="conv")
    cls = NoisyConv(self.num_anchors, (1, 1), kernel_init=_HEAD_INIT, noise=self.out_noise,
                    quant=self.out_quant, name="cls")
    reg = NoisyConv(4 * self.num_anchors, (1, 1), kernel_init=_HEAD_INIT, noise=self.out_noise,
                    quant=self.out_quant, name="reg")
    logits, deltas = [], []
    for x in levels:
      h = nn.relu(conv(x))
      b = x.shape[0]
      logits.append(cls(h).reshape(b, -1))
      deltas.append(reg(h).reshape(b, -1, 4))
    return jnp.concatenate(logits, 1), jnp.concatenate(deltas, 1)
