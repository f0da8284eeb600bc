"""The registry of input transforms (names in `config.input.name`) and the seeded sample their
statistics are fitted on. A module of its own so that transforms defined elsewhere (the "dct"
transform in `freqnoise.freq.transform`, "sequence" in `freqnoise.data.sequences`) register here
without importing `freqnoise.data.transforms`, which imports them."""

from __future__ import annotations

from typing import Any, Callable

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
