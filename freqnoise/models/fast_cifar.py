"""The fast CIFAR-10 network of airbench94 (K. Jordan, "94% on CIFAR-10 in 3.29 seconds on a single
GPU", arXiv 2404.00498), written here from the paper's description, every product analog.

    whiten: 2x2 conv (VALID, bias), 2*12 filters = ±(eigenvectors / sqrt(eigenvalue + eps)) of the
            training images' 2x2x3 patch covariance; GELU         [B, 32, 32, 3] -> [B, 31, 31, 24]
    group i (widths 64, 256, 256): 3x3 conv -> 2x2 max-pool -> BN -> GELU -> 3x3 conv -> BN -> GELU
                                                                      31 -> 15 -> 7 -> 3 pixels
    global max-pool (airbench's 3x3 max-pool on the 3x3 map) -> Dense(num_classes, no bias) * 1/9

As airbench: BatchNorm without a scale (fixed at 1), momentum 0.6 and eps 1e-12; its shift trains
with a 64x learning rate, which here is a reparametrisation, `shift = bias_scale * param` with
bias_scale = 8 (SGD moves `shift` by bias_scale² = 64 times the plain step; weight decay shrinks
it at the plain rate, as airbench's per-group decay does); 3x3 convs start as PyTorch's default
uniform init with the first `in_channels` filters set to the identity (Dirac: an implicit residual);
exact (erf) GELU. The whitening kernel is a normal parameter (checkpointed, `init_from` copies it):
`init_from_data` sets it from training images, and `frozen_mask` keeps it out of training (no
update, no weight decay) unless `train_whiten`. airbench also trains the whitening bias for its
first 3 epochs only; here it trains throughout.

Products, in order (for `noise.layers` / `quant.layers`): whiten ("first"), the 2 convs of each
group, the classifier ("last"). Parameters with widths (64, 256, 256) and 10 classes: 1,971,640.
Input NHWC [B, H, W, C] (H, W >= 16), output logits [B, num_classes].
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from freqnoise.analog.layers import NoisyConv, NoisyDense
from freqnoise.analog.noise import NoiseConfig
from freqnoise.analog.product_quant import ProductQuant, analog_args
from freqnoise.models.registry import register

_TORCH_UNIFORM = nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform")  # PyTorch's default


def dirac_uniform(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
  """HWIO conv kernel: PyTorch's default uniform init, then filters 0..min(I, O)-1 set to the
  identity (1 at the centre tap of their own input channel), so the conv starts as a pass-through
  of its first inputs plus random features."""
  kh, kw, cin, cout = shape
  kernel = _TORCH_UNIFORM(key, shape, dtype)
  n = min(cin, cout)
  identity = jnp.zeros((kh, kw, cin, n), dtype).at[kh // 2, kw // 2].set(
      jnp.eye(cin, n, dtype=dtype))
  return kernel.at[..., :n].set(identity)


def patch_covariance(images: np.ndarray, size: int, chunk: int = 500) -> np.ndarray:
  """Uncentred covariance E[p pᵀ] (float64) of every `size` x `size` patch (stride 1, VALID) of
  NHWC `images`; a patch is flattened in (row, column, channel) order, an HWIO kernel's order."""
  n, h, w, c = images.shape
  total = np.zeros((size * size * c,) * 2)
  for start in range(0, n, chunk):
    x = np.asarray(images[start:start + chunk], np.float64)
    views = [x[:, dy:h - size + 1 + dy, dx:w - size + 1 + dx] for dy in range(size)
             for dx in range(size)]
    patches = np.concatenate(views, axis=-1).reshape(-1, size * size * c)
    total += patches.T @ patches
  return total / (n * (h - size + 1) * (w - size + 1))


def whitening_kernel(images: np.ndarray, size: int = 2, eps: float = 5e-4) -> np.ndarray:
  """HWIO kernel [size, size, C, 2·size²·C] (float32) of airbench's patch-whitening conv: filter j
  (j < size²·C) is the j-th eigenvector of `patch_covariance` (by decreasing eigenvalue λ_j, its
  largest-magnitude entry made positive) divided by sqrt(λ_j + eps); filter size²·C + j is its
  negative. On the patches, filter j has variance λ_j / (λ_j + eps): whitened up to eps."""
  if images.ndim != 4 or min(images.shape[1:3]) < size:
    raise ValueError(f"whitening needs NHWC images of at least {size}x{size} pixels, got shape "
                     f"{images.shape}")
  values, vectors = np.linalg.eigh(patch_covariance(images, size))
  values, vectors = values[::-1], vectors[:, ::-1]  # decreasing eigenvalue
  peak = vectors[np.argmax(np.abs(vectors), axis=0), np.arange(vectors.shape[1])]
  scaled = vectors * np.sign(peak) / np.sqrt(np.maximum(values, 0.0) + eps)
  kernel = np.concatenate([scaled, -scaled], axis=1)
  return kernel.reshape(size, size, images.shape[-1], -1).astype(np.float32)


