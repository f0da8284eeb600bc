"""Sequential MNIST: images read one row (or one pixel) per time step.

An image split `{'image': uint8 [N, H, W] or [N, H, W, 1], 'label': int [N]}` becomes
`{'inputs': float32 [N, T, F] in [0, 1], 'label': int32 [N]}` with
  * rows (default):   T = H,     F = W    (28 steps of 28 pixels for MNIST);
  * pixel_by_pixel:   T = H * W, F = 1    (784 steps of one pixel), optionally in a fixed random
    order drawn from `permutation_seed` (the "permuted sequential MNIST" task of Le et al., 2015).
The permutation depends only on the seed and the image size, so train and test splits built with
the same seed see the same pixel order.
"""

from __future__ import annotations

import numpy as np


def pixel_permutation(num_pixels: int, seed: int) -> np.ndarray:
  """The fixed pixel order for permuted sequences: int64 [num_pixels], a permutation of 0..n-1."""
  if num_pixels <= 0:
    raise ValueError(f"num_pixels must be positive, got {num_pixels}")
  return np.random.default_rng(seed).permutation(num_pixels)


def images_to_sequences(images: np.ndarray, *, pixel_by_pixel: bool = False,
                        permutation_seed: int | None = None) -> np.ndarray:
  """Turns images into input sequences.

  Args:
    images: uint8 (0..255) or float (0..1) array [N, H, W] or [N, H, W, 1] (one channel only).
    pixel_by_pixel: one pixel per step (T = H*W, F = 1) instead of one row per step (T = H, F = W).
    permutation_seed: if given (pixel_by_pixel only), pixels are read in the fixed order
      `pixel_permutation(H*W, permutation_seed)`.

  Returns:
    float32 [N, T, F]: pixel intensities in [0, 1].
  """
  images = np.asarray(images)
  if images.ndim == 4:
    if images.shape[-1] != 1:
      raise ValueError(f"sequence images must have one channel, got shape {images.shape}")
    images = images[..., 0]
  if images.ndim != 3:
    raise ValueError(f"images must be [N, H, W] or [N, H, W, 1], got shape {images.shape}")
  if permutation_seed is not None and not pixel_by_pixel:
    raise ValueError("permutation_seed needs pixel_by_pixel=True (rows are never permuted)")
  x = images.astype(np.float32)
  if images.dtype == np.uint8:
    x /= 255.0
  n, h, w = x.shape
  if not pixel_by_pixel:
    return x
  x = x.reshape(n, h * w)
  if permutation_seed is not None:
    x = x[:, pixel_permutation(h * w, permutation_seed)]
  return x[..., None]


def sequence_split(arrays: dict[str, np.ndarray], **kwargs) -> dict[str, np.ndarray]:
  """An image split `{'image', 'label', ...}` as a sequence split `{'inputs', 'label'}`.

  Keyword arguments go to `images_to_sequences`.
  """
  if "image" not in arrays or "label" not in arrays:
    raise ValueError(f"an image split needs 'image' and 'label' arrays, got keys {sorted(arrays)}")
  if len(arrays["image"]) != len(arrays["label"]):
    raise ValueError(f"{len(arrays['image'])} images but {len(arrays['label'])} labels")
  return {"inputs": images_to_sequences(arrays["image"], **kwargs),
          "label": np.asarray(arrays["label"], np.int32)}
