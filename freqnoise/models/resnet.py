"""ResNet-18 / ResNet-50 (torchvision layout, v1.5 strides) with a spatial or a frequency stem.

Stems (DESIGN.md "Frequency stems"):
  * `stem='spatial'`: 7x7/2 conv, BN, ReLU, 3x3/2 max-pool (4x downsampling: 224 -> 56 at layer1);
    `small_images=True` swaps it for a 3x3/1 conv, BN, ReLU without pooling (32x32 / 64x64 inputs).
  * `stem='frequency'`: no stem; the input is block-DCT coefficients `[B, H/8, W/8, C]` (448x448 image
    -> 56x56xC at layer1, like a 224x224 RGB image through the spatial stem). The first block's 1x1
    convs (conv1 and the projection) take the C input channels, whatever C is.
`layer2_stride=1` keeps layer2 at the resolution of layer1 (the published option for small DCT inputs,
e.g. 8x8xC from 64x64 Tiny-ImageNet images). `gate=True` puts a `FrequencyGate` on the input.

Every conv and the classifier are analog layers (`noise`); which ones are noisy follows
`noise.layers`. "First" means the products that read the model input, whatever the stem: the stem
conv, or without a stem the first block's conv1 and projection conv (both read the input), and the
gate's hidden product (it reads the pooled input). The classifier is "last". Parameter counts with 1000 classes: ResNet-18 11,689,512;
ResNet-50 25,557,032 (as torchvision; BN running statistics are in `batch_stats`, not counted).
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from freqnoise.analog.layers import NoisyConv, NoisyDense
from freqnoise.analog.noise import NoiseConfig, noise_for_layer
from freqnoise.analog.product_quant import ProductQuant, quant_for_layer
from freqnoise.freq.gate import FrequencyGate
from freqnoise.models.registry import check_stem_input, register

_CONV_INIT = nn.initializers.variance_scaling(2.0, "fan_out", "normal")  # He init, as torchvision


class _Block(nn.Module):
  """Basic (two 3x3) or bottleneck (1x1, 3x3, 1x1 x4) residual block; stride on the 3x3 conv."""

  features: int
  strides: int
  bottleneck: bool
  noises: tuple  # one NoiseConfig | None per conv: main convs, then the projection
  train: bool
  quants: tuple = ()  # one ProductQuant | None per conv, as `noises` (empty: none)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    norm = functools.partial(nn.BatchNorm, use_running_average=not self.train, momentum=0.9,
                             epsilon=1e-5)
    conv = functools.partial(NoisyConv, use_bias=False, kernel_init=_CONV_INIT)
    out_features = self.features * (4 if self.bottleneck else 1)
    if self.bottleneck:
      shapes = [(self.features, 1, 1), (self.features, 3, self.strides), (out_features, 1, 1)]
    else:
      shapes = [(self.features, 3, self.strides), (out_features, 3, 1)]
    quants = self.quants or (None,) * len(self.noises)
    y = x
    for i, (features, k, s) in enumerate(shapes):
      y = conv(features, (k, k), strides=s, noise=self.noises[i], quant=quants[i],
               name=f"conv{i + 1}")(y)
      last = i == len(shapes) - 1
      # Zero-init the last BN scale of each block (Goyal et al.): each block starts as the identity.
      y = norm(name=f"bn{i + 1}", scale_init=nn.initializers.zeros if last else nn.initializers.ones)(y)
      if not last:
        y = nn.relu(y)
    if x.shape[-1] != out_features or self.strides != 1:
      x = conv(out_features, (1, 1), strides=self.strides, noise=self.noises[-1], quant=quants[-1],
               name="proj_conv")(x)
      x = norm(name="proj_bn")(x)
    return nn.relu(x + y)


class ResNet(nn.Module):
  """Input NHWC `[B, H, W, 3]` pixels (spatial) or `[B, h, w, C]` DCT channels (frequency) -> logits.

  Attributes:
    num_classes: classifier outputs.
    stage_sizes: blocks per stage, e.g. (2, 2, 2, 2) for ResNet-18, (3, 4, 6, 3) for ResNet-50.
    bottleneck: bottleneck blocks (ResNet-50) instead of basic blocks (ResNet-18).
    stem: 'spatial' or 'frequency' (see module docstring).
    small_images: spatial stem of 3x3/1 conv without pooling, for 32x32 / 64x64 images.
    width: channels of layer1 (64 in the published models); stage i has width * 2**i.
    layer2_stride: 2 (published default) or 1 (keep layer2 at layer1's resolution).
    gate / gate_*: learned channel gate on the input (`FrequencyGate` attributes).
    noise: NoiseConfig for the analog products, None = exact.
    quant: ProductQuant (DAC / Q_w / ADC) of the analog products, None = float.
    features_only: return the stage outputs [C2, C3, C4, C5] (strides 4..32 behind the spatial
      stem) instead of logits: the backbone of `freqnoise.detection` (no classifier is built).
    frozen_stages: k > 0 freezes the stem and stages 1..k (mmdetection's `frozen_stages=k`;
      DCTNet uses 1): no gradient reaches them and their BN layers use running statistics;
      `frozen_mask` tells the optimizer, which gives them no update (no weight decay either).
  """

  num_classes: int
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  bottleneck: bool = False
  stem: str = "spatial"
  small_images: bool = False
  width: int = 64
  layer2_stride: int = 2
  gate: bool = False
  gate_sparsity: float = 0.0
  gate_tau_start: float = 1.0
  gate_tau_end: float = 1.0
  gate_anneal_steps: int = 0
  noise: NoiseConfig | None = None
  quant: ProductQuant | None = None
  features_only: bool = False
  frozen_stages: int = 0

  def _num_products(self, in_features: int) -> int:
    count = 1 if self.stem == "spatial" else 0
    features = self.width if self.stem == "spatial" else in_features
    for i, n in enumerate(self.stage_sizes):
      for j in range(n):
        out = self.width * 2 ** i * (4 if self.bottleneck else 1)
        strides = self._stride(i, j)
        count += (3 if self.bottleneck else 2) + (features != out or strides != 1)
        features = out
    return count + 1

  def _stride(self, stage: int, block: int) -> int:
    if block > 0 or stage == 0:
      return 1
    return self.layer2_stride if stage == 1 else 2

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    check_stem_input("ResNet", self.stem, x)
    if self.layer2_stride not in (1, 2):
      raise ValueError(f"layer2_stride must be 1 or 2, got {self.layer2_stride}")
    x = x.astype(jnp.float32)
    count = self._num_products(x.shape[-1])
    index = 0
    layer_noise = lambda i: noise_for_layer(self.noise, i, count)
    layer_quant = lambda i: quant_for_layer(self.quant, i, count)
    if self.gate:
      x = FrequencyGate(sparsity_weight=self.gate_sparsity, tau_start=self.gate_tau_start,
                        tau_end=self.gate_tau_end, anneal_steps=self.gate_anneal_steps,
                        noise=layer_noise(1), input_noise=layer_noise(0), quant=layer_quant(1),
                        input_quant=layer_quant(0), name="input_gate")(x, train=train)
    frozen = lambda stage: stage <= self.frozen_stages and self.frozen_stages > 0  # 0: the stem
    if self.stem == "spatial":
      k, s = (3, 1) if self.small_images else (7, 2)
      x = NoisyConv(self.width, (k, k), strides=s, use_bias=False, kernel_init=_CONV_INIT,
                    noise=layer_noise(0), quant=layer_quant(0), name="conv1")(x)
      x = nn.BatchNorm(use_running_average=not train or frozen(0), momentum=0.9, epsilon=1e-5,
                       name="bn1")(x)
      x = nn.relu(x)
      if not self.small_images:
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
      index = 1
    features = []
    for i, n in enumerate(self.stage_sizes):
      for j in range(n):
        out = self.width * 2 ** i * (4 if self.bottleneck else 1)
        strides = self._stride(i, j)
        main = 3 if self.bottleneck else 2
        convs = main + (x.shape[-1] != out or strides != 1)
        # Without a stem, the first block's conv1 and projection read the input: "first". The
        # other convs of that block are not (index + c > 0 for c > 0).
        reads_input = lambda c: self.stem == "frequency" and i == j == 0 and c in (0, main)
        at = [0 if reads_input(c) else index + c for c in range(convs)]
        x = _Block(self.width * 2 ** i, strides, self.bottleneck, tuple(map(layer_noise, at)),
                   train and not frozen(i + 1), tuple(map(layer_quant, at)),
                   name=f"layer{i + 1}_{j}")(x)
        index += convs
      if frozen(i + 1):  # (its output also feeds the FPN: no gradient may reach it from there)
        x = jax.lax.stop_gradient(x)
      features.append(x)
    if self.features_only:
      return features
    x = jnp.mean(x, axis=(1, 2))
    return NoisyDense(self.num_classes, noise=layer_noise(count - 1), quant=layer_quant(count - 1),
                      name="fc")(x)


@register("resnet18")
def resnet18(*, num_classes: int, **kwargs) -> ResNet:
  """ResNet-18 (basic blocks 2-2-2-2); keyword options (noise, quant, ...) as `ResNet`'s."""
  return ResNet(num_classes=num_classes, stage_sizes=(2, 2, 2, 2), bottleneck=False, **kwargs)


@register("resnet50")
def resnet50(*, num_classes: int, **kwargs) -> ResNet:
  """ResNet-50 (bottleneck blocks 3-4-6-3); keyword options (noise, quant, ...) as `ResNet`'s."""
  return ResNet(num_classes=num_classes, stage_sizes=(3, 4, 6, 3), bottleneck=True, **kwargs)


STEM = ("conv1", "bn1")  # the spatial stem's modules: frozen with any frozen_stages > 0


def frozen_parameters(params: dict, frozen_stages: int) -> dict:
  """Bool tree shaped like a ResNet's `params`: True on the leaves `ResNet(frozen_stages=k)`
  freezes, the stem (`STEM`) and the blocks of stages 1..k (`layer{i}_{j}`, i <= k)."""
  def frozen(name: str) -> bool:
    stage = name[len("layer"):].split("_")[0] if name.startswith("layer") else ""
    return frozen_stages > 0 and (name in STEM or (stage.isdigit() and int(stage) <= frozen_stages))
  return {name: jax.tree.map(lambda _: frozen(name), tree) for name, tree in params.items()}


def frozen_mask(model: nn.Module) -> Callable[[dict], dict] | None:
  """params -> bool tree (True: frozen) of `model`'s `frozen_stages`, for the optimizer
  (`freqnoise.optim.build_optimizer(frozen=...)`); None when nothing is frozen. The frozen
  ResNet is `model` itself or a detector's backbone, whose params live under params['backbone']
  (`freqnoise.detection.MaskRCNN`)."""
  stages = getattr(model, "frozen_stages", 0)
  if not stages:
    return None
  if isinstance(model, ResNet):
    return lambda params: frozen_parameters(params, stages)

  def mask(params: dict) -> dict:
    if "backbone" not in params:
      raise ValueError(f"{type(model).__name__} has frozen_stages={stages} but no "
                       f"params['backbone'] (a ResNet) to freeze; it has {sorted(params)}")
    return {name: frozen_parameters(tree, stages) if name == "backbone"
            else jax.tree.map(lambda _: False, tree) for name, tree in params.items()}
  return mask
