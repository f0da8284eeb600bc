"""freqnoise.detection.nms: equal to a NumPy greedy NMS (seeds, ties, all suppressed, few boxes,
thresholds, masks), under jit and vmap; batched_nms per class; torchvision's nms / batched_nms."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.detection.peers import peer_outputs
from freqnoise.detection.nms import batched_nms, nms


def _iou32(p: np.ndarray, q: np.ndarray) -> np.float32:
  """IoU in float32, in the order of torchvision's kernel (as the implementation)."""
  w = max(min(p[2], q[2]) - max(p[0], q[0]), np.float32(0))
  h = max(min(p[3], q[3]) - max(p[1], q[1]), np.float32(0))
  area = lambda b: max(b[2] - b[0], np.float32(0)) * max(b[3] - b[1], np.float32(0))
  inter = w * h
  union = area(p) + area(q) - inter
  return inter / union if union > 0 else np.float32(0)


def greedy_nms(boxes, scores, iou_threshold, max_output, score_threshold=-np.inf, valid=None,
               classes=None) -> list[int]:
  keep: list[int] = []
  for i in np.argsort(-scores, kind="stable"):
    if not scores[i] > score_threshold or (valid is not None and not valid[i]):
      continue
    if any(_iou32(boxes[i], boxes[k]) > iou_threshold
           and (classes is None or classes[i] == classes[k]) for k in keep):
      continue
    keep.append(int(i))
    if len(keep) == max_output:
      break
  return keep


def _check(got, want: list[int], max_output: int) -> None:
  indices, valid = (np.asarray(x) for x in got)
  assert indices.shape == (max_output,) and indices.dtype == np.int32 and valid.dtype == bool
  n = len(want)
  np.testing.assert_array_equal(valid, np.arange(max_output) < n)
  np.testing.assert_array_equal(indices[:n], want)
  np.testing.assert_array_equal(indices[n:], 0)


def random_case(seed: int, n: int, integer: bool = False):
  rng = np.random.default_rng(seed)
  if integer:  # a coarse grid: exact ties of scores and of IoU with the threshold
    xy = rng.integers(0, 8, (n, 2))
    boxes = np.concatenate([xy, xy + rng.integers(1, 5, (n, 2))], 1).astype(np.float32)
    scores = (rng.integers(0, 4, n) / 4).astype(np.float32)
  else:
    xy = rng.uniform(0, 60, (n, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (n, 2))], 1).astype(np.float32)
    scores = rng.random(n).astype(np.float32)
  return boxes, scores


_jit_nms = jax.jit(nms, static_argnums=3)
_jit_batched = jax.jit(batched_nms, static_argnums=4)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("integer", [False, True])
def test_matches_greedy_reference(seed, integer):
  boxes, scores = random_case(seed, 60, integer)
  for thr, max_output in [(0.5, 20), (0.3, 100), (0.7, 8)]:
    want = greedy_nms(boxes, scores, thr, max_output)
    _check(_jit_nms(boxes, scores, thr, max_output), want, max_output)
  if seed == 0:
    _check(nms(boxes, scores, 0.5, 20), greedy_nms(boxes, scores, 0.5, 20), 20)  # eager


def test_ties_keep_lower_index_first():
  boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30], [20, 20, 30, 31]],
                   np.float32)
  scores = np.array([0.5, 0.5, 0.9, 0.9], np.float32)
  _check(_jit_nms(boxes, scores, 0.5, 4), [2, 0], 4)


def test_all_suppressed_few_boxes_and_thresholds():
  box = np.array([[1, 1, 9, 9]], np.float32)
  boxes, scores = np.repeat(box, 5, 0), np.linspace(0.1, 0.5, 5).astype(np.float32)
  _check(_jit_nms(boxes, scores, 0.5, 3), [4], 3)  # identical boxes: only the best survives
  _check(_jit_nms(boxes, scores, 1.0, 7), [4, 3, 2, 1, 0], 7)  # IoU 1 is not > 1: none suppressed
  _check(_jit_nms(boxes[:2], scores[:2], 0.5, 10), [1], 10)  # fewer boxes than max_output
  _check(_jit_nms(boxes, scores, 0.5, 3, score_threshold=0.5), [], 3)  # strict: 0.5 is not > 0.5
  valid = np.array([True, True, True, False, False])
  _check(_jit_nms(boxes, scores, 0.5, 3, valid=valid), [2], 3)
  boxes, scores = random_case(7, 40)
  for score_threshold in (0.3, 0.9):
    valid = np.random.default_rng(1).random(40) > 0.3
    want = greedy_nms(boxes, scores, 0.4, 15, score_threshold, valid)
    _check(_jit_nms(boxes, scores, 0.4, 15, score_threshold, valid), want, 15)


