"""Spatial augmentation on host batches (NumPy, deterministic given a Generator)."""

from __future__ import annotations

import numpy as np


def random_crop_with_padding(rng: np.random.Generator, images: np.ndarray, padding: int) -> np.ndarray:
  """Zero-pads each NHWC image by `padding` pixels per side and crops back at a random offset."""
  if padding <= 0:
    return images
  n, h, w, _ = images.shape
  padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  dy = rng.integers(0, 2 * padding + 1, n)
  dx = rng.integers(0, 2 * padding + 1, n)
  rows = dy[:, None] + np.arange(h)[None, :]                      # [N, H]
  cols = dx[:, None] + np.arange(w)[None, :]                      # [N, W]
  return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def random_flip(rng: np.random.Generator, images: np.ndarray) -> np.ndarray:
  """Mirrors each NHWC image left-right with probability 1/2."""
  flip = rng.random(len(images)) < 0.5
  return np.where(flip[:, None, None, None], images[:, :, ::-1], images)


def augment_images(rng: np.random.Generator, images: np.ndarray, *, crop_padding: int = 0,
                   flip: bool = False) -> np.ndarray:
  """Random crop with padding, then horizontal flip, as the config asks."""
  if images.ndim != 4:
    raise ValueError(f"augmentation expects NHWC images, got shape {images.shape}")
  images = random_crop_with_padding(rng, images, crop_padding)
  if flip:
    images = random_flip(rng, images)
  return images
