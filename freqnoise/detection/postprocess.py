"""Detections from the box head's outputs, per image, static shapes (mmdetection's
`multiclass_nms` with a fixed-size candidate set): softmax scores of the K object classes, boxes
decoded per class (weights 10, 10, 5, 5) and clipped to the content, candidates scoring above
`score_threshold`, the best `pre_nms_top_n` of them into per-class NMS (`nms_threshold`), and the
first `max_detections` survivors. The fixed candidate cap is the only difference from the dynamic
original: it changes the result only when more than `pre_nms_top_n` (class, box) pairs pass the
threshold and some of the dropped ones would have survived into the top `max_detections`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from freqnoise.detection import boxes as box_ops
from freqnoise.detection.nms import batched_nms

RCNN_WEIGHTS = (10.0, 10.0, 5.0, 5.0)


def detect(class_logits: jax.Array, box_deltas: jax.Array, rois: jax.Array, rois_valid: jax.Array,
           image_size: jax.Array, *, score_threshold: float = 0.05, nms_threshold: float = 0.5,
           max_detections: int = 100, pre_nms_top_n: int = 1000) -> dict[str, jax.Array]:
  """One image: class logits [R, K + 1], deltas [R, K + 1, 4], RoIs [R, 4] with valid [R] ->
  {'boxes' [D, 4], 'scores' [D], 'classes' [D] (1..K), 'valid' [D]}, best first."""
  r, k1 = class_logits.shape
  k = k1 - 1
  scores = jax.nn.softmax(class_logits.astype(jnp.float32), axis=-1)[:, 1:]  # [R, K]
  boxes = box_ops.decode(box_deltas[:, 1:], rois[:, None, :], RCNN_WEIGHTS)  # [R, K, 4]
  boxes = box_ops.clip_to_image(boxes, image_size[0].astype(jnp.float32),
                                image_size[1].astype(jnp.float32))
  classes = jnp.broadcast_to(jnp.arange(1, k + 1, dtype=jnp.int32), (r, k))
  nonempty = (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
  ok = (scores > score_threshold) & rois_valid[:, None] & nonempty
  flat_scores = jnp.where(ok, scores, -1.0).reshape(-1)
  count = min(pre_nms_top_n, r * k)
  cand_scores, index = jax.lax.top_k(flat_scores, count)
  cand_valid = cand_scores > score_threshold
  cand_boxes = boxes.reshape(-1, 4)[index]
  cand_classes = classes.reshape(-1)[index]
  keep, keep_valid = batched_nms(cand_boxes, cand_scores, cand_classes, nms_threshold,
                                 max_detections, valid=cand_valid)
  keep_valid = keep_valid & cand_valid[keep]
  return {"boxes": jnp.where(keep_valid[:, None], cand_boxes[keep], 0.0),
          "scores": jnp.where(keep_valid, cand_scores[keep], 0.0),
          "classes": jnp.where(keep_valid, cand_classes[keep], 0),
          "valid": keep_valid}
