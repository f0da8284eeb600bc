"""paste_masks: closed forms (1 pixel per cell, 2x upsampling, a constant mask covers exactly the
pixel centres in its box, clipping, degenerate boxes), detectron2's aligned paste (torch's
grid_sample, live and golden), and the round trip GT mask -> mask_targets -> paste == GT mask."""

from __future__ import annotations

import numpy as np
import pytest

from tests.detection.peers import peer_outputs
from freqnoise.detection import targets
from freqnoise.detection.paste import paste_mask_probs, paste_masks
from freqnoise.detection.polygons import crop_mask


def test_one_pixel_per_cell_copies_the_mask_into_its_box():
  # Box 10..12 x 20..22 over a 2 x 2 grid: pixel centres 10.5, 11.5 are the cell centres, and
  # pixels 9 and 12 sit a whole cell outside the grid (weight 0).
  mask = np.array([[[0.9, 0.2], [0.6, 0.4]]], np.float32)
  box = np.array([[10, 20, 12, 22]], np.float32)
  probs = paste_mask_probs(mask, box, 30, 40)
  expected = np.zeros((30, 40), np.float32)
  expected[20:22, 10:12] = mask[0]
  np.testing.assert_allclose(probs[0], expected, rtol=0, atol=1e-7)
  np.testing.assert_array_equal(paste_masks(mask, box, 30, 40)[0], expected >= 0.5)
  np.testing.assert_array_equal(paste_masks(mask, box, 30, 40, threshold=0.3)[0], expected >= 0.3)


def test_upsampling_by_two_is_bilinear_with_zeros_outside():
  # 4 cells over the 8 pixels 4..11: pixel j samples cell coordinate (j - 4 + 0.5) / 2 - 0.5,
  # between the outer cells and zeros half a cell (one pixel) beyond them: pixels 3..12 get values.
  row = np.array([0.0, 1.0, 0.5, 0.25])
  mask = np.tile(row, (4, 1))[None].astype(np.float32)
  out = paste_mask_probs(mask, np.array([[4, 4, 12, 12]], np.float32), 16, 16)[0]
  u = (np.arange(16) - 4 + 0.5) / 2 - 0.5
  want_x = np.interp(u, np.arange(-1, 5), np.concatenate([[0], row, [0]]))
  want_y = np.interp(u, np.arange(-1, 5), [0, 1, 1, 1, 1, 0])
  np.testing.assert_allclose(out, np.outer(want_y, want_x), atol=1e-7)
  np.testing.assert_array_equal(np.nonzero(want_y)[0], np.arange(3, 13))


def test_constant_mask_covers_exactly_the_pixel_centres_in_its_box():
  # the value crosses 0.5 exactly at the box edge, whatever the box's size or fractions (edges
  # away from pixel centres: on one, rounding decides)
  ones = np.ones((3, 28, 28), np.float32)
  boxes = np.array([[20, 10, 60, 40], [3.3, 5.7, 9.2, 6.4], [0.4, 30.6, 79.6, 63.4]], np.float32)
  masks = paste_masks(ones, boxes, 64, 80)
  centres = np.arange(80) + 0.5, np.arange(64) + 0.5
  for r, (x1, y1, x2, y2) in enumerate(boxes):
    inside = np.outer((centres[1] >= y1) & (centres[1] <= y2), (centres[0] >= x1) & (
        centres[0] <= x2))
    np.testing.assert_array_equal(masks[r], inside)


def test_clipping_at_the_image_border():
  rng = np.random.default_rng(0)
  mask = rng.random((1, 6, 6)).astype(np.float32)
  box = np.array([[10.25, 20.5, 17.75, 26.0]], np.float32)
  full = paste_mask_probs(mask, box, 40, 40)[0]
  assert full.sum() > 0
  np.testing.assert_array_equal(paste_mask_probs(mask, box, 23, 13)[0], full[:23, :13])
  shifted = box - np.array([12, 15, 12, 15], np.float32)  # partly left of and above the image
  np.testing.assert_allclose(paste_mask_probs(mask, shifted, 25, 25)[0], full[15:, 12:37],
                             atol=1e-6)
  assert not paste_masks(mask, box + 100, 40, 40).any()  # wholly outside: nothing pasted


