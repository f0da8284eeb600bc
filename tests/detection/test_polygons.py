"""YOLO-seg parsing and its errors, pycocotools-equal rasterisation, exact box-filtered crops."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from freqnoise.detection.polygons import (crop_mask, parse_yolo_seg, polygon_area, polygon_box,
                                          rasterize)


def _coco_decode(flat_polygons, h, w):
  return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(flat_polygons, h, w)))


# pycocotools' decode warns under NumPy 2 (its Cython wrapper); the reference call here is its own.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_rasterize_equals_pycocotools():
  rng = np.random.default_rng(0)
  h, w = 37, 53
  cases = [[np.array([[3.2, 4.7], [40.1, 9.9], [20.5, 30.3]])],  # triangle, fractional vertices
           [np.array([[5, 5], [45, 5], [45, 30], [25, 12], [5, 30]])],  # concave
           [np.array([[1, 1], [10, 1], [10, 10]]), np.array([[30, 20], [50, 20], [40, 35]])]]
  cases.append([rng.uniform(0, [w, h], size=(9, 2))])  # self-intersecting, random
  for polys in cases:
    got = rasterize(polys, h, w)
    assert got.dtype == np.uint8 and got.shape == (h, w)
    np.testing.assert_array_equal(got, _coco_decode([p.ravel().tolist() for p in polys], h, w))
    assert polygon_area(polys, h, w) == got.sum()
  # flat lists work too, and an integer-vertex rectangle covers exactly pixels [x1, x2) x [y1, y2)
  rect = rasterize([[8, 8, 24, 8, 24, 16, 8, 16]], 48, 64)
  expected = np.zeros((48, 64), np.uint8)
  expected[8:16, 8:24] = 1
  np.testing.assert_array_equal(rect, expected)
  np.testing.assert_array_equal(polygon_box([np.array([[8, 8], [24, 8], [24, 16], [8, 16]])]),
                                [8, 8, 24, 16])


def test_crop_mask_full_and_half_boxes():
  mask = np.zeros((48, 64), bool)
  mask[8:24, 4:36] = True
  np.testing.assert_array_equal(crop_mask(mask, (4, 8, 36, 24), 16), np.full((16, 16), 255))
  # the left half of the box covered: left 8 columns 255, right 8 columns 0
  half = crop_mask(mask, (4, 8, 68, 24), 16)
  np.testing.assert_array_equal(half[:, :8], 255)
  np.testing.assert_array_equal(half[:, 8:], 0)
  # cells that straddle pixels: box [0, 10) in 4 cells of 2.5 px, mask covers x < 4:
  # cell 0 full, cell 1 = [2.5, 5) covers [2.5, 4) = 0.6 of it -> 153, cells 2, 3 empty
  m = np.zeros((10, 10), np.uint8)
  m[:, :4] = 1
  np.testing.assert_array_equal(crop_mask(m, (0, 0, 10, 10), 4), [[255, 153, 0, 0]] * 4)
  # parts of the box outside the image count as uncovered
  ones = np.ones((10, 10), np.uint8)
  np.testing.assert_array_equal(crop_mask(ones, (-5, 0, 5, 10), 2), [[0, 255]] * 2)


def test_crop_mask_is_exact_box_filter():
  rng = np.random.default_rng(1)
  mask = rng.random((30, 40)) < 0.4
  box = (3.3, 2.7, 31.9, 25.1)
  m = 7
  crop = crop_mask(mask, box, m).astype(np.float64) / 255
  # the cells' mean coverage times the box area is the mask's area inside the box (exact integral)
  x1, y1, x2, y2 = box
  cols = np.clip(np.minimum(np.arange(40) + 1, x2) - np.maximum(np.arange(40), x1), 0, None)
  rows = np.clip(np.minimum(np.arange(30) + 1, y2) - np.maximum(np.arange(30), y1), 0, None)
  inside = rows @ mask @ cols
  area = (x2 - x1) * (y2 - y1)
  assert crop.mean() * area == pytest.approx(inside, abs=0.5 / 255 * area)  # uint8 rounding
  # and each cell agrees with dense supersampling (64 x 64 points per cell) to a few levels
  s = 64
  t = (np.arange(m * s) + 0.5) / (m * s)
  ys, xs = (y1 + t * (y2 - y1)).astype(int), (x1 + t * (x2 - x1)).astype(int)
  dense = mask[ys[:, None], xs[None, :]].reshape(m, s, m, s).mean(axis=(1, 3))
  np.testing.assert_allclose(crop, dense, atol=0.05)


def test_crop_mask_degenerate_and_bad_boxes():
  mask = np.zeros((10, 10), np.uint8)
  mask[:, 4] = 1
  # a zero-width box point-samples its column
  np.testing.assert_array_equal(crop_mask(mask, (4.5, 0, 4.5, 10), 4), 255)
  np.testing.assert_array_equal(crop_mask(mask, (20, 20, 30, 30), 4), 0)  # wholly outside
  with pytest.raises(ValueError, match="x2 >= x1"):
    crop_mask(mask, (5, 0, 4, 10), 4)
  with pytest.raises(ValueError, match=r"\[H, W\]"):
    crop_mask(mask[None], (0, 0, 4, 4), 4)


def test_parse_yolo_seg(tmp_path):
  path = tmp_path / "ok.txt"
  path.write_text("3 0 0 0.5 0 0.5 0.25\n\n79 0.1 0.2 1.004 0.2 0.3 0.9 -0.003 0.5\n")
  classes, polygons = parse_yolo_seg(path, width=200, height=100)
  np.testing.assert_array_equal(classes, [3, 79])
  assert classes.dtype == np.int32
  np.testing.assert_allclose(polygons[0], [[0, 0], [100, 0], [100, 25]])
  # coordinates within the tolerance are clipped to the image
  np.testing.assert_allclose(polygons[1], [[20, 20], [200, 20], [60, 90], [0, 50]])


@pytest.mark.parametrize("line, problem", [
    ("2 0.1 0.1 0.5 0.1 0.5", "odd number of coordinates"),
    ("2 0.1 0.1 0.5 0.1", "at least 3 vertices"),
    ("2 0.1 0.1 0.5 abc 0.2 0.2", "not all numbers"),
    ("1.5 0.1 0.1 0.5 0.1 0.5 0.5", "not an integer"),
    ("80 0.1 0.1 0.5 0.1 0.5 0.5", "class id 80 is outside 0..79"),
    ("-1 0.1 0.1 0.5 0.1 0.5 0.5", "class id -1 is outside"),
    ("2 0.1 0.1 1.2 0.1 0.5 0.5", "outside \\[0, 1\\]"),
    ("2 0.1 -0.5 0.2 0.1 0.5 0.5", "outside \\[0, 1\\]"),
    ("2 0.1 nan 0.2 0.1 0.5 0.5", "not all finite"),
])
def test_parse_yolo_seg_errors_name_file_and_line(tmp_path, line, problem):
  path = tmp_path / "bad.txt"
  path.write_text(f"0 0.1 0.1 0.9 0.1 0.5 0.9\n{line}\n")
  with pytest.raises(ValueError, match=rf"bad\.txt, line 2: .*{problem}"):
    parse_yolo_seg(path, 64, 48)
