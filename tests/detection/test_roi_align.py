"""freqnoise.detection.roi_align: equal to a NumPy port of torchvision's CPU kernel (aligned or
not, boxes partly / wholly outside the map, tiny boxes), multi-level assignment and pooling,
gradients, torchvision's roi_align and MultiScaleRoIAlign, jit == eager."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from tests.detection.peers import peer_outputs
from freqnoise.detection import roi_align as roi_module
from freqnoise.detection.roi_align import fpn_levels, multilevel_roi_align, roi_align


def _bilinear(f: np.ndarray, y: np.float32, x: np.float32) -> np.ndarray:
  h, w = f.shape[:2]
  if y < -1.0 or y > h or x < -1.0 or x > w:
    return np.zeros(f.shape[2], np.float32)
  y, x = max(y, np.float32(0)), max(x, np.float32(0))
  y_low, x_low = int(y), int(x)
  if y_low >= h - 1:
    y_low = y_high = h - 1
    y = np.float32(y_low)
  else:
    y_high = y_low + 1
  if x_low >= w - 1:
    x_low = x_high = w - 1
    x = np.float32(x_low)
  else:
    x_high = x_low + 1
  ly, lx = y - y_low, x - x_low
  hy, hx = 1 - ly, 1 - lx
  return (hy * hx * f[y_low, x_low] + hy * lx * f[y_low, x_high] + ly * hx * f[y_high, x_low]
          + ly * lx * f[y_high, x_high])


def roi_align_reference(f: np.ndarray, boxes: np.ndarray, out: int, scale: float, sr: int,
                        aligned: bool) -> np.ndarray:
  """torchvision's roi_align_forward_kernel_impl (fixed sampling_ratio), loops, float32."""
  f32 = np.float32
  result = np.zeros((len(boxes), out, out, f.shape[2]), np.float32)
  offset = f32(0.5 if aligned else 0.0)
  for r, box in enumerate(boxes.astype(np.float32)):
    x1, y1, x2, y2 = (c * f32(scale) - offset for c in box)
    rw, rh = x2 - x1, y2 - y1
    if not aligned:
      rw, rh = max(rw, f32(1)), max(rh, f32(1))
    bw, bh = rw / f32(out), rh / f32(out)
    for ph in range(out):
      for pw in range(out):
        acc = np.zeros(f.shape[2], np.float32)
        for iy in range(sr):
          y = y1 + f32(ph) * bh + f32(iy + 0.5) * bh / f32(sr)
          for ix in range(sr):
            x = x1 + f32(pw) * bw + f32(ix + 0.5) * bw / f32(sr)
            acc += _bilinear(f, y, x)
        result[r, ph, pw] = acc / f32(sr * sr)
  return result


def _features(seed: int, h: int, w: int, c: int) -> np.ndarray:
  return np.random.default_rng(seed).normal(size=(h, w, c)).astype(np.float32)


def _boxes(seed: int, n: int, h: float, w: float) -> np.ndarray:
  """Random boxes over and around an `h x w` image, plus hand-picked awkward ones."""
  rng = np.random.default_rng(seed)
  xy = rng.uniform([-0.3 * w, -0.3 * h], [w, h], (n, 2))
  wh = rng.uniform(0.2, [0.8 * w, 0.8 * h], (n, 2))
  special = [[-5, -5, 3, 4],  # partly outside, top-left
             [w - 2, h - 3, w + 6, h + 9],  # partly outside, bottom-right
             [w + 3, h + 3, w + 9, h + 9],  # wholly outside
             [2.3, 1.7, 2.4, 1.75],  # tiny
             [0, 0, 0, 0],  # padding
             [0, 0, w, h]]  # the whole image
  return np.concatenate([np.concatenate([xy, xy + wh], 1), special]).astype(np.float32)


