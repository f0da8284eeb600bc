"""Pasting M x M mask predictions into full images (NumPy, host side), as detectron2 does.

The mask head predicts, per detection, an `m x m` grid of foreground probabilities over its box.
`paste_masks` turns them into full-image boolean masks with the semantics of detectron2's
`paste_masks_in_image` (detectron2/layers/mask_ops.py; mmdetection's `_do_paste_mask` is the
same): pixel (y, x) of the image, centred at (y + 0.5, x + 0.5), samples the grid laid over its
box bilinearly, each cell's value at its centre and 0 outside the grid (`F.grid_sample` with
`align_corners=False` and zero padding), then `prob >= threshold`.

Convention: detectron2's aligned pixel model, the one `targets.mask_targets` samples the training
targets with (both call `targets.aligned_weights`), so a perfect prediction pastes back onto its
ground-truth mask: the 28 x 28 target of a 12-pixel square, disk or fractional box pastes back
at IoU 1.0 (tests/detection/test_paste.py), where torchvision's legacy paste (each box grown by
(m + 2) / m, truncated to integers, resized onto x2 - x1 + 1 pixels), used here before, gave
0.75, 0.79 and 0.86. Bilinear sampling is separable: each pasted mask is `Wy @ mask @ Wx^T`,
computed over the pixels its box can reach (half a cell beyond it), in float64: equal to
detectron2's float32 grid_sample within ~1e-6 (tests/detection/golden/paste.npz).
"""

from __future__ import annotations

import math

import numpy as np

from freqnoise.detection.targets import aligned_weights


def _prepare(mask_probs, boxes) -> tuple[np.ndarray, np.ndarray]:
  mask_probs = np.asarray(mask_probs, np.float32)
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  if mask_probs.ndim != 3 or mask_probs.shape[1] != mask_probs.shape[2]:
    raise ValueError(f"mask_probs must be [R, m, m], got shape {mask_probs.shape}")
  if mask_probs.shape[0] != boxes.shape[0]:
    raise ValueError(f"{mask_probs.shape[0]} masks but {boxes.shape[0]} boxes")
  return mask_probs, boxes


def _axis(lo: float, hi: float, m: int, size: int):
  """The pixels [a, b) of an image axis of `size` pixels that a grid of m cells over [lo, hi]
  reaches (centres within half a cell beyond its ends), and their weights [b - a, m]; None when
  the box is empty on this axis or reaches no pixel."""
  if not hi > lo:  # zero-size (or inverted) boxes paste nothing
    return None
  reach = 0.5 * (hi - lo) / m
  a, b = max(math.floor(lo - reach) - 1, 0), min(math.ceil(hi + reach) + 1, size)
  if b <= a:
    return None
  return a, b, aligned_weights(np.arange(a, b) + 0.5, lo, hi - lo, m)


def _paste_one(mask: np.ndarray, box: np.ndarray, height: int, width: int):
  """The window (y0, y1, x0, x1) of the image that one box's mask reaches and the mask's values
  there (float32), or None when it reaches no pixel."""
  m = mask.shape[0]
  xs, ys = _axis(box[0], box[2], m, width), _axis(box[1], box[3], m, height)
  if xs is None or ys is None:
    return None
  (x0, x1, wx), (y0, y1, wy) = xs, ys
  return (y0, y1, x0, x1), (wy @ mask.astype(np.float64) @ wx.T).astype(np.float32)


def paste_mask_probs(mask_probs: np.ndarray, boxes: np.ndarray, height: int,
                     width: int) -> np.ndarray:
  """Soft masks: float32 [R, height, width] probabilities (0 beyond half a cell outside each box),
  what detectron2's `_do_paste_mask(masks[:, None], boxes, height, width, skip_empty=False)[0]`
  returns. `mask_probs` [R, m, m] float; `boxes` [R, 4] (x1, y1, x2, y2) in pixels of the target
  image (pixel i covers [i, i + 1)); a box of zero width or height pastes nothing."""
  mask_probs, boxes = _prepare(mask_probs, boxes)
  out = np.zeros((mask_probs.shape[0], height, width), np.float32)
  for r in range(mask_probs.shape[0]):
    pasted = _paste_one(mask_probs[r], boxes[r], height, width)
    if pasted is not None:
      (y0, y1, x0, x1), values = pasted
      out[r, y0:y1, x0:x1] = values
  return out


def paste_masks(mask_probs: np.ndarray, boxes: np.ndarray, height: int, width: int,
                threshold: float = 0.5) -> np.ndarray:
  """Binary masks: bool [R, height, width], `paste_mask_probs(...) >= threshold` (detectron2's
  `paste_masks_in_image`), without holding R float images.

  Args:
    mask_probs: [R, m, m] foreground probabilities, each over its own box.
    boxes: [R, 4] (x1, y1, x2, y2) in pixels of the image pasted into (for COCO results: the
      ORIGINAL image, i.e. model-input boxes / scale).
    height, width: size of that image.
    threshold: in (0, 1]; pixels whose probability is at least it belong to the instance.
  """
  if not 0 < threshold <= 1:
    raise ValueError(f"threshold must be in (0, 1], got {threshold}")
  mask_probs, boxes = _prepare(mask_probs, boxes)
  out = np.zeros((mask_probs.shape[0], height, width), bool)
  for r in range(mask_probs.shape[0]):
    pasted = _paste_one(mask_probs[r], boxes[r], height, width)
    if pasted is not None:
      (y0, y1, x0, x1), values = pasted
      out[r, y0:y1, x0:x1] = values >= threshold
  return out
