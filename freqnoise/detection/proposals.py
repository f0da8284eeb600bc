"""Region proposals from the RPN's outputs, per image, static shapes (mmdetection 1.0's RPN test
procedure, which DCTNet uses): per FPN level, the `pre_nms_top_n` highest-scoring anchors are
decoded, clipped to the image content and filtered by `min_size`, NMS (`nms_threshold`) runs per
level, then the `post_nms_top_n` best survivors over all levels are the proposals.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from freqnoise.detection import boxes as box_ops
from freqnoise.detection.nms import nms


def generate(objectness: jax.Array, deltas: jax.Array, anchors: np.ndarray,
             level_sizes: Sequence[int], image_size: jax.Array, *, pre_nms_top_n: int,
             post_nms_top_n: int, nms_threshold: float = 0.7,
             min_size: float = 0.0) -> tuple[jax.Array, jax.Array, jax.Array]:
  """One image's proposals.

  Args:
    objectness: [A] logits, levels concatenated in the anchors' order.
    deltas: [A, 4] box deltas (weights 1, 1, 1, 1).
    anchors: [A, 4] from `anchors.pyramid_anchors`; `level_sizes` its per-level counts.
    image_size: [2] (height, width) of the content (boxes are clipped to it).
  Returns:
    (boxes [P, 4], scores [P] (sigmoid), valid [P] bool), P = `post_nms_top_n`, best first;
    rows past the available proposals have valid False, score 0 and a zero box.
  """
  if objectness.shape[0] != anchors.shape[0] or sum(level_sizes) != anchors.shape[0]:
    raise ValueError(f"objectness {objectness.shape} / anchors {anchors.shape} / level sizes "
                     f"{tuple(level_sizes)} disagree")
  objectness = jax.lax.stop_gradient(objectness)
  deltas = jax.lax.stop_gradient(deltas)
  height, width = image_size[0].astype(jnp.float32), image_size[1].astype(jnp.float32)
  all_boxes, all_scores, all_valid = [], [], []
  start = 0
  for n in level_sizes:
    k = min(pre_nms_top_n, n)
    logits, index = jax.lax.top_k(objectness[start:start + n], k)
    level_anchors = jnp.asarray(anchors[start:start + n])[index]
    boxes = box_ops.decode(deltas[start:start + n][index], level_anchors)
    boxes = box_ops.clip_to_image(boxes, height, width)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    valid = (w > min_size) & (h > min_size)
    scores = jax.nn.sigmoid(logits)
    keep, keep_valid = nms(boxes, scores, nms_threshold, k, valid=valid)
    all_boxes.append(boxes[keep])
    all_scores.append(jnp.where(keep_valid, scores[keep], -1.0))
    all_valid.append(keep_valid)
    start += n
  boxes = jnp.concatenate(all_boxes)
  scores = jnp.concatenate(all_scores)
  valid = jnp.concatenate(all_valid)
  count = min(post_nms_top_n, boxes.shape[0])
  top_scores, index = jax.lax.top_k(scores, count)
  valid = valid[index]
  boxes = jnp.where(valid[:, None], boxes[index], 0.0)
  top_scores = jnp.where(valid, top_scores, 0.0)
  if count < post_nms_top_n:  # fewer anchors than proposals asked for: pad
    pad = post_nms_top_n - count
    boxes = jnp.pad(boxes, ((0, pad), (0, 0)))
    top_scores = jnp.pad(top_scores, (0, pad))
    valid = jnp.pad(valid, (0, pad))
  return boxes, top_scores, valid