_jit_roi_align = jax.jit(roi_align, static_argnums=(2, 3, 4, 5))


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("scale,sr,out", [(1.0, 2, 3), (0.25, 2, 4), (0.5, 1, 2), (0.5, 3, 2)])
def test_matches_numpy_reference(aligned, scale, sr, out):
  f = _features(0, 9, 13, 3)
  boxes = _boxes(1, 10, 9 / scale, 13 / scale)
  want = roi_align_reference(f, boxes, out, scale, sr, aligned)
  got = np.asarray(_jit_roi_align(f, boxes, out, scale, sr, aligned))
  assert got.shape == (len(boxes), out, out, 3)
  np.testing.assert_allclose(got, want, atol=1e-5)
  assert np.abs(got[-4]).max() == 0  # the box wholly outside reads nothing


def test_eager_equals_jit_and_vmap():
  f = np.stack([_features(s, 8, 10, 2) for s in range(2)])
  boxes = np.stack([_boxes(s, 5, 8, 10) for s in range(2)])
  eager = np.asarray(roi_align(f[0], boxes[0], 3, 1.0))
  np.testing.assert_allclose(np.asarray(_jit_roi_align(f[0], boxes[0], 3, 1.0, 2, True)), eager,
                             atol=1e-5)
  batched = jax.jit(jax.vmap(lambda f, b: roi_align(f, b, 3, 1.0)))(f, boxes)
  np.testing.assert_allclose(np.asarray(batched[0]), eager, atol=1e-5)
  np.testing.assert_allclose(np.asarray(batched[1]),
                             roi_align_reference(f[1], boxes[1], 3, 1.0, 2, True), atol=1e-5)


def test_gradients_equal_autodiff_and_finite_differences(monkeypatch):
  f = _features(8, 9, 11, 2)
  boxes = np.array([[3.3, 2.1, 20.4, 17.9], [-4, 5, 9, 30]], np.float32)
  loss = lambda f, b: (roi_align(f, b, 3, 0.5, sampling_ratio=1) ** 2).sum()  # K = 4: quick jit
  d_f, d_b = jax.jit(jax.grad(loss, argnums=(0, 1)))(f, boxes)  # the custom VJP
  eps = 1e-2  # central differences in float32, on coordinates away from sample-cell edges
  jit_loss = jax.jit(loss)
  for r, c in [(0, 0), (0, 3), (1, 2)]:
    up, down = boxes.copy(), boxes.copy()
    up[r, c] += eps
    down[r, c] -= eps
    numeric = (jit_loss(f, up) - jit_loss(f, down)) / (2 * eps)
    np.testing.assert_allclose(d_b[r, c], numeric, rtol=2e-2, atol=2e-3)
  monkeypatch.setattr(roi_module, "_weighted_gather", roi_module._gather_sum)  # plain autodiff
  want_f, want_b = jax.jit(jax.grad(loss, argnums=(0, 1)))(f, boxes)
  np.testing.assert_allclose(d_f, want_f, atol=1e-5)
  np.testing.assert_allclose(d_b, want_b, rtol=1e-5, atol=1e-5)
  assert np.abs(d_f).max() > 0 and np.abs(d_b).max() > 0


@pytest.mark.parametrize("source", ["golden", "live"])
def test_matches_torchvision_roi_align(source):
  p = peer_outputs("roi_align", source)  # 22 boxes per (scale, aligned), awkward ones included
  for i, (scale, aligned) in enumerate(zip(p["scales"].tolist(), p["aligned"].tolist())):
    got = np.asarray(_jit_roi_align(p["features"], p[f"boxes_{i}"], 7, scale, 2, aligned))
    np.testing.assert_allclose(got, p[f"pooled_{i}"], atol=1e-5)

def test_fpn_levels_match_reference():
  rng = np.random.default_rng(4)
  sides = np.concatenate([rng.uniform(0, 1000, (200, 2)), [[0, 0], [112, 112], [224, 224],
                                                            [448, 448], [111.9, 112], [8, 8]]])
  boxes = np.concatenate([np.full_like(sides, 3.0), 3.0 + sides], 1).astype(np.float32)
  got = np.asarray(jax.jit(fpn_levels)(boxes))
  s = np.sqrt(sides[:, 0].astype(np.float32) * sides[:, 1].astype(np.float32))
  with np.errstate(divide="ignore"):
    k = np.floor(4 + np.log2(s / 224) + 1e-6)
  want = (np.clip(k, 2, 5) - 2).astype(np.int32)
  np.testing.assert_array_equal(got, want)
  np.testing.assert_array_equal(got[-6:], [0, 1, 2, 3, 0, 0])  # 111.9 x 112 is below P3: P2
  np.testing.assert_array_equal(np.asarray(fpn_levels(boxes)), got)  # eager


