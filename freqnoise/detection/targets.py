"""Training targets for Mask R-CNN, per image with static shapes (callers vmap over images).

  * `match`: anchors / proposals x GT IoU -> matched GT and fg / bg / ignore labels (torchvision's
    `Matcher`, optionally with its low-quality matches for the RPN).
  * `sample_indices` / `sample`: random fg / bg subsampling to a fixed count (torchvision's
    `BalancedPositiveNegativeSampler`) with random scores + `top_k`, no boolean indexing.
  * `rpn_targets`: sampled RPN labels and box deltas (weights (1, 1, 1, 1)) per anchor.
  * `sample_rois`: the R-CNN minibatch of `num_samples` RoIs from proposals + GT boxes, with class
    labels and box deltas (weights (10, 10, 5, 5)).
  * `mask_targets`: each RoI's binary 28 x 28 target sampled from its GT's box-cropped mask with
    detectron2's aligned pixel model (`aligned_weights`, shared with `paste`).
Defaults are those of Mask R-CNN R50-FPN 1x (torchvision / mmdetection, as DCTNet used).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from freqnoise.detection import boxes as box_ops

RPN_BOX_WEIGHTS = (1.0, 1.0, 1.0, 1.0)
RCNN_BOX_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


def match(iou: jax.Array, gt_valid: jax.Array, fg_threshold: float, bg_threshold: float,
          allow_low_quality: bool = False) -> tuple[jax.Array, jax.Array]:
  """Assign each anchor / proposal its best GT; label it foreground, background or ignored.

  iou [A, N] (candidates x GT), gt_valid [N] bool (False = padding, never matched).
  Returns (matched_gt int32 [A]: index of the highest-IoU valid GT (first on ties; meaningful only
  where labels == 1), labels int32 [A]: 1 if that IoU >= fg_threshold, 0 if < bg_threshold,
  -1 (ignore) in between). With no valid GT every candidate is background.

  allow_low_quality (the RPN): for each valid GT, every candidate whose IoU equals that GT's
  highest IoU (all ties) also becomes foreground, keeping its own best GT as its match, exactly as
  torchvision's `Matcher(allow_low_quality_matches=True)`; unlike torchvision a GT whose best IoU
  is 0 (it overlaps no candidate) adds none, instead of turning every zero-IoU candidate foreground.
  """
  valid = gt_valid.astype(bool)[None, :]
  masked = jnp.where(valid, iou, -1.0)
  best = jnp.max(masked, axis=1)
  matched = jnp.argmax(masked, axis=1).astype(jnp.int32)
  labels = jnp.where(best >= fg_threshold, 1, jnp.where(best < bg_threshold, 0, -1))
  if allow_low_quality:
    per_gt_best = jnp.max(masked, axis=0)                                  # [N]
    is_best = (masked == per_gt_best[None, :]) & valid & (per_gt_best > 0)[None, :]
    labels = jnp.where(jnp.any(is_best, axis=1), 1, labels)
  return matched, labels.astype(jnp.int32)


def sample_indices(labels: jax.Array, key: jax.Array, num_samples: int,
                   positive_fraction: float) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Draw at most `num_samples` candidates: up to int(num_samples * positive_fraction) positives
  (labels == 1), the rest negatives (labels == 0), uniformly at random (labels == -1 never).

  Returns (indices int32 [num_samples] into labels, is_positive bool [num_samples],
  valid bool [num_samples]): the first slots hold the sampled positives, then the negatives; slots
  left over when there are too few candidates are not valid (their index is arbitrary).
  """
  size = labels.shape[0]
  max_pos = int(num_samples * positive_fraction)
  scores = jax.random.uniform(key, (size,))
  pos, neg = labels == 1, labels == 0
  num_pos = jnp.minimum(jnp.sum(pos), max_pos)
  num_neg = jnp.minimum(jnp.sum(neg), num_samples - num_pos)

  def top(mask, k):  # candidates score in [0, 1), others -1: a uniform random subset comes first
    k = min(k, size)
    idx = jax.lax.top_k(jnp.where(mask, scores, -1.0), k)[1] if k else jnp.zeros(0, jnp.int32)
    return jnp.pad(idx, (0, num_samples - k))

  pos_idx, neg_idx = top(pos, max_pos), top(neg, num_samples)
  slot = jnp.arange(num_samples)
  is_pos = slot < num_pos
  neg_slot = jnp.clip(slot - num_pos, 0, num_samples - 1)
  indices = jnp.where(is_pos, pos_idx, neg_idx[neg_slot]).astype(jnp.int32)
  valid = slot < num_pos + num_neg
  return indices, is_pos, valid


