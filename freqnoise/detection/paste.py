"""Pasting M x M mask predictions into full images (NumPy, host side), as torchvision does.

The mask head predicts, per detection, an `m x m` grid of foreground probabilities over its box.
`paste_masks` turns them into full-image boolean masks with the semantics of torchvision's
`paste_masks_in_image` (torchvision.models.detection.roi_heads) followed by the `> 0.5` of its COCO
evaluation, step by step:
  1. `expand_masks`: pad each mask with one zero cell on every side ((m + 2) x (m + 2)), so the
     probability falls off to 0 half a cell outside the box instead of being cut at its edge;
  2. `expand_boxes`: grow each box about its centre by (m + 2) / m, so the padded grid covers it as
     the unpadded grid covered the box, then truncate the coordinates to integers (toward zero);
  3. `paste_mask_in_image`: resize the padded mask to the integer box, (x2 - x1 + 1) x (y2 - y1 + 1)
     pixels (at least 1) with bilinear interpolation, `align_corners=False` (PyTorch's
     `F.interpolate`), and copy the part inside the image to rows y1..y2, columns x1..x2;
  4. threshold: `prob > threshold`.
The arithmetic is float32 in the order (and with the fused multiply-adds) of PyTorch's CPU kernel,
so the probabilities equal torchvision's or differ by an ulp or so (<= 2e-7): a thresholded pixel
can differ only where the probability is that close to the threshold.
A box wholly outside the image pastes nothing (torchvision would raise on a slice mismatch).
"""

from __future__ import annotations

import numpy as np

PADDING = 1  # cells of zeros added on each side of a mask (torchvision's default `padding=1`)


def _expanded_int_boxes(boxes: np.ndarray, m: int) -> np.ndarray:
  """torchvision's `expand_boxes(boxes, (m + 2) / m).to(int64)`: [R, 4] int64, float32 math."""
  boxes = boxes.astype(np.float32)
  scale = np.float32((m + 2 * PADDING) / m)
  w_half = (boxes[:, 2] - boxes[:, 0]) * np.float32(0.5) * scale
  h_half = (boxes[:, 3] - boxes[:, 1]) * np.float32(0.5) * scale
  x_c = (boxes[:, 2] + boxes[:, 0]) * np.float32(0.5)
  y_c = (boxes[:, 3] + boxes[:, 1]) * np.float32(0.5)
  out = np.stack([x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half], axis=1)
  return np.trunc(out).astype(np.int64)  # a cast to int64 truncates toward zero, as torch's


