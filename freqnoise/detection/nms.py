"""Greedy non-maximum suppression with static shapes (jittable, vmappable over images).

`nms` keeps, in descending score order (ties: lower index first, a stable sort of -score;
torchvision's sort is not stable, so its order among tied scores is unspecified), each
candidate whose IoU with every box kept before it is <= `iou_threshold` (a box is suppressed when
IoU > threshold, as torchvision), and stops after `max_output` kept boxes. Candidates are the boxes
with `valid` (default all) and `score > score_threshold` (strict, as torchvision's R-CNN box
threshold; NaN scores are never candidates).
Output: `indices` int32 [max_output] into the input boxes, kept boxes first in descending score
order, and `valid` bool [max_output]; padding rows have valid False and index 0.

Algorithm (exact greedy NMS, in parallel form): sort, take the [N, N] matrix S[j, i] = "j comes
before i and IoU(j, i) > threshold", and iterate keep_i <- candidate_i and no kept j with S[j, i]
from keep = candidates until nothing changes. Greedy NMS is the unique fixed point (keep_i depends
only on keep_j for j < i, so the first t entries are final after t rounds): the loop ends after
as many rounds as the longest chain of boxes whose fate depends on the previous one's, a handful
on detection outputs (at worst N, e.g. a row of boxes each overlapping only the next, with
descending scores). Each round is one masked [N, N] reduction, so it suits accelerators better
than a sequential loop over kept boxes; memory is O(N^2) (N = 2000: 4 MB of booleans). The first
`max_output` kept boxes are the ones greedy NMS stopping at `max_output` keeps. Under `jax.vmap`
the loop runs until every image has converged.
`batched_nms` is per-class NMS, the semantics of torchvision's `batched_nms`: boxes of different
classes never suppress each other. Rather than its coordinate offset trick (shifting each class
by class * (max coordinate + 1), which in float32 rounds coordinates by up to
~(num_classes * image size) * 2^-24 and can flip IoU tests right at the threshold), S is
masked to the same class, which is exact; the result is what torchvision's per-class loop gives.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from freqnoise.detection.boxes import iou


def _check(boxes: jax.Array, scores: jax.Array, max_output: int, valid, classes) -> None:
  if boxes.ndim != 2 or boxes.shape[1] != 4:
    raise ValueError(f"boxes must have shape [N, 4], got {boxes.shape} (vmap over images)")
  n = boxes.shape[0]
  if scores.shape != (n,):
    raise ValueError(f"scores must have shape [N] = [{n}], got {scores.shape}")
  if valid is not None and jnp.shape(valid) != (n,):
    raise ValueError(f"valid must have shape [N] = [{n}], got {jnp.shape(valid)}")
  if classes is not None and jnp.shape(classes) != (n,):
    raise ValueError(f"classes must have shape [N] = [{n}], got {jnp.shape(classes)}")
  if not isinstance(max_output, int) or max_output < 1:
    raise ValueError(f"max_output must be a positive (static) int, got {max_output!r}")


def _greedy(boxes: jax.Array, scores: jax.Array, iou_threshold, max_output: int,
            score_threshold, valid, classes) -> tuple[jax.Array, jax.Array]:
  _check(boxes, scores, max_output, valid, classes)
  n = boxes.shape[0]
  if n == 0:
    return jnp.zeros((max_output,), jnp.int32), jnp.zeros((max_output,), bool)
  order = jnp.argsort(-scores, stable=True)
  sorted_boxes = boxes[order]
  candidate = scores[order] > score_threshold
  if valid is not None:
    candidate = candidate & jnp.asarray(valid, bool)[order]
  position = jnp.arange(n)
  # suppresses[j, i]: j comes before i and overlaps it (a box never suppresses itself)
  suppresses = (iou(sorted_boxes, sorted_boxes) > iou_threshold) & (
      position[:, None] < position[None, :])
  if classes is not None:
    sorted_classes = jnp.asarray(classes)[order]
    suppresses = suppresses & (sorted_classes[:, None] == sorted_classes[None, :])

  def body(state):
    keep, _ = state
    return candidate & ~jnp.any(suppresses & keep[:, None], axis=0), keep

  keep, _ = lax.while_loop(lambda state: jnp.any(state[0] != state[1]), body,
                           (candidate, ~candidate))
  kept = jnp.nonzero(keep, size=max_output, fill_value=0)[0]  # positions in score order
  out_valid = jnp.arange(max_output) < jnp.sum(keep)
  indices = jnp.where(out_valid, order[kept], 0).astype(jnp.int32)
  return indices, out_valid


def nms(boxes: jax.Array, scores: jax.Array, iou_threshold: float, max_output: int,
        score_threshold: float = -jnp.inf, valid: jax.Array | None = None
        ) -> tuple[jax.Array, jax.Array]:
  """Greedy NMS of `boxes` [N, 4] scored `scores` [N] -> (indices int32 [max_output], valid bool
  [max_output]); `iou_threshold` / `score_threshold` may be traced, `max_output` is static."""
  boxes, scores = jnp.asarray(boxes), jnp.asarray(scores)
  return _greedy(boxes, scores, iou_threshold, max_output, score_threshold, valid, None)


def batched_nms(boxes: jax.Array, scores: jax.Array, classes: jax.Array, iou_threshold: float,
                max_output: int, score_threshold: float = -jnp.inf,
                valid: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """NMS within each class (`classes` int [N]): as `nms`, but a box only suppresses boxes of its
  own class; kept boxes of all classes come out together in descending score order."""
  boxes, scores = jnp.asarray(boxes), jnp.asarray(scores)
  return _greedy(boxes, scores, iou_threshold, max_output, score_threshold, valid, classes)