def test_multilevel_pools_each_box_from_its_level():
  strides = (4, 8, 16, 32)
  height, width = 128, 96
  features = [_features(10 + l, math.ceil(height / s), math.ceil(width / s), 3)
              for l, s in enumerate(strides)]
  rng = np.random.default_rng(5)
  xy = rng.uniform(-10, [width, height], (30, 2))
  boxes = np.concatenate([xy, xy + rng.uniform(1, 200, (30, 2))], 1).astype(np.float32)
  special = [[0, 0, 0, 0], [5, 5, 30, 30], [-9, 3, 141, 153], [-50, 20, 250, 270],
             [-20, -20, 480, 490]]  # padding, then one box per level P2..P5
  boxes = np.concatenate([boxes, special]).astype(np.float32)
  levels = np.asarray(fpn_levels(boxes, strides))
  np.testing.assert_array_equal(levels[-5:], [0, 0, 1, 2, 3])
  for aligned in (True, False):
    run = jax.jit(lambda f, b: multilevel_roi_align(f, b, 3, strides, aligned=aligned))
    got = np.asarray(run(features, boxes))
    if aligned:  # eager; XLA fuses (e.g. into FMAs) under jit, moving coordinates by an ulp
      np.testing.assert_allclose(
          np.asarray(multilevel_roi_align(features, boxes, 3, strides, aligned=aligned)), got,
          atol=1e-5)
    for r, l in enumerate(levels):
      want = roi_align_reference(features[l], boxes[r:r + 1], 3, 1 / strides[l], 2, aligned)
      np.testing.assert_allclose(got[r:r + 1], want, atol=1e-5)


@pytest.mark.parametrize("source", ["golden", "live"])
def test_multilevel_matches_torchvision_multiscale_roi_align(source):
  p = peer_outputs("roi_align", source)  # P2..P5 of a 128 x 96 image, 50 boxes
  strides = tuple(int(s) for s in p["ms_strides"])
  features = [p[f"ms_features_{l}"] for l in range(len(strides))]
  assert set(np.asarray(fpn_levels(p["ms_boxes"], strides))) == {0, 1, 2, 3}
  run = jax.jit(lambda f, b: multilevel_roi_align(f, b, 7, strides, aligned=False))
  got = np.asarray(run(features, p["ms_boxes"]))
  np.testing.assert_allclose(got, p["ms_pooled"], atol=1e-5)

def test_bad_arguments_raise():
  f, boxes = _features(0, 4, 4, 1), _boxes(0, 2, 4, 4)
  with pytest.raises(ValueError, match=r"features must have shape \[H, W, C\].*\(1, 4, 4, 1\)"):
    roi_align(f[None], boxes, 2, 1.0)
  with pytest.raises(ValueError, match=r"boxes must have shape \[R, 4\].*\(8, 3\)"):
    roi_align(f, boxes[:, :3], 2, 1.0)
  with pytest.raises(ValueError, match="sampling_ratio must be a positive int"):
    roi_align(f, boxes, 2, 1.0, sampling_ratio=0)
  with pytest.raises(ValueError, match="output_size must be a positive int"):
    roi_align(f, boxes, 0, 1.0)
  with pytest.raises(ValueError, match="strides must be increasing powers of two"):
    fpn_levels(boxes, (4, 12))
  with pytest.raises(ValueError, match="got 1 feature levels for 2 strides"):
    multilevel_roi_align([f], boxes, 2, (4, 8))
  with pytest.raises(ValueError, match="one C"):
    multilevel_roi_align([f, f[:2, :2, :0]], boxes, 2, (4, 8))