def _fma(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
  """float32 a * b + c rounded once, as the fused multiply-add of PyTorch's compiled kernels (the
  float64 product of two float32 numbers is exact, and so is adding c in these ranges)."""
  return (a.astype(np.float64) * b.astype(np.float64) + c.astype(np.float64)).astype(np.float32)


def _linear_taps(in_size: int, out_size: int):
  """Source indices i0, i1 and their weights w0, w1 for 1-d linear resizing with
  `align_corners=False`, computed as PyTorch's CPU kernel does: float32, source coordinate
  `scale * (dst + 0.5) - 0.5` (fused) clamped below at 0, `i1 = i0 + 1` except at the last index."""
  scale = np.float32(in_size) / np.float32(out_size)
  dst = np.arange(out_size, dtype=np.float32) + np.float32(0.5)
  src = np.maximum(_fma(np.full_like(dst, scale), dst, np.full_like(dst, -0.5)), np.float32(0.0))
  i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
  i1 = np.minimum(i0 + 1, in_size - 1)
  w1 = np.clip(src - i0.astype(np.float32), np.float32(0.0), np.float32(1.0))
  return i0, i1, np.float32(1.0) - w1, w1


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """[h, w] float -> [height, width] float32, bilinear with `align_corners=False` (PyTorch's
  `F.interpolate(..., mode="bilinear")`): each row interpolated along x, then the two rows along
  y, with PyTorch's roundings (equal to its CPU output or within one float32 ulp)."""
  image = np.asarray(image, np.float32)
  y0, y1, wy0, wy1 = _linear_taps(image.shape[0], height)
  x0, x1, wx0, wx1 = _linear_taps(image.shape[1], width)
  row = lambda y: _fma(wx0, image[y][:, x0], wx1 * image[y][:, x1])
  return _fma(wy0[:, None], row(y0), wy1[:, None] * row(y1))


def _paste_one(mask: np.ndarray, box: np.ndarray, height: int, width: int):
  """The window (y0, y1, x0, x1) of the image that one expanded integer box covers and the
  resized mask's values there, or None when the window is empty."""
  bx0, by0, bx1, by1 = (int(v) for v in box)
  w = max(bx1 - bx0 + 1, 1)
  h = max(by1 - by0 + 1, 1)
  x0, x1 = max(bx0, 0), min(bx1 + 1, width)
  y0, y1 = max(by0, 0), min(by1 + 1, height)
  if x1 <= x0 or y1 <= y0:
    return None
  resized = resize_bilinear(mask, h, w)
  return (y0, y1, x0, x1), resized[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0]


def _prepare(mask_probs, boxes) -> tuple[np.ndarray, np.ndarray]:
  mask_probs = np.asarray(mask_probs, np.float32)
  boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
  if mask_probs.ndim != 3 or mask_probs.shape[1] != mask_probs.shape[2]:
    raise ValueError(f"mask_probs must be [R, m, m], got shape {mask_probs.shape}")
  if mask_probs.shape[0] != boxes.shape[0]:
    raise ValueError(f"{mask_probs.shape[0]} masks but {boxes.shape[0]} boxes")
  padded = np.pad(mask_probs, ((0, 0), (PADDING, PADDING), (PADDING, PADDING)))
  return padded, _expanded_int_boxes(boxes, mask_probs.shape[1])


def paste_mask_probs(mask_probs: np.ndarray, boxes: np.ndarray, height: int,
                     width: int) -> np.ndarray:
  """Soft masks: float32 [R, height, width] probabilities (0 outside each expanded box), what
  torchvision's `paste_masks_in_image(masks[:, None], boxes, (height, width))[:, 0]` returns.
  `mask_probs` [R, m, m] float; `boxes` [R, 4] (x1, y1, x2, y2) in pixels of the target image."""
  padded, int_boxes = _prepare(mask_probs, boxes)
  out = np.zeros((padded.shape[0], height, width), np.float32)
  for r in range(padded.shape[0]):
    pasted = _paste_one(padded[r], int_boxes[r], height, width)
    if pasted is not None:
      (y0, y1, x0, x1), values = pasted
      out[r, y0:y1, x0:x1] = values
  return out


def paste_masks(mask_probs: np.ndarray, boxes: np.ndarray, height: int, width: int,
                threshold: float = 0.5) -> np.ndarray:
  """Binary masks: bool [R, height, width], `paste_mask_probs(...) > threshold` (torchvision's
  COCO evaluation thresholds its pasted masks with `> 0.5`), without holding R float images.

  Args:
    mask_probs: [R, m, m] foreground probabilities, each over its own box.
    boxes: [R, 4] (x1, y1, x2, y2) in pixels of the image pasted into (for COCO results: the
      ORIGINAL image, i.e. model-input boxes / scale).
    height, width: size of that image.
    threshold: probability above which a pixel belongs to the instance.
  """
  padded, int_boxes = _prepare(mask_probs, boxes)
  out = np.zeros((padded.shape[0], height, width), bool)
  for r in range(padded.shape[0]):
    pasted = _paste_one(padded[r], int_boxes[r], height, width)
    if pasted is not None:
      (y0, y1, x0, x1), values = pasted
      out[r, y0:y1, x0:x1] = values > threshold
  return out
