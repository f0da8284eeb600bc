"""`MaskRCNN`: ResNet-FPN backbone (spatial or frequency input), RPN, Fast R-CNN box head and
mask head; static shapes, jittable end to end, images of a batch processed with `vmap`.

    model = MaskRCNN(num_classes=80, stem='frequency')        # DCT channels [B, H/4, W/4, C]
    losses = model.apply(v, x, train=True, targets=batch, rngs={'sampling': key, ...})
    dets = model.apply(v, x, train=False, size=batch['size'])  # boxes, scores, classes, masks

Input: pixels `[B, H, W, 3]` (`stem='spatial'`) or DCT coefficients of the image upscaled 2x,
`[B, H/4, W/4, C]` (`stem='frequency'`, `input_stride=4`: DCTNet's upscaled static input, which
enters layer1 at the resolution the spatial stem gives it, so C2..C5 have strides 4..32 either way).
The model takes the image to be `input_stride` times its input grid; `check_config` refuses a
transform with another grid (`models.registry.check_input_grid`: config.input.upscale = 8 /
input_stride for DCT input, pixels for the spatial stem).
Training (`targets`: boxes [B, N, 4], classes [B, N], masks [B, N, M, M], size [B, 2]) returns the
five losses; evaluation returns detections in input-image pixels and 28x28 mask probabilities of
each detection's class. Defaults: DCTNet's Mask R-CNN R50-FPN 1x (../shared/REFERENCES.md).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from freqnoise.analog.noise import NoiseConfig, noise_for_layer
from freqnoise.analog.product_quant import ProductQuant, quant_for_layer
from freqnoise.detection import anchors as anchor_ops
from freqnoise.detection import detection_losses as L
from freqnoise.detection import proposals, targets as T
from freqnoise.detection.fpn import FPN, RPNHead
from freqnoise.detection.heads import BoxHead, MaskHead
from freqnoise.detection.postprocess import detect
from freqnoise.detection.roi_align import multilevel_roi_align
from freqnoise.models.registry import check_stem_input, register
from freqnoise.models.resnet import ResNet

LOSS_NAMES = ("rpn_cls", "rpn_box", "rcnn_cls", "rcnn_box", "mask")


class MaskRCNN(nn.Module):
  """Mask R-CNN; see the module docstring. `num_classes` = K object classes (no background)."""

  num_classes: int
  depth: int = 50                       # ResNet-50 (18 for quick CPU runs)
  width: int = 64                       # ResNet layer1 channels
  stem: str = "spatial"
  input_stride: int = 4                 # image pixels per input cell, stem='frequency' (2x DCT)
  frozen_stages: int = 0                # DCTNet: 1 (from an ImageNet-trained backbone)
  fpn_features: int = 256
  anchor_scale: float = 8.0
  anchor_ratios: Sequence[float] = (0.5, 1.0, 2.0)
  anchor_strides: Sequence[int] = (4, 8, 16, 32, 64)
  rpn_pre_nms_train: int = 2000         # per level
  rpn_post_nms_train: int = 2000
  rpn_pre_nms_test: int = 1000
  rpn_post_nms_test: int = 1000
  rpn_nms_threshold: float = 0.7
  rpn_batch_per_image: int = 256
  rpn_positive_fraction: float = 0.5
  roi_batch_per_image: int = 512
  roi_positive_fraction: float = 0.25
  box_hidden: int = 1024
  mask_convs: int = 4
  score_threshold: float = 0.05
  nms_threshold: float = 0.5
  max_detections: int = 100
  detections_pre_nms: int = 1000
  noise: NoiseConfig | None = None
  quant: ProductQuant | None = None     # DAC / Q_w / ADC of the analog products

  def setup(self):
    if self.depth not in (18, 50):
      raise ValueError(f"maskrcnn depth must be 18 or 50, got {self.depth}")
    # Analog products (`noise.layers` / `quant.layers`): "first" = the backbone's products that
    # read the input (the ResNet decides), "last" = the predictors (RPN objectness and deltas,
    # box classifier and deltas, mask logits); FPN and hidden head layers are in every set.
    mid = dict(noise=noise_for_layer(self.noise, 1, 3), quant=quant_for_layer(self.quant, 1, 3))
    out = dict(out_noise=noise_for_layer(self.noise, 2, 3),
               out_quant=quant_for_layer(self.quant, 2, 3))
    self.backbone = ResNet(num_classes=1, stage_sizes=(3, 4, 6, 3) if self.depth == 50 else (2,) * 4,
                           bottleneck=self.depth == 50, stem=self.stem, width=self.width,
                           noise=self.noise, quant=self.quant, features_only=True,
                           frozen_stages=self.frozen_stages)
    self.fpn = FPN(self.fpn_features, **mid)
    self.rpn = RPNHead(len(self.anchor_ratios), self.fpn_features, **mid, **out)
    self.box_head = BoxHead(self.num_classes, self.box_hidden, **mid, **out)
    self.mask_head = MaskHead(self.num_classes, self.fpn_features, self.mask_convs, **mid, **out)

  # ------------------------------------------------------------------ shared pieces
  def _image_shape(self, x: jax.Array) -> tuple[int, int]:
    check_stem_input("maskrcnn", self.stem, x)
    stride = 1 if self.stem == "spatial" else self.input_stride
    height, width = x.shape[1] * stride, x.shape[2] * stride
    if height % 64 or width % 64:
      raise ValueError(f"maskrcnn needs an input image whose sides are multiples of 64 (5 FPN "
                       f"levels); got {height}x{width} (input {x.shape[1:3]} x stride {stride})")
    return height, width

  def _pyramid(self, x: jax.Array, train: bool):
    levels = self.fpn(self.backbone(x, train=train))
    height, width = self._image_shape(x)
    anchors, sizes = anchor_ops.pyramid_anchors(height, width, tuple(self.anchor_strides),
                                                self.anchor_scale, tuple(self.anchor_ratios))
    expected = tuple(-(-height // s) * -(-width // s) * len(self.anchor_ratios)
                     for s in self.anchor_strides)
    got = tuple(p.shape[1] * p.shape[2] * len(self.anchor_ratios) for p in levels)
    if got != expected or tuple(sizes) != expected:
      raise ValueError(f"feature maps {[p.shape[1:3] for p in levels]} do not match the anchor "
                       f"strides {tuple(self.anchor_strides)} of a {height}x{width} image")
    objectness, deltas = self.rpn(levels)
    return levels, anchors, sizes, objectness, deltas

  def _pool(self, levels, rois: jax.Array, size: int) -> jax.Array:
    """Per image: multilevel RoIAlign of [B, R, 4] boxes from P2..P5 -> [B, R, size, size, C]."""
    strides = tuple(self.anchor_strides[:4])
    fn = lambda feats, boxes: multilevel_roi_align(list(feats), boxes, size, strides=strides,
                                                   sampling_ratio=2)
    return jax.vmap(fn)(tuple(levels[:4]), rois)

  # ------------------------------------------------------------------ call
  def __call__(self, x: jax.Array, *, train: bool, targets: dict | None = None,
               size: jax.Array | None = None):
    if train and targets is None:
      raise ValueError("maskrcnn in training needs targets (boxes, classes, masks, size)")
    levels, anchors, sizes, objectness, deltas = self._pyramid(x, train)
    height, width = self._image_shape(x)
    b = x.shape[0]
    if size is None:
      size = targets["size"] if targets is not None else jnp.tile(jnp.array([[height, width]]), (b, 1))
    pre, post = ((self.rpn_pre_nms_train, self.rpn_post_nms_train) if train else
                 (self.rpn_pre_nms_test, self.rpn_post_nms_test))
    props, _, props_valid = jax.vmap(lambda o, d, s: proposals.generate(
        o, d, anchors, sizes, s, pre_nms_top_n=pre, post_nms_top_n=post,
        nms_threshold=self.rpn_nms_threshold))(objectness, deltas, size)
    if train:
      return self._losses(levels, anchors, objectness, deltas, props, props_valid, targets)
    return self._detect(levels, props, props_valid, size)

  def _losses(self, levels, anchors, objectness, deltas, props, props_valid, targets) -> dict:
    gt_boxes = targets["boxes"].astype(jnp.float32)
    gt_classes = targets["classes"].astype(jnp.int32)
    b = gt_boxes.shape[0]
    keys = jax.random.split(self.make_rng("sampling"), (2, b))  # typed or raw keys
    anchors = jnp.asarray(anchors)
    rpn = jax.vmap(lambda g, c, k: T.rpn_targets(
        anchors, g, c, k, batch_size_per_image=self.rpn_batch_per_image,
        positive_fraction=self.rpn_positive_fraction))(gt_boxes, gt_classes, keys[0])
    rpn_cls, rpn_box = L.rpn_loss(objectness, deltas, rpn["labels"], rpn["box_targets"])
    rois = jax.vmap(lambda p, v, g, c, k: T.sample_rois(
        p, v, g, c, k, num_samples=self.roi_batch_per_image,
        positive_fraction=self.roi_positive_fraction))(props, props_valid, gt_boxes, gt_classes,
                                                        keys[1])
    r = self.roi_batch_per_image
    feats = self._pool(levels, rois["rois"], 7)
    logits, box_deltas = self.box_head(feats.reshape((b * r,) + feats.shape[2:]))
    rcnn_cls, rcnn_box = L.box_head_loss(
        logits.reshape(b, r, -1), box_deltas.reshape(b, r, -1, 4), rois["classes"],
        rois["box_targets"], rois["weights"])
    # Mask head on a fixed number of RoI slots: the sampled foregrounds first (at most
    # r * positive_fraction of them exist), the rest masked out.
    m = max(1, int(r * self.roi_positive_fraction))
    order = jnp.argsort(~rois["is_fg"], axis=1, stable=True)[:, :m]
    take = lambda a: jnp.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 2)), 1)
    fg_rois, fg_classes, fg_is_fg, fg_gt = map(take, (rois["rois"], rois["classes"],
                                                      rois["is_fg"], rois["matched_gt"]))
    gt_masks = jnp.take_along_axis(targets["masks"], fg_gt[:, :, None, None], 1)
    gt_mask_boxes = jnp.take_along_axis(gt_boxes, fg_gt[:, :, None], 1)
    mask_targets = jax.vmap(T.mask_targets)(fg_rois, gt_mask_boxes, gt_masks)
    mask_feats = self._pool(levels, fg_rois, 14)
    mask_logits = self.mask_head(mask_feats.reshape((b * m,) + mask_feats.shape[2:]))
    mask = L.mask_loss(mask_logits.reshape((b, m) + mask_logits.shape[1:]), fg_classes,
                       mask_targets, fg_is_fg, channels_last=True)
    values = (rpn_cls, rpn_box, rcnn_cls, rcnn_box, mask)
    return {name: jnp.mean(v) for name, v in zip(LOSS_NAMES, values)}

  def _detect(self, levels, props, props_valid, size) -> dict:
    b, p = props.shape[:2]
    feats = self._pool(levels, props, 7)
    logits, box_deltas = self.box_head(feats.reshape((b * p,) + feats.shape[2:]))
    dets = jax.vmap(lambda lg, d, r, v, s: detect(
        lg, d, r, v, s, score_threshold=self.score_threshold, nms_threshold=self.nms_threshold,
        max_detections=self.max_detections, pre_nms_top_n=self.detections_pre_nms))(
            logits.reshape(b, p, -1), box_deltas.reshape(b, p, -1, 4), props, props_valid, size)
    d = self.max_detections
    mask_feats = self._pool(levels, dets["boxes"], 14)
    mask_logits = self.mask_head(mask_feats.reshape((b * d,) + mask_feats.shape[2:]))
    mask_logits = mask_logits.reshape((b, d) + mask_logits.shape[1:])  # [B, D, 28, 28, K + 1]
    chosen = jnp.take_along_axis(mask_logits, dets["classes"][:, :, None, None, None], -1)[..., 0]
    # padding rows (valid False) are zeros, as their boxes, scores and classes
    dets["mask_probs"] = jnp.where(dets["valid"][:, :, None, None], jax.nn.sigmoid(chosen), 0.0)
    return dets


@register("maskrcnn")
def maskrcnn(*, num_classes: int, **kwargs) -> MaskRCNN:
  """Mask R-CNN on a ResNet-FPN (see `MaskRCNN`); fields of config.model are its attributes."""
  return MaskRCNN(num_classes=num_classes, **kwargs)
