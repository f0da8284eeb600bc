"""RPN anchors of a feature pyramid, in NumPy (static: known at trace time), as torchvision.

Exactly torchvision's `AnchorGenerator` for one size per level: base anchors are
`round([-ws, -hs, ws, hs] / 2)` with hs = sqrt(ratio) * size, ws = size / sqrt(ratio), computed in
float32 (round half to even, as `torch.round`); they are shifted to (x * stride, y * stride) for
each cell x in 0..w-1, y in 0..h-1 of the level (cell corners, not centres), position-major
(row by row, x fastest), then one anchor per ratio in the order given.
`pyramid_anchors` gives level l anchors of size scale * stride_l (scale 8: 32, 64, ..., 512 for
strides 4..64, torchvision's and mmdetection's defaults).
Difference from torchvision: it infers each level's stride as image_size // feature_size, we take
the stride given and a feature size ceil(image_size / stride); both agree when the image size is a
multiple of the largest stride (the padded input of `freqnoise.detection` is a multiple of 32; use
multiples of 64 with a P6 level).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def _check_ratios(ratios: Sequence[float]) -> tuple[float, ...]:
  ratios = tuple(float(r) for r in ratios)
  if not ratios or any(not r > 0 for r in ratios):
    raise ValueError(f"ratios must be a non-empty sequence of positive numbers, got {ratios}")
  return ratios


def base_anchors(size: float, ratios: Sequence[float] = (0.5, 1.0, 2.0)) -> np.ndarray:
  """`[A, 4]` float32 anchors centred on (0, 0), one per ratio (height / width)."""
  ratios = _check_ratios(ratios)
  if not size > 0:
    raise ValueError(f"anchor size must be positive, got {size}")
  h_ratios = np.sqrt(np.asarray(ratios, np.float32))
  w_ratios = np.float32(1) / h_ratios
  hs = h_ratios * np.float32(size)
  ws = w_ratios * np.float32(size)
  return np.round(np.stack([-ws, -hs, ws, hs], axis=1) / np.float32(2)).astype(np.float32)


def grid_size(image_height: int, image_width: int, stride: int) -> tuple[int, int]:
  """(h, w) = (ceil(H / stride), ceil(W / stride)): the feature size of a stride-`stride` level."""
  if image_height < 1 or image_width < 1 or stride < 1:
    raise ValueError(f"image size and stride must be positive, got image {image_height}x"
                     f"{image_width}, stride {stride}")
  return math.ceil(image_height / stride), math.ceil(image_width / stride)


def level_anchors(image_height: int, image_width: int, stride: int, size: float,
                  ratios: Sequence[float] = (0.5, 1.0, 2.0)) -> np.ndarray:
  """`[h * w * A, 4]` float32 anchors of one level (see the module docstring for the order)."""
  h, w = grid_size(image_height, image_width, stride)
  base = base_anchors(size, ratios)
  shift_y, shift_x = np.meshgrid(np.arange(h, dtype=np.float32) * stride,
                                 np.arange(w, dtype=np.float32) * stride, indexing="ij")
  shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
  shifts = np.stack([shift_x, shift_y, shift_x, shift_y], axis=1)
  return (shifts[:, None, :] + base[None, :, :]).reshape(-1, 4).astype(np.float32)


def pyramid_anchors(image_height: int, image_width: int,
                    strides: Sequence[int] = (4, 8, 16, 32, 64), scale: float = 8,
                    ratios: Sequence[float] = (0.5, 1.0, 2.0)
                    ) -> tuple[np.ndarray, tuple[int, ...]]:
  """All levels' anchors concatenated, level by level: (`[sum_l h_l * w_l * A, 4]` float32,
  the number of anchors of each level `h_l * w_l * A`), level l of size `scale * strides[l]`."""
  if not strides:
    raise ValueError("strides must be a non-empty sequence of positive ints")
  levels = [level_anchors(image_height, image_width, int(s), scale * s, ratios) for s in strides]
  return np.concatenate(levels, axis=0), tuple(len(a) for a in levels)
