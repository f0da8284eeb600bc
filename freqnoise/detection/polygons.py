"""Instance polygons: YOLO-seg label files, pycocotools rasterisation, and box-cropped M x M masks.

A YOLO-seg label file holds one instance per line, `class x1 y1 x2 y2 ...`: a 0-based class id and
one polygon's vertices normalised to [0, 1] by the image width and height. `parse_yolo_seg` turns a
file into (classes, polygons in pixels); `rasterize` draws polygons exactly as pycocotools does
(`frPyObjects` + `merge` + `decode`, which is what COCO evaluation compares against); `crop_mask`
resamples the part of a full-image mask inside a box to the `M x M` cells the detection batches
carry (see `freqnoise.detection`), by exact box filtering.
"""

from __future__ import annotations

import os
import warnings
from typing import Sequence

import numpy as np
from pycocotools import mask as mask_utils

# Normalised coordinates may overshoot [0, 1] by this much (rounding in label writers); they are
# clipped to [0, 1]. Anything further out is an error.
COORD_TOLERANCE = 1e-2


def parse_yolo_seg(path: str | os.PathLike, width: int, height: int, num_classes: int = 80
                   ) -> tuple[np.ndarray, list[np.ndarray]]:
  """Reads a YOLO-seg label file: (classes int32 [n], 0-based; polygons, n float64 [v, 2] arrays of
  (x, y) vertices in pixels of a `width` x `height` image). Blank lines are skipped; a missing file
  is an error (callers treat "no label file" as "no instances" themselves). Malformed lines raise
  ValueError naming the file and the 1-based line number."""
  classes: list[int] = []
  polygons: list[np.ndarray] = []
  with open(path) as f:
    for lineno, line in enumerate(f, start=1):
      fields = line.split()
      if not fields:
        continue
      where = f"{os.fspath(path)}, line {lineno}"
      try:
        cls = int(fields[0])
      except ValueError:
        raise ValueError(f"{where}: class id {fields[0]!r} is not an integer") from None
      if not 0 <= cls < num_classes:
        raise ValueError(f"{where}: class id {cls} is outside 0..{num_classes - 1}")
      try:
        coords = np.array([float(v) for v in fields[1:]], np.float64)
      except ValueError as e:
        raise ValueError(f"{where}: coordinates are not all numbers ({e})") from None
      if len(coords) % 2:
        raise ValueError(f"{where}: odd number of coordinates ({len(coords)}); expected x y pairs")
      if len(coords) < 6:
        raise ValueError(f"{where}: a polygon needs at least 3 vertices, got {len(coords) // 2}")
      if not np.all(np.isfinite(coords)):
        raise ValueError(f"{where}: coordinates are not all finite")
      lo, hi = coords.min(), coords.max()
      if lo < -COORD_TOLERANCE or hi > 1 + COORD_TOLERANCE:
        raise ValueError(f"{where}: normalised coordinates span [{lo:g}, {hi:g}], outside [0, 1] "
                         f"(tolerance {COORD_TOLERANCE:g})")
      xy = np.clip(coords, 0.0, 1.0).reshape(-1, 2) * np.array([width, height], np.float64)
      classes.append(cls)
      polygons.append(xy)
  return np.array(classes, np.int32), polygons


def _flat(polygons: Sequence) -> list[list[float]]:
  """Polygons as pycocotools' flat [x1, y1, x2, ...] lists (from [v, 2] arrays or flat lists)."""
  flat = [np.asarray(p, np.float64).ravel().tolist() for p in polygons]
  for p in flat:
    if len(p) < 6 or len(p) % 2:
      raise ValueError(f"a polygon needs an even number (>= 6) of coordinates, got {len(p)}")
  return flat


def polygons_to_rle(polygons: Sequence, height: int, width: int) -> dict:
  """The merged (union) RLE of one instance's polygons, as pycocotools encodes them."""
  if not polygons:
    raise ValueError("an instance needs at least one polygon")
  return mask_utils.merge(mask_utils.frPyObjects(_flat(polygons), height, width))