def test_chain_of_overlaps():
  # IoU 0.6 with the next box, 0.33 with the one after, scores descending: greedy keeps every
  # other box, the longest dependency chain (one fixed-point round per box)
  x = np.arange(30, dtype=np.float32) * 2.5
  boxes = np.stack([x, np.zeros(30), x + 10, np.full(30, 10)], 1).astype(np.float32)
  scores = np.linspace(1, 0.1, 30).astype(np.float32)
  want = greedy_nms(boxes, scores, 0.5, 30)
  assert want == list(range(0, 30, 2))
  _check(_jit_nms(boxes, scores, 0.5, 30), want, 30)
  _check(_jit_nms(boxes[::-1].copy(), scores, 0.5, 30), greedy_nms(boxes[::-1], scores, 0.5, 30),
         30)


def test_degenerate_and_nan_inputs():
  boxes = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 4, 4]], np.float32)
  scores = np.array([0.9, 0.8, np.nan], np.float32)
  _check(_jit_nms(boxes, scores, 0.5, 3), [0, 1], 3)  # zero-area boxes have IoU 0; NaN never kept
  _check(_jit_nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5, 2), [], 2)


def test_vmap_over_images_and_traced_thresholds():
  cases = [random_case(seed, 50) for seed in range(3)]
  boxes = np.stack([c[0] for c in cases])
  scores = np.stack([c[1] for c in cases])
  thresholds = np.array([0.3, 0.5, 0.7], np.float32)
  run = jax.jit(jax.vmap(functools.partial(nms, max_output=12)))
  indices, valid = run(boxes, scores, thresholds)
  for k in range(3):
    _check((indices[k], valid[k]), greedy_nms(boxes[k], scores[k], thresholds[k], 12), 12)


def test_batched_nms_keeps_other_classes():
  boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 60, 60]], np.float32)
  scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
  classes = np.array([1, 2, 1, 2])
  _check(_jit_batched(boxes, scores, classes, 0.5, 4), [0, 1, 3], 4)
  _check(_jit_nms(boxes, scores, 0.5, 4), [0, 3], 4)


@pytest.mark.parametrize("seed", range(3))
def test_batched_nms_matches_per_class_reference_under_vmap(seed):
  boxes, scores = random_case(seed, 60)
  classes = np.random.default_rng(seed).integers(1, 4, 60)
  want = greedy_nms(boxes, scores, 0.5, 30, classes=classes)
  _check(_jit_batched(boxes, scores, classes, 0.5, 30), want, 30)
  run = jax.jit(jax.vmap(lambda b, s, c: batched_nms(b, s, c, 0.5, 30)))
  twice = lambda x: np.stack([x, x])
  indices, valid = run(twice(boxes), twice(scores), twice(classes))
  _check((indices[1], valid[1]), want, 30)


@pytest.mark.parametrize("source", ["golden", "live"])
def test_matches_torchvision(source):
  p = peer_outputs("nms", source)  # 3 seeds of 200 boxes, 5 classes
  threshold = float(p["iou_threshold"])
  for seed in range(3):
    boxes, scores, classes = p[f"boxes_{seed}"], p[f"scores_{seed}"], p[f"classes_{seed}"]
    _check(_jit_nms(boxes, scores, threshold, 200), list(p[f"keep_{seed}"]), 200)
    _check(_jit_batched(boxes, scores, classes, threshold, 200),
           list(p[f"batched_keep_{seed}"]), 200)

def test_bad_arguments_raise():
  boxes, scores = random_case(0, 5)
  with pytest.raises(ValueError, match=r"boxes must have shape \[N, 4\].*\(5, 3\)"):
    nms(boxes[:, :3], scores, 0.5, 3)
  with pytest.raises(ValueError, match=r"scores must have shape \[N\] = \[5\].*\(4,\)"):
    nms(boxes, scores[:4], 0.5, 3)
  with pytest.raises(ValueError, match="max_output must be a positive"):
    nms(boxes, scores, 0.5, 0)
  with pytest.raises(ValueError, match=r"classes must have shape \[N\]"):
    batched_nms(boxes, scores, np.zeros(3, np.int32), 0.5, 3)