def sample(labels: jax.Array, key: jax.Array, num_samples: int,
           positive_fraction: float) -> tuple[jax.Array, jax.Array]:
  """`sample_indices` as masks over the candidates: (sampled positives bool [A], sampled
  negatives bool [A]); together at most num_samples, exactly num_samples when there are enough."""
  indices, is_pos, valid = sample_indices(labels, key, num_samples, positive_fraction)
  size = labels.shape[0]
  scatter = lambda take: jnp.zeros(size, bool).at[  # noqa: E731
      jnp.where(take, indices, size)].set(True, mode="drop")
  return scatter(valid & is_pos), scatter(valid & ~is_pos)


def _safe_encode(gt: jax.Array, ref: jax.Array, fg: jax.Array, weights) -> jax.Array:
  """encode(gt, ref) on foreground rows, 0 elsewhere; other rows (which may hold padded 0 boxes,
  whose log-size is -inf) are swapped for a unit box first, so no NaN is ever computed."""
  unit = jnp.array([0.0, 0.0, 1.0, 1.0], ref.dtype)
  gt, ref = (jnp.where(fg[:, None], x, unit) for x in (gt, ref))
  return jnp.where(fg[:, None], box_ops.encode(gt, ref, weights), 0.0)


def rpn_targets(anchors: jax.Array, gt_boxes: jax.Array, gt_classes: jax.Array, key: jax.Array,
                batch_size_per_image: int = 256, positive_fraction: float = 0.5,
                fg_iou: float = 0.7, bg_iou: float = 0.3) -> dict[str, jax.Array]:
  """RPN targets for one image. anchors [A, 4], gt_boxes [N, 4], gt_classes [N] (0 = padding).

  Matching with low-quality matches (torchvision / mmdet RPN), then `batch_size_per_image`
  anchors sampled. Returns labels int32 [A] (1 sampled fg, 0 sampled bg, -1 not sampled or
  ignored) and box_targets float32 [A, 4] (encode(matched GT, anchor), weights (1, 1, 1, 1), on
  sampled fg anchors; 0 elsewhere).
  """
  gt_valid = gt_classes > 0
  matched, labels = match(box_ops.iou(anchors, gt_boxes), gt_valid, fg_iou, bg_iou,
                          allow_low_quality=True)
  pos, neg = sample(labels, key, batch_size_per_image, positive_fraction)
  labels = jnp.where(pos, 1, jnp.where(neg, 0, -1)).astype(jnp.int32)
  box_targets = _safe_encode(gt_boxes[matched], anchors, pos, RPN_BOX_WEIGHTS)
  return {"labels": labels, "box_targets": box_targets}


def sample_rois(proposals: jax.Array, proposal_valid: jax.Array, gt_boxes: jax.Array,
                gt_classes: jax.Array, key: jax.Array, num_samples: int = 512,
                positive_fraction: float = 0.25, fg_iou: float = 0.5, bg_iou: float = 0.5,
                add_gt: bool = True) -> dict[str, jax.Array]:
  """The R-CNN minibatch of one image. proposals [P, 4] with proposal_valid [P] bool, gt_boxes
  [N, 4], gt_classes [N] (0 = padding).

  With add_gt the valid GT boxes join the candidates (torchvision / mmdet), so every GT is a
  foreground candidate. Candidates with IoU >= fg_iou are foreground, < bg_iou background (no
  low-quality matches); up to num_samples * positive_fraction foreground are sampled, the rest
  background. Returns, per sampled row [num_samples]:
    rois [., 4] (0 on padding rows), classes int32 (GT class on fg rows, 0 = background),
    box_targets [., 4] (encode(matched GT, roi), weights (10, 10, 5, 5), 0 off foreground),
    matched_gt int32 (index into the GT; meaningful on fg rows), weights float32 (1 for sampled
    rows, 0 for padding rows when there are too few candidates), is_fg bool.
  """
  gt_valid = gt_classes > 0
  candidates, cand_valid = proposals, proposal_valid.astype(bool)
  if add_gt:
    candidates = jnp.concatenate([proposals, gt_boxes], axis=0)
    cand_valid = jnp.concatenate([cand_valid, gt_valid], axis=0)
  matched, labels = match(box_ops.iou(candidates, gt_boxes), gt_valid, fg_iou, bg_iou)
  labels = jnp.where(cand_valid, labels, -1)
  indices, is_pos, valid = sample_indices(labels, key, num_samples, positive_fraction)
  is_fg = is_pos & valid
  rois = jnp.where(valid[:, None], candidates[indices], 0.0)
  matched_gt = matched[indices]
  classes = jnp.where(is_fg, gt_classes[matched_gt], 0).astype(jnp.int32)
  box_targets = _safe_encode(gt_boxes[matched_gt], rois, is_fg, RCNN_BOX_WEIGHTS)
  return {"rois": rois, "classes": classes, "box_targets": box_targets, "matched_gt": matched_gt,
          "weights": valid.astype(jnp.float32), "is_fg": is_fg}


