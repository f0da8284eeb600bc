"""Mask R-CNN training losses for one image (callers vmap and average over images).

Each is normalised as torchvision / mmdetection normalise it:
  * `rpn_loss`: objectness BCE averaged over sampled anchors; smooth L1 (beta 1/9, torchvision)
    on positive anchors' deltas summed and divided by the number of sampled anchors.
  * `box_head_loss`: softmax cross-entropy averaged over sampled RoIs; smooth L1 (beta 1.0,
    mmdetection v1's `SmoothL1Loss(beta=1.0)`; torchvision uses 1/9, pass `beta=1/9` for it) on
    the GT class's deltas of foreground RoIs, summed and divided by the number of sampled RoIs.
  * `mask_loss`: per-pixel BCE of the GT class's mask logits, averaged over foreground pixels.
torchvision divides by counts over the whole batch; the mean over images of these per-image
losses equals that when every image samples the same number of rows (the usual 256 / 512).
Every loss, and its gradient, is finite (0 for the box / mask terms) for an image with no
instances.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def smooth_l1(x: jax.Array, beta: float) -> jax.Array:
  """Elementwise smooth L1 of a difference x: 0.5 x^2 / beta where |x| < beta, else |x| - beta / 2;
  L1 for beta == 0 (torchvision's `F.smooth_l1_loss` convention)."""
  d = jnp.abs(x)
  if beta == 0:
    return d
  return jnp.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta)


def _safe_div(total: jax.Array, count: jax.Array) -> jax.Array:
  """total / count, 0 when count is 0 (total is then 0 too)."""
  return total / jnp.maximum(count, 1.0)


def rpn_loss(objectness_logits: jax.Array, box_deltas: jax.Array, labels: jax.Array,
             box_targets: jax.Array, beta: float = 1.0 / 9) -> tuple[jax.Array, jax.Array]:
  """(cls_loss, box_loss) of one image's RPN. objectness_logits [A], box_deltas [A, 4], labels
  [A] int (1 fg, 0 bg, -1 not sampled; from `targets.rpn_targets`), box_targets [A, 4]."""
  sampled = labels >= 0
  positive = labels == 1
  count = jnp.sum(sampled).astype(jnp.float32)
  bce = optax.sigmoid_binary_cross_entropy(objectness_logits.astype(jnp.float32),
                                           positive.astype(jnp.float32))
  cls_loss = _safe_div(jnp.sum(jnp.where(sampled, bce, 0.0)), count)
  l1 = jnp.sum(smooth_l1(box_deltas.astype(jnp.float32) - box_targets, beta), axis=-1)
  box_loss = _safe_div(jnp.sum(jnp.where(positive, l1, 0.0)), count)
  return cls_loss, box_loss


def box_head_loss(class_logits: jax.Array, box_deltas: jax.Array, classes: jax.Array,
                  box_targets: jax.Array, weights: jax.Array,
                  beta: float = 1.0) -> tuple[jax.Array, jax.Array]:
  """(cls_loss, box_loss) of one image's Fast R-CNN head. class_logits [R, K + 1], box_deltas
  [R, K + 1, 4] or [R, (K + 1) * 4] (class-major, as torchvision), classes [R] int (0 =
  background), box_targets [R, 4], weights [R] (1 = sampled row, 0 = padding; from
  `targets.sample_rois`). The box loss only reads each foreground row's GT-class deltas."""
  rows, num_classes = class_logits.shape
  deltas = box_deltas.reshape(rows, num_classes, 4).astype(jnp.float32)
  weights = weights.astype(jnp.float32)
  count = jnp.sum(weights)
  ce = optax.softmax_cross_entropy_with_integer_labels(class_logits.astype(jnp.float32), classes)
  cls_loss = _safe_div(jnp.sum(jnp.where(weights > 0, weights * ce, 0.0)), count)
  own = jnp.take_along_axis(deltas, classes[:, None, None].astype(jnp.int32), axis=1)[:, 0]
  l1 = jnp.sum(smooth_l1(own - box_targets, beta), axis=-1)
  fg = (classes > 0) & (weights > 0)
  box_loss = _safe_div(jnp.sum(jnp.where(fg, weights * l1, 0.0)), count)
  return cls_loss, box_loss


def _channels_last(logits: jax.Array, size: tuple[int, ...], channels_last: bool | None) -> bool:
  if channels_last is not None:
    return channels_last
  last, first = logits.shape[1:3] == size, logits.shape[2:4] == size
  if last == first:
    raise ValueError(f"cannot tell the class axis of mask logits {logits.shape} for targets of "
                     f"size {size}; pass channels_last")
  return last


def mask_loss(mask_logits: jax.Array, classes: jax.Array, targets: jax.Array, is_fg: jax.Array,
              channels_last: bool | None = None) -> jax.Array:
  """Mask BCE of one image. mask_logits [R, S, S, C] (channels_last, `heads.MaskHead`) or
  [R, C, S, S] (torchvision), C = K + 1 (or 1: class-agnostic); classes [R] int; targets
  [R, S, S] in {0, 1} (`targets.mask_targets`); is_fg [R] bool. channels_last None infers the
  layout from the shapes (and raises when C == S makes it ambiguous).

  Binary cross-entropy with logits of channel classes[r] against targets, averaged over the
  foreground RoIs' pixels (torchvision's `maskrcnn_loss`); 0 when there is no foreground RoI."""
  logits = mask_logits.astype(jnp.float32)
  if not _channels_last(logits, targets.shape[1:], channels_last):
    logits = jnp.moveaxis(logits, 1, -1)
  channel = (jnp.zeros_like(classes) if logits.shape[-1] == 1 else classes).astype(jnp.int32)
  own = jnp.take_along_axis(logits, channel[:, None, None, None], axis=-1)[..., 0]   # [R, S, S]
  bce = optax.sigmoid_binary_cross_entropy(own, targets.astype(jnp.float32))
  fg = is_fg.astype(bool)
  per_roi = jnp.mean(bce, axis=(1, 2))  # every RoI has S * S pixels: mean of means = pixel mean
  return _safe_div(jnp.sum(jnp.where(fg, per_roi, 0.0)), jnp.sum(fg).astype(jnp.float32))