class ShiftBatchNorm(nn.Module):
  """BatchNorm with no scale and a shift stored as `bias / bias_scale` (see the module docstring).
  [..., C] -> [..., C]; running statistics in `batch_stats` under `norm/`."""

  momentum: float
  epsilon: float
  bias_scale: float
  train: bool

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = nn.BatchNorm(use_running_average=not self.train, momentum=self.momentum,
                     epsilon=self.epsilon, use_scale=False, use_bias=False, name="norm")(x)
    bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],), jnp.float32)
    return x + self.bias_scale * bias


@register("fast_cifar")
class FastCifarNet(nn.Module):
  """airbench94's network (see the module docstring).

  Attributes:
    num_classes: classifier outputs.
    widths: channels of the three conv groups ((64, 256, 256): airbench94; (64, 128, 128): 93).
    whiten_size: the whitening conv's kernel size (2: 2x2 patches, 2·4·3 = 24 filters).
    whiten_eps: added to each eigenvalue before the 1/sqrt (airbench: 5e-4).
    whiten_examples: training images whose patches set the whitening (airbench: 5000).
    train_whiten: train the whitening kernel too (default: frozen at its data init, as airbench).
    bn_momentum, bn_epsilon: BatchNorm running-average momentum (Flax convention: weight of the
      old value) and epsilon.
    bias_scale: BatchNorm shifts are `bias_scale * param` (8: airbench's 64x shift learning rate).
    logit_scale: multiplies the logits (airbench: 1/9).
    noise: NoiseConfig of the analog products, None = exact.
    quant: ProductQuant (DAC / Q_w / ADC) of the analog products, None = float.
  """

  num_classes: int
  widths: Sequence[int] = (64, 256, 256)
  whiten_size: int = 2
  whiten_eps: float = 5e-4
  whiten_examples: int = 5000
  train_whiten: bool = False
  bn_momentum: float = 0.6
  bn_epsilon: float = 1e-12
  bias_scale: float = 8.0
  logit_scale: float = 1 / 9
  noise: NoiseConfig | None = None
  quant: ProductQuant | None = None

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if x.ndim != 4:
      raise ValueError(f"fast_cifar expects NHWC images [batch, height, width, channels], got "
                       f"shape {x.shape}")
    if min(x.shape[1:3]) < 16:  # three 2x2 pools after the whitening conv need a 1x1 map left
      raise ValueError(f"fast_cifar needs images of at least 16x16 pixels, got shape {x.shape}")
    count = 2 + 2 * len(self.widths)
    analog = lambda i: analog_args(self.noise, self.quant, i, count)
    norm = lambda name: ShiftBatchNorm(self.bn_momentum, self.bn_epsilon, self.bias_scale, train,
                                       name=name)
    gelu = lambda y: nn.gelu(y, approximate=False)
    k = self.whiten_size
    x = NoisyConv(2 * k * k * x.shape[-1], (k, k), padding="VALID", use_bias=True,
                  **analog(0), name="whiten")(x.astype(jnp.float32))
    x = gelu(x)
    for i, width in enumerate(self.widths):
      conv = lambda j: NoisyConv(width, (3, 3), padding="SAME", use_bias=False,
                                 kernel_init=dirac_uniform, **analog(1 + 2 * i + j),
                                 name=f"group{i}_conv{j}")
      x = nn.max_pool(conv(0)(x), (2, 2), strides=(2, 2))
      x = gelu(norm(f"group{i}_norm0")(x))
      x = gelu(norm(f"group{i}_norm1")(conv(1)(x)))
    x = jnp.max(x, axis=(1, 2))
    logits = NoisyDense(self.num_classes, use_bias=False, kernel_init=_TORCH_UNIFORM,
                        **analog(count - 1), name="classifier")(x)
    return logits * self.logit_scale

  def init_from_data(self, params: dict, inputs_of: Callable[[int], np.ndarray]) -> dict:
    """`params` with the whitening kernel set from `inputs_of(whiten_examples)` (the seeded sample
    of transformed training inputs, NHWC, that `Experiment.initial_state` gives)."""
    kernel = whitening_kernel(np.asarray(inputs_of(self.whiten_examples)), self.whiten_size,
                              self.whiten_eps)
    old = params["whiten"]["kernel"]
    if kernel.shape != old.shape:
      raise ValueError(f"whitening kernel of shape {kernel.shape} does not fit the model's "
                       f"{old.shape}")
    return {**params, "whiten": {**params["whiten"], "kernel": jnp.asarray(kernel, old.dtype)}}

  def frozen_mask(self, params: dict) -> Any:
    """Bool tree like `params`: True on the whitening kernel unless `train_whiten` (for the
    optimizer: `freqnoise.optim.build_optimizer(frozen=...)`)."""
    frozen = lambda path, _: (not self.train_whiten and len(path) == 2
                              and path[0].key == "whiten" and path[1].key == "kernel")
    return jax.tree_util.tree_map_with_path(frozen, params)
