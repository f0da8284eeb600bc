"""paste_masks: closed forms (identity resize, clipping, 2x upsampling, thresholds) and, when torch
is installed, torchvision's paste_masks_in_image itself."""

from __future__ import annotations

import numpy as np
import pytest

from freqnoise.detection.paste import paste_mask_probs, paste_masks, resize_bilinear


def test_identity_scale_copies_padded_mask():
  # m = 2: padded to 4 x 4, boxes grow by 2 about their centre. Box x 10.75..12.25 (centre 11.5,
  # half-width 0.75) expands to 10..13: 4 pixels (x2 - x1 + 1) = the padded size, so the resize is
  # the identity and the padded mask lands at rows 20..23, columns 10..13.
  mask = np.array([[[0.9, 0.2], [0.6, 0.4]]], np.float32)
  box = np.array([[10.75, 20.75, 12.25, 22.25]], np.float32)
  probs = paste_mask_probs(mask, box, 30, 40)
  expected = np.zeros((30, 40), np.float32)
  expected[20:24, 10:14] = np.pad(mask[0], 1)
  np.testing.assert_array_equal(probs[0], expected)
  np.testing.assert_array_equal(paste_masks(mask, box, 30, 40)[0], expected > 0.5)
  np.testing.assert_array_equal(paste_masks(mask, box, 30, 40, threshold=0.3)[0], expected > 0.3)


def test_clipping_at_the_image_border():
  mask = np.array([[[0.9, 0.2], [0.6, 0.4]]], np.float32)
  box = np.array([[10.75, 20.75, 12.25, 22.25]], np.float32)
  full = paste_mask_probs(mask, box, 30, 40)[0]
  # the same box in a 22 x 12 image: only rows 20..21, columns 10..11 survive, unchanged
  np.testing.assert_array_equal(paste_mask_probs(mask, box, 22, 12)[0], full[:22, :12])
  # shifted left by 12 (expanded x -2..1): columns 0..1 hold the padded mask's columns 2..3
  shifted = box - np.array([12, 0, 12, 0], np.float32)
  out = paste_mask_probs(mask, shifted, 30, 40)[0]
  np.testing.assert_array_equal(out[20:24, :2], np.pad(mask[0], 1)[:, 2:])
  assert out[:, 2:].sum() == 0
  # wholly outside: nothing pasted
  assert not paste_masks(mask, box + 100, 30, 40).any()


def test_upsampling_by_two_matches_the_align_corners_false_formula():
  # 1-d: output j samples source x = (j + 0.5) / 2 - 0.5 clamped to [0, n - 1]
  row = np.array([[0.0, 1.0, 0.5, 0.25]], np.float32)
  out = resize_bilinear(row, 1, 8)[0]
  x = np.clip((np.arange(8) + 0.5) / 2 - 0.5, 0, 3)
  np.testing.assert_allclose(out, np.interp(x, np.arange(4), row[0]), atol=1e-7)
  # 2-d separable: a product image stays a product
  a, b = np.array([0.0, 1.0, 0.3]), np.array([1.0, 0.2])
  out2 = resize_bilinear(np.outer(a, b), 6, 4)
  ya = np.interp(np.clip((np.arange(6) + 0.5) / 2 - 0.5, 0, 2), np.arange(3), a)
  xb = np.interp(np.clip((np.arange(4) + 0.5) / 2 - 0.5, 0, 1), np.arange(2), b)
  np.testing.assert_allclose(out2, np.outer(ya, xb), atol=1e-6)


def test_constant_mask_covers_about_its_box_and_degenerate_boxes():
  ones = np.ones((1, 28, 28), np.float32)
  box = np.array([[20.0, 10.0, 60.0, 40.0]], np.float32)
  m = paste_masks(ones, box, 64, 80)[0]
  ys, xs = np.nonzero(m)
  # the step at the padded edge crosses 0.5 about half a cell outside the box, and torchvision's
  # "+ 1" pixel convention widens it by up to a pixel per side: the box give or take a pixel
  assert abs(xs.min() - 20) <= 1 and abs(xs.max() + 1 - 60) <= 1
  assert abs(ys.min() - 10) <= 1 and abs(ys.max() + 1 - 40) <= 1
  assert abs(m.sum() - 40 * 30) <= 2 * (40 + 30) + 4
  # a zero-size box pastes at most a pixel or two, never crashes; no boxes gives [0, H, W]
  tiny = paste_mask_probs(ones, np.array([[5.0, 5.0, 5.0, 5.0]], np.float32), 16, 16)
  assert tiny.shape == (1, 16, 16) and np.count_nonzero(tiny) <= 4
  assert paste_masks(np.zeros((0, 28, 28)), np.zeros((0, 4)), 16, 16).shape == (0, 16, 16)
  with pytest.raises(ValueError):
    paste_masks(ones, np.zeros((2, 4)), 16, 16)


def test_resize_matches_torch_interpolate():
  torch = pytest.importorskip("torch")
  rng = np.random.default_rng(1)
  for h, w, out_h, out_w in [(30, 30, 57, 91), (30, 30, 13, 7), (4, 4, 9, 9), (30, 30, 30, 30)]:
    x = rng.random((h, w)).astype(np.float32)
    ref = torch.nn.functional.interpolate(torch.from_numpy(x)[None, None], size=(out_h, out_w),
                                          mode="bilinear", align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(resize_bilinear(x, out_h, out_w), ref, rtol=0, atol=1.2e-7)


def test_matches_torchvision():
  torch = pytest.importorskip("torch")
  try:
    from torchvision.models.detection import roi_heads
  except (ImportError, RuntimeError) as e:  # absent, or built for another torch version
    pytest.skip(f"torchvision unusable: {e}")
  rng = np.random.default_rng(0)
  r, m, height, width = 12, 28, 97, 131
  probs = rng.random((r, m, m)).astype(np.float32)
  x1 = rng.uniform(-20, width - 5, r)
  y1 = rng.uniform(-20, height - 5, r)
  boxes = np.stack([x1, y1, x1 + rng.uniform(0.5, 90, r), y1 + rng.uniform(0.5, 70, r)], 1)
  boxes = np.clip(boxes, 0, [width, height, width, height]).astype(np.float32)
  boxes[0] = [3.3, 4.7, 3.3, 4.7]       # zero size
  boxes[1] = [0.0, 0.0, width, height]  # the whole image
  ref = roi_heads.paste_masks_in_image(torch.from_numpy(probs)[:, None], torch.from_numpy(boxes),
                                       (height, width))[:, 0].numpy()
  ours = paste_mask_probs(probs, boxes, height, width)
  np.testing.assert_allclose(ours, ref, rtol=0, atol=3e-7)
  assert (paste_masks(probs, boxes, height, width) != (ref > 0.5)).sum() <= 2
