"""The registry of input transforms (names in `config.input.name`), the seeded sample their
statistics are fitted on, and the content region of letterboxed images. A module of its own so that
transforms defined elsewhere (the "dct" transform in `freqnoise.freq.transform`, "sequence" in
`freqnoise.data.sequences`) register here without importing `freqnoise.data.transforms`, which
imports them.

Letterboxed images (detection batches: `size` int [B, 2] = each image's content (height, width) in
pixels at the top left, zeros below and right of it) are normalised, then padded, as torchvision
does: an image transform's `fit(images, seed, size=...)` takes its statistics over the content only,
and its `__call__(stats, images, size=...)` puts every cell outside the content at exactly 0.
"""

from __future__ import annotations

from typing import Any, Callable

import jax.numpy as jnp
import numpy as np

from freqnoise.data.dataset import sample_indices

TRANSFORMS: dict[str, Callable[..., Any]] = {}


def register_transform(name: str):
  """Registers a transform class, built as `cls(**fields)` from `config.input` minus `name`."""

  def wrap(cls):
    if name in TRANSFORMS:
      raise ValueError(f"input transform {name!r} is registered twice")
    TRANSFORMS[name] = cls
    return cls

  return wrap


def fit_sample(images: np.ndarray, max_examples: int, seed: int) -> np.ndarray:
  """At most `max_examples` images drawn with `seed` across the whole split (never a prefix: image
  folders are sorted by class, so a prefix would hold only the first classes)."""
  return images[sample_indices(len(images), max_examples, seed)]


def content_mask(size, grid: tuple[int, int], scale: int = 1, cell: int = 1) -> jnp.ndarray:
  """bool [B, gh, gw]: the cells of a `grid` (gh, gw) over letterboxed images that hold content.

  `size` int [B, 2]: each image's content (height, width) in pixels. A cell spans `cell / scale`
  pixels a side and holds content when its first row and column do (`cell * i < scale * height`):
  pixels (scale = cell = 1) are exactly the content; the 8x8 DCT blocks of the image upscaled `u`x
  (scale u, cell 8) are those that touch it (a block across the edge is content).
  """
  size = jnp.asarray(size)
  rows = cell * jnp.arange(grid[0]) < scale * size[:, :1]  # [B, gh]
  cols = cell * jnp.arange(grid[1]) < scale * size[:, 1:]  # [B, gw]
  return rows[:, :, None] & cols[:, None, :]