def test_degenerate_boxes_and_bad_arguments():
  ones = np.ones((2, 28, 28), np.float32)
  boxes = np.array([[5, 5, 5, 9], [5.5, 5, 9, 5]], np.float32)  # zero width, zero height
  assert not paste_mask_probs(ones, boxes, 16, 16).any()
  assert paste_masks(np.zeros((0, 28, 28)), np.zeros((0, 4)), 16, 16).shape == (0, 16, 16)
  with pytest.raises(ValueError, match="2 masks but 3 boxes"):
    paste_masks(ones, np.zeros((3, 4)), 16, 16)
  with pytest.raises(ValueError, match=r"mask_probs must be \[R, m, m\]"):
    paste_masks(ones[:, :4], boxes, 16, 16)
  with pytest.raises(ValueError, match="threshold"):
    paste_masks(ones, boxes, 16, 16, threshold=0.0)


@pytest.mark.parametrize("source", ["golden", "live"])
def test_matches_detectron2_paste(source):
  """detectron2's `_do_paste_mask` (torch's grid_sample over pixel centres): 6 boxes in a 40 x 50
  image, one the whole image, one of a few pixels, some partly outside."""
  p = peer_outputs("paste", source)
  height, width = p["image_size"].tolist()
  ours = paste_mask_probs(p["mask_probs"], p["boxes"], height, width)
  np.testing.assert_allclose(ours, p["pasted"], rtol=0, atol=2e-6)
  differ = paste_masks(p["mask_probs"], p["boxes"], height, width) != (p["pasted"] >= 0.5)
  assert not differ[np.abs(p["pasted"] - 0.5) > 2e-6].any()


def _disk(height, width, cx, cy, rx, ry):
  y, x = np.mgrid[:height, :width] + 0.5
  return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1


def _tight_box(mask):
  ys, xs = np.nonzero(mask)
  return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


@pytest.mark.parametrize("name", ["square12", "disk12", "rect12_fractional_box", "ellipse90"])
def test_perfect_prediction_pastes_back_onto_its_ground_truth(name):
  """GT mask -> box crop (M = 64, as the data pipeline) -> mask_targets (28 x 28, RoI = GT box)
  -> paste_masks: the same convention both ways, so the pasted target is the GT mask up to the
  28-cell resolution: IoU 1.0 for the 12-pixel ones, 0.977 for the 90 x 60 ellipse (torchvision's
  legacy paste, used before: 0.75, 0.79, 0.86 and 0.957)."""
  height, width = 64, 96
  if name == "square12":
    gt = np.zeros((height, width), bool)
    gt[30:42, 20:32] = True
    box = _tight_box(gt)
  elif name == "disk12":
    gt = _disk(height, width, 40.3, 20.8, 6.0, 6.0)
    box = _tight_box(gt)
  elif name == "rect12_fractional_box":  # a COCO-like box (polygon extent), not pixel-aligned
    box = np.array([10.3, 20.6, 22.3, 32.6], np.float32)
    centres = np.arange(96) + 0.5, np.arange(64) + 0.5
    gt = np.outer((centres[1] >= box[1]) & (centres[1] <= box[3]),
                  (centres[0] >= box[0]) & (centres[0] <= box[2]))
  else:
    gt = _disk(height, width, 48.0, 31.5, 45.0, 30.0)
    box = _tight_box(gt)
  crop = crop_mask(gt, box, 64)
  target = np.asarray(targets.mask_targets(box[None], box[None], crop[None]))
  pasted = paste_masks(target, box[None], height, width)[0]
  iou = (pasted & gt).sum() / (pasted | gt).sum()
  assert iou >= 0.95, iou
