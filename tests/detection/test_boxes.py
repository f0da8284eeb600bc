"""freqnoise.detection.boxes: IoU vs a NumPy double loop and torchvision, the delta coding (round
trip, clip, torchvision's BoxCoder), clipping, flipping, jit == eager."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from tests.detection.peers import peer_outputs
from freqnoise.detection import boxes as B


def random_boxes(rng: np.random.Generator, n: int, size: float = 50.0) -> np.ndarray:
  xy = rng.uniform(-10, 100, (n, 2))
  wh = rng.uniform(0.5, size, (n, 2))
  return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


def iou_loop(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  out = np.zeros((len(a), len(b)), np.float64)
  for i, p in enumerate(a.astype(np.float64)):
    for j, q in enumerate(b.astype(np.float64)):
      w = max(min(p[2], q[2]) - max(p[0], q[0]), 0)
      h = max(min(p[3], q[3]) - max(p[1], q[1]), 0)
      union = max(p[2] - p[0], 0) * max(p[3] - p[1], 0) + max(q[2] - q[0], 0) * max(
          q[3] - q[1], 0) - w * h
      out[i, j] = w * h / union if union > 0 else 0.0
  return out


def test_iou_matches_double_loop_with_degenerate_boxes():
  rng = np.random.default_rng(0)
  a, b = random_boxes(rng, 12), random_boxes(rng, 9)
  a[0] = 0  # zero-area padding box
  a[1] = [5, 5, 5, 20]  # zero width
  a[2] = [30, 30, 20, 20]  # inverted
  b[0] = 0
  b[1] = a[3]  # identical boxes: IoU 1
  got = np.asarray(B.iou(a, b))
  assert not np.isnan(got).any()
  np.testing.assert_allclose(got, iou_loop(a, b), atol=1e-6)
  assert got[0, 0] == 0 and got[3, 1] == pytest.approx(1.0)
  np.testing.assert_allclose(np.asarray(jax.jit(B.iou)(a, b)), got, atol=1e-7)


def test_iou_broadcasts_leading_dims_and_area():
  rng = np.random.default_rng(1)
  a, b = random_boxes(rng, 2 * 5).reshape(2, 5, 4), random_boxes(rng, 2 * 3).reshape(2, 3, 4)
  got = np.asarray(B.iou(a, b))
  assert got.shape == (2, 5, 3)
  for k in range(2):
    np.testing.assert_allclose(got[k], iou_loop(a[k], b[k]), atol=1e-6)
  np.testing.assert_allclose(np.asarray(B.area(np.array([[0, 0, 2, 3], [4, 4, 2, 9]], np.float32))),
                             [6, 0])


@pytest.mark.parametrize("source", ["golden", "live"])
def test_iou_matches_torchvision(source):
  p = peer_outputs("boxes", source)
  np.testing.assert_allclose(np.asarray(jax.jit(B.iou)(p["iou_a"], p["iou_b"])), p["iou"],
                             atol=1e-5)

def _boxes_from(params: np.ndarray) -> np.ndarray:
  """[N, 4] (cx, cy, log w, log h) -> boxes."""
  cx, cy, w, h = params[:, 0], params[:, 1], np.exp(params[:, 2]), np.exp(params[:, 3])
  return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1).astype(np.float32)


_round_trip = jax.jit(lambda b, a, w: B.decode(B.encode(b, a, w), a, w), static_argnums=2)
_PARAMS = hnp.arrays(np.float64, (8, 4), elements=st.floats(-3, 3))


@settings(max_examples=40, deadline=None)
@given(anchor_params=_PARAMS, offsets=_PARAMS,
       weights=st.sampled_from([(1.0, 1.0, 1.0, 1.0), (10.0, 10.0, 5.0, 5.0)]))
def test_encode_decode_round_trip(anchor_params, offsets, weights):
  anchor_params = anchor_params * [100, 100, 1, 1] + [300, 300, 3, 3]  # sizes e^0..e^6
  anchors = _boxes_from(anchor_params)
  # box sizes within e^+-3 of the anchor's: inside decode's clip (log(1000/16) = 4.1)
  box_params = anchor_params + offsets * [30, 30, 1, 1]
  boxes = _boxes_from(box_params)
  got = np.asarray(_round_trip(boxes, anchors, weights))
  np.testing.assert_allclose(got, boxes, rtol=1e-4, atol=2e-3)


def test_encode_values_and_decode_clip():
  anchors = np.array([[0, 0, 10, 20]], np.float32)
  boxes = np.array([[5, 0, 25, 40]], np.float32)
  deltas = np.asarray(B.encode(boxes, anchors, (10, 10, 5, 5)))
  np.testing.assert_allclose(deltas, [[10 * 10 / 10, 10 * 10 / 20, 5 * math.log(2),
                                       5 * math.log(2)]], rtol=1e-6)
  huge = np.array([[0, 0, 50, -50]], np.float32)
  out = np.asarray(B.decode(huge, anchors))
  clip = math.log(1000 / 16)
  np.testing.assert_allclose(out[0, 2] - out[0, 0], 10 * math.exp(clip), rtol=1e-5)  # clamped
  np.testing.assert_allclose(out[0, 3] - out[0, 1], 20 * math.exp(-50), atol=1e-12)  # no floor
  np.testing.assert_allclose((out[0, 0] + out[0, 2]) / 2, 5, rtol=1e-6)  # centre kept
  out = np.asarray(B.decode(np.array([[0, 0, 3.0, 0]], np.float32), anchors, clip=1.0))
  np.testing.assert_allclose(out[0, 2] - out[0, 0], 10 * math.e, rtol=1e-5)
  assert np.isfinite(np.asarray(B.decode(np.full((1, 4), 1e30, np.float32), anchors))).all()


@pytest.mark.parametrize("source", ["golden", "live"])
def test_coder_matches_torchvision(source):
  p = peer_outputs("boxes", source)  # torchvision's BoxCoder((10, 10, 5, 5))
  weights = tuple(float(w) for w in p["coder_weights"])
  got = np.asarray(B.encode(p["coder_boxes"], p["coder_anchors"], weights))
  np.testing.assert_allclose(got, p["coder_encoded"], rtol=1e-5, atol=1e-5)
  got = np.asarray(B.decode(p["coder_deltas"], p["coder_anchors"], weights))
  np.testing.assert_allclose(got, p["coder_decoded"], rtol=1e-5, atol=1e-4)

def test_coding_broadcasts_and_jits():
  rng = np.random.default_rng(4)
  anchors = random_boxes(rng, 6)  # [6, 4] against boxes [3, 6, 4]
  boxes = random_boxes(rng, 18).reshape(3, 6, 4)
  eager = np.asarray(B.encode(boxes, anchors))
  assert eager.shape == (3, 6, 4)
  np.testing.assert_allclose(eager[1], np.asarray(B.encode(boxes[1], anchors)), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(jax.jit(B.encode)(boxes, anchors)), eager, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(jax.jit(B.decode)(eager, anchors)),
                             np.asarray(B.decode(eager, anchors)), rtol=1e-6)


def test_clip_to_image_scalar_traced_and_per_image():
  boxes = np.array([[[-5, -5, 50, 50], [10, 20, 30, 40]],
                    [[-1, 2, 200, 300], [90, 90, 120, 130]]], np.float32)
  np.testing.assert_array_equal(np.asarray(B.clip_to_image(boxes[0], 32, 48)),
                                [[0, 0, 48, 32], [10, 20, 30, 32]])
  per_image = np.asarray(B.clip_to_image(boxes, jnp.array([32, 100]), jnp.array([48, 100])))
  np.testing.assert_array_equal(per_image[1], [[0, 2, 100, 100], [90, 90, 100, 100]])
  np.testing.assert_array_equal(per_image[0], [[0, 0, 48, 32], [10, 20, 30, 32]])
  jitted = jax.jit(B.clip_to_image)(boxes, jnp.array([32, 100]), jnp.array([48, 100]))
  np.testing.assert_array_equal(np.asarray(jitted), per_image)
  vmapped = jax.vmap(B.clip_to_image)(boxes, jnp.array([32, 100]), jnp.array([48, 100]))
  np.testing.assert_array_equal(np.asarray(vmapped), per_image)


def test_flip_horizontal():
  boxes = np.array([[[1, 2, 5, 8]], [[0, 0, 10, 10]]], np.float32)
  np.testing.assert_array_equal(np.asarray(B.flip_horizontal(boxes[0], 20)), [[15, 2, 19, 8]])
  flipped = B.flip_horizontal(boxes, jnp.array([20.0, 10.0]))
  np.testing.assert_array_equal(np.asarray(flipped), [[[15, 2, 19, 8]], [[0, 0, 10, 10]]])
  np.testing.assert_array_equal(np.asarray(jax.jit(B.flip_horizontal)(flipped, [20.0, 10.0])),
                                boxes)


def test_bad_shapes_raise():
  with pytest.raises(ValueError, match=r"shape \[\.\.\., 4\].*\(3, 5\)"):
    B.iou(np.zeros((3, 5)), np.zeros((2, 4)))
  with pytest.raises(ValueError, match="iou needs"):
    B.iou(np.zeros(4), np.zeros((2, 4)))
  with pytest.raises(ValueError, match="weights must be 4 positive"):
    B.encode(np.zeros((1, 4)), np.ones((1, 4)), (1, 1, 0, 1))
  with pytest.raises(ValueError, match=r"height must be .*\(3,\)"):
    B.clip_to_image(np.zeros((2, 5, 4)), np.ones(3), 4)