def aligned_weights(points, start, length, cells: int):
  """Bilinear weights [P, cells] with which points [P] sample a grid of `cells` equal cells laid
  over [start, start + length] (a 1-d length > 0), each cell's value sitting at its centre and 0
  outside the grid: the tent max(0, 1 - |u - k|) at u = (p - start) / length * cells - 0.5.

  This is the "aligned" pixel model of detectron2 (RoIAlign(aligned=True), grid_sample with
  align_corners=False): image pixel i covers [i, i + 1) and its value sits at i + 0.5.
  `mask_targets` samples GT crops with it and `paste.paste_masks` samples predictions with it, so
  the two are each other's inverse up to resolution. NumPy or JAX arrays in, the same kind out (points under
  jit included: only operators that both support)."""
  u = (points - start) / length * cells - 0.5
  w = 1.0 - abs(u[:, None] - np.arange(cells, dtype=np.float32))
  return w * (w > 0)


def mask_targets(rois: jax.Array, matched_gt_boxes: jax.Array, matched_gt_masks: jax.Array,
                 output_size: int = 28) -> jax.Array:
  """Binary mask targets float32 [R, S, S] in {0, 1} (S = output_size) for rois [R, 4] from their
  matched GT boxes [R, 4] and box-cropped masks [R, M, M] uint8 (0..255).

  Bin (i, j) of a RoI (x1, y1, x2, y2) is centred at p = (x1 + (j + 0.5) w / S,
  y1 + (i + 0.5) h / S) in image pixels; in the GT crop's cell units (cell k centred at k) that is
  u = (p_x - gx1) / gw * M - 0.5, v = (p_y - gy1) / gh * M - 0.5; the crop is sampled there
  bilinearly with 0 outside it (the instance lies inside its box), divided by 255 and thresholded
  at >= 0.5. Bilinear sampling is separable, so each target is Wy @ mask @ Wx^T.

  Convention: detectron2's aligned sampling (`aligned_weights`), the one `paste.paste_masks` uses
  to put predictions back, so a perfect prediction pastes back onto its GT mask. This is
  detectron2's target (RoIAlign(output_size, aligned=True) of the full-image mask, then >= 0.5)
  up to the M x M crop resolution: where the crop holds the instance's image pixels
  exactly (M = box size in pixels, pixel-aligned box) it equals RoIAlign with one sample per bin
  (sampling_ratio=1) of the full mask; detectron2's adaptive sampling_ratio averages
  ceil(h / S) x ceil(w / S) points per bin instead, a sub-bin smoothing the crop's area-averaged
  cells stand in for. Keep M >= S: a coarser crop blurs the instance's edges over more than a
  bin (below M ~ 0.42 S even a box-filling mask loses its corner bins to the 0 outside).
  """
  s, m = output_size, matched_gt_masks.shape[-1]
  grid = (jnp.arange(s, dtype=jnp.float32) + 0.5) / s                  # [S] bin centres in [0, 1]

  def one(roi, gt, mask):
    gw = jnp.maximum(gt[2] - gt[0], 1e-6)
    gh = jnp.maximum(gt[3] - gt[1], 1e-6)
    px = roi[0] + grid * (roi[2] - roi[0])
    py = roi[1] + grid * (roi[3] - roi[1])
    wx = aligned_weights(px, gt[0], gw, m)                              # [S, M]
    wy = aligned_weights(py, gt[1], gh, m)                              # [S, M]
    hi = jax.lax.Precision.HIGHEST  # full f32 (no TF32 / bf16 passes): values sit near 127.5
    values = jnp.matmul(jnp.matmul(wy, mask.astype(jnp.float32), precision=hi), wx.T,
                        precision=hi) / 255.0
    return (values >= 0.5).astype(jnp.float32)

  return jax.vmap(one)(rois.astype(jnp.float32), matched_gt_boxes.astype(jnp.float32),
                       matched_gt_masks)
