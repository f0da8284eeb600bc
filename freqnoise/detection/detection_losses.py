"""Mask R-CNN training losses, each normalised over the whole batch as torchvision normalises it.

Every loss takes one image's rows ([A] anchors, [R] RoIs) or a batch of them with any leading
dims ([B, A], [B, R]), sums over all of them and divides ONCE by the batch's count, as torchvision
does after concatenating the images' sampled rows (`rpn.compute_loss`, `roi_heads.fastrcnn_loss`,
`roi_heads.maskrcnn_loss`):
  * `rpn_loss`: objectness BCE averaged over the sampled anchors; smooth L1 (beta 1/9, torchvision)
    on positive anchors' deltas summed and divided by the number of sampled anchors.
  * `box_head_loss`: softmax cross-entropy averaged over sampled RoIs; smooth L1 (beta 1.0,
    mmdetection v1's `SmoothL1Loss(beta=1.0)`; torchvision uses 1/9, pass `beta=1/9` for it) on
    the GT class's deltas of foreground RoIs, summed and divided by the number of sampled RoIs.
  * `mask_loss`: per-pixel BCE of the GT class's mask logits, summed over every foreground RoI's
    pixels and divided by (foreground RoIs x S x S).
Call them on the batch. Under `vmap` and a mean over images each image would be normalised by its
own count instead: the same for the RPN and box losses when every image samples the same number
of rows (256 anchors, 512 RoIs, whenever there are enough candidates), never for the mask loss (a
lone instance beside an image with 8 would weigh 1/2 instead of 1/9).
Every loss, and its gradient, is finite (0 for the box / mask terms) for a batch with no instances.
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
  """(cls_loss, box_loss) of the RPN. objectness_logits [..., A], box_deltas [..., A, 4], labels
  [..., A] int (1 fg, 0 bg, -1 not sampled; from `targets.rpn_targets`), box_targets [..., A, 4];
  leading dims (images) are summed over and share one count of sampled anchors."""
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
  """(cls_loss, box_loss) of the Fast R-CNN head. class_logits [..., R, K + 1], box_deltas
  [..., R, K + 1, 4] or [..., R, (K + 1) * 4] (class-major, as torchvision), classes [..., R] int
  (0 = background), box_targets [..., R, 4], weights [..., R] (1 = sampled row, 0 = padding; from
  `targets.sample_rois`); leading dims (images) share one count of sampled RoIs. The box loss only
  reads each foreground row's GT-class deltas."""
  deltas = box_deltas.reshape(class_logits.shape + (4,)).astype(jnp.float32)
  weights = weights.astype(jnp.float32)
  count = jnp.sum(weights)
  ce = optax.softmax_cross_entropy_with_integer_labels(class_logits.astype(jnp.float32), classes)
  cls_loss = _safe_div(jnp.sum(jnp.where(weights > 0, weights * ce, 0.0)), count)
  own = jnp.take_along_axis(deltas, classes[..., None, None].astype(jnp.int32), axis=-2)[..., 0, :]
  l1 = jnp.sum(smooth_l1(own - box_targets, beta), axis=-1)
  fg = (classes > 0) & (weights > 0)
  box_loss = _safe_div(jnp.sum(jnp.where(fg, weights * l1, 0.0)), count)
  return cls_loss, box_loss


def mask_loss(mask_logits: jax.Array, classes: jax.Array, targets: jax.Array, is_fg: jax.Array,
              *, channels_last: bool = True) -> jax.Array:
  """Mask BCE of a batch. mask_logits [..., R, S, S, C] (channels_last: `heads.MaskHead`'s
  layout) or [..., R, C, S, S] (channels_last=False: torchvision's), C = K + 1 (or 1:
  class-agnostic); classes [..., R] int; targets [..., R, S, S] in {0, 1}
  (`targets.mask_targets`); is_fg [..., R] bool. The layout is an argument, never guessed from the
  shapes (C == S, i.e. K = 27 classes with 28 x 28 masks, would be ambiguous).

  Binary cross-entropy with logits of channel classes[r] against targets, summed over the pixels
  of every foreground RoI of every image and divided by (foreground RoIs x S x S): torchvision's
  `maskrcnn_loss` (BCE mean over the batch's concatenated positive RoIs); 0 when there is none."""
  logits = mask_logits.astype(jnp.float32)
  if not channels_last:
    logits = jnp.moveaxis(logits, -3, -1)
  if logits.shape[:-1] != targets.shape or classes.shape != targets.shape[:-2] or (
      is_fg.shape != classes.shape):
    layout = "[..., R, S, S, C]" if channels_last else "[..., R, C, S, S]"
    raise ValueError(f"mask_loss: mask_logits {mask_logits.shape} (channels_last={channels_last}: "
                     f"{layout}), classes {classes.shape}, targets {targets.shape} ([..., R, S, S])"
                     f" and is_fg {is_fg.shape} do not agree")
  channel = (jnp.zeros_like(classes) if logits.shape[-1] == 1 else classes).astype(jnp.int32)
  own = jnp.take_along_axis(logits, channel[..., None, None, None], axis=-1)[..., 0]  # [..., S, S]
  bce = optax.sigmoid_binary_cross_entropy(own, targets.astype(jnp.float32))
  fg = is_fg.astype(bool)
  pixels = targets.shape[-1] * targets.shape[-2]
  return _safe_div(jnp.sum(jnp.where(fg[..., None, None], bce, 0.0)),
                   jnp.sum(fg).astype(jnp.float32) * pixels)
