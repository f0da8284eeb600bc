"""freqnoise.detection.anchors: hand-computed values, counts per level, torchvision's
AnchorGenerator."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.detection.peers import peer_outputs
from freqnoise.detection import anchors as A


def test_base_anchors_by_hand():
  # size 8: ratio 0.5 -> h = 8 sqrt(.5) = 5.66, w = 11.31 -> halves 2.83, 5.66 -> round 3, 6
  np.testing.assert_array_equal(A.base_anchors(8), [[-6, -3, 6, 3], [-4, -4, 4, 4],
                                                   [-3, -6, 3, 6]])
  # size 32, ratio 0.5: halves 11.31, 22.63 -> 11, 23 (torchvision's P2 anchors)
  np.testing.assert_array_equal(A.base_anchors(32, (0.5,)), [[-23, -11, 23, 11]])
  # round half to even, as torch.round: size 5, ratio 1 -> halves 2.5 -> 2
  np.testing.assert_array_equal(A.base_anchors(5, (1.0,)), [[-2, -2, 2, 2]])


def test_level_anchors_by_hand():
  # 8x8 image, stride 4 -> 2x2 cells at (0, 0), (4, 0), (0, 4), (4, 4); x fastest, then ratio
  got = A.level_anchors(8, 8, 4, 8)
  base = np.array([[-6, -3, 6, 3], [-4, -4, 4, 4], [-3, -6, 3, 6]], np.float32)
  want = np.concatenate([base + [x, y, x, y] for y in (0, 4) for x in (0, 4)])
  np.testing.assert_array_equal(got, want)
  assert got.dtype == np.float32 and got.shape == (12, 4)
  np.testing.assert_array_equal(got[3], [-2, -3, 10, 3])  # cell (x=4, y=0), ratio 0.5
  np.testing.assert_array_equal(got[8], [-3, -2, 3, 10])  # cell (x=0, y=4), ratio 2


def test_level_anchors_non_square_and_ceil():
  got = A.level_anchors(9, 5, 4, 16, ratios=(1.0,))  # ceil(9/4) = 3 rows, ceil(5/4) = 2 cols
  want = [[x - 8, y - 8, x + 8, y + 8] for y in (0, 4, 8) for x in (0, 4)]
  np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("height,width", [(800, 1216), (100, 150), (64, 64)])
def test_pyramid_counts_and_sizes(height, width):
  strides = (4, 8, 16, 32, 64)
  anchors, sizes = A.pyramid_anchors(height, width, strides)
  want = tuple(math.ceil(height / s) * math.ceil(width / s) * 3 for s in strides)
  assert sizes == want and anchors.shape == (sum(want), 4) and anchors.dtype == np.float32
  start = 0
  for s, n in zip(strides, sizes):
    level = anchors[start:start + n]
    # the first cell's square anchor: size 8 * stride centred on (0, 0)
    np.testing.assert_array_equal(level[1], [-4 * s, -4 * s, 4 * s, 4 * s])
    np.testing.assert_array_equal(level[-2], level[1] + [
        (math.ceil(width / s) - 1) * s, (math.ceil(height / s) - 1) * s] * 2)
    start += n


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="ratios must be"):
    A.level_anchors(8, 8, 4, 8, ratios=(1.0, -2.0))
  with pytest.raises(ValueError, match="image size and stride must be positive.*stride 0"):
    A.level_anchors(8, 8, 0, 8)
  with pytest.raises(ValueError, match="anchor size must be positive"):
    A.base_anchors(0)


@pytest.mark.parametrize("source", ["golden", "live"])
def test_matches_torchvision_anchor_generator(source):
  p = peer_outputs("anchors", source)  # images 64 x 128 and 128 x 64, strides 4..64
  strides = tuple(int(s) for s in p["strides"])
  for height, width in p["image_sizes"].tolist():
    want = p[f"anchors_{height}x{width}"]
    got, sizes = A.pyramid_anchors(height, width, strides)
    assert sum(sizes) == len(want)
    np.testing.assert_allclose(got, want, atol=1e-5)
