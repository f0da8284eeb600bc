"""Horizontal flip of a detection batch (image content, boxes, box-cropped masks): the one
augmentation detection batches get (`freqnoise.data.augment.augment_batch`). NumPy only, so the
data package can import it without loading the detection loaders."""

from __future__ import annotations

import numpy as np


def flip_detection_batch(batch: dict[str, np.ndarray], flip: np.ndarray) -> dict[str, np.ndarray]:
  """A copy of `batch` with the examples where `flip` [B] is true mirrored left-right: the image's
  content region (`size`; the zero padding stays at the right), boxes (x -> width - x, x1/x2
  swapped) and each instance's M x M mask. Padding instances (class 0) stay all zeros."""
  flip = np.asarray(flip, bool)
  if flip.shape != batch["classes"].shape[:1]:
    raise ValueError(f"flip must be bool [B] with B = {len(batch['classes'])}, got shape "
                     f"{flip.shape}")
  out = dict(batch)
  image, boxes = batch["image"].copy(), batch["boxes"].copy()
  masks = batch["masks"].copy() if "masks" in batch else None
  for i in np.flatnonzero(flip):
    w = int(batch["size"][i, 1])
    image[i, :, :w] = image[i, :, :w][:, ::-1]
    valid = batch["classes"][i] > 0
    b = boxes[i, valid]
    boxes[i, valid] = np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], axis=-1)
    if masks is not None:
      masks[i, valid] = masks[i, valid][:, :, ::-1]
  out["image"], out["boxes"] = image, boxes
  if masks is not None:
    out["masks"] = masks
  return out