def decode_rle(rle: dict) -> np.ndarray:
  """uint8 [H, W] 0/1 mask of one RLE (`pycocotools.mask.decode`, without the DeprecationWarning
  its Cython array wrapper raises under NumPy 2, which the test suite turns into an error)."""
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=r"__array__ implementation doesn't accept a copy",
                            category=DeprecationWarning)
    return mask_utils.decode(rle)


def rasterize(polygons: Sequence, height: int, width: int) -> np.ndarray:
  """uint8 [height, width] 0/1 mask of the union of `polygons` (each a [v, 2] array of (x, y)
  pixel vertices or a flat [x1, y1, ...] list), identical to pycocotools' `decode(frPyObjects)`."""
  return decode_rle(polygons_to_rle(polygons, height, width))


def polygon_area(polygons: Sequence, height: int, width: int) -> float:
  """pycocotools' area (pixel count) of the rasterised union of `polygons`: COCO's `area`."""
  return float(mask_utils.area(polygons_to_rle(polygons, height, width)))


def polygon_box(polygons: Sequence) -> np.ndarray:
  """float64 (x1, y1, x2, y2): the extent of all vertices of `polygons` (COCO's bbox convention)."""
  xy = np.concatenate([np.asarray(p, np.float64).reshape(-1, 2) for p in polygons])
  return np.concatenate([xy.min(0), xy.max(0)])


def _cell_weights(lo: float, hi: float, m: int, n: int) -> np.ndarray:
  """[m, n] weights: row j = the fraction of cell j of [lo, hi) (split into m equal cells) that each
  pixel i in [i, i + 1) covers, so `weights @ row` averages a piecewise-constant row over a cell.
  A zero-width interval degenerates to point sampling (its cells are made 1e-6 pixels wide)."""
  step = max((hi - lo) / m, 1e-6)
  a = lo + step * np.arange(m)[:, None]
  b = a + step
  i = np.arange(n)[None, :]
  return np.clip(np.minimum(b, i + 1) - np.maximum(a, i), 0.0, None) / step


def crop_mask(full_mask: np.ndarray, box: Sequence[float], size: int) -> np.ndarray:
  """uint8 [size, size]: 255 x the fraction of each of the `size x size` equal cells of `box`
  (x1, y1, x2, y2, continuous pixel coordinates of `full_mask`, pixel i covering [i, i + 1)) that
  the mask covers, rounded. Exact box filtering: the mask is piecewise constant over pixels and each
  cell's value is its integral over the cell divided by the cell's area (separable, so it is
  `Wy @ mask @ Wx.T`). Parts of the box outside the image count as uncovered."""
  full_mask = np.asarray(full_mask)
  if full_mask.ndim != 2:
    raise ValueError(f"crop_mask needs a [H, W] mask, got shape {full_mask.shape}")
  if size < 1:
    raise ValueError(f"crop_mask needs size >= 1, got {size}")
  x1, y1, x2, y2 = (float(v) for v in box)
  if not (x2 >= x1 and y2 >= y1):
    raise ValueError(f"crop_mask needs x2 >= x1 and y2 >= y1, got box {tuple(box)}")
  h, w = full_mask.shape
  # Only the pixels the box touches matter; slice them out so the weight matrices stay small.
  c0, c1 = max(int(np.floor(x1)), 0), min(int(np.ceil(max(x2, x1 + 1e-6))), w)
  r0, r1 = max(int(np.floor(y1)), 0), min(int(np.ceil(max(y2, y1 + 1e-6))), h)
  if c1 <= c0 or r1 <= r0:
    return np.zeros((size, size), np.uint8)
  part = (full_mask[r0:r1, c0:c1] > 0).astype(np.float64)
  wy = _cell_weights(y1 - r0, y2 - r0, size, r1 - r0)
  wx = _cell_weights(x1 - c0, x2 - c0, size, c1 - c0)
  frac = wy @ part @ wx.T
  return np.clip(np.round(frac * 255.0), 0, 255).astype(np.uint8)
