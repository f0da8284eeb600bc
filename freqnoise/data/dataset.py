"""In-memory datasets: a split is a dict of equally long NumPy arrays (`image` uint8 NHWC, `label` int32)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class ArrayDataset:
  """One split held in host memory. `arrays[k][i]` is field `k` of example `i`."""

  arrays: dict[str, np.ndarray]

  def __post_init__(self):
    if not self.arrays:
      raise ValueError("a dataset needs at least one field")
    lengths = {k: len(v) for k, v in self.arrays.items()}
    if len(set(lengths.values())) != 1:
      raise ValueError(f"dataset fields have different lengths: {lengths}")

  def __len__(self) -> int:
    return len(next(iter(self.arrays.values())))

  def __getitem__(self, index) -> dict[str, np.ndarray]:
    return {k: v[index] for k, v in self.arrays.items()}

  def take(self, n: int) -> "ArrayDataset":
    """The first `n` examples (only for splits whose order matters, e.g. carried BPTT rows)."""
    return ArrayDataset({k: v[:n] for k, v in self.arrays.items()})

  def sample(self, n: int, seed: int) -> "ArrayDataset":
    """`n` examples drawn without replacement across the whole split, kept in split order.

    Image folders are sorted by class, so a prefix would keep whole classes; a seeded sample
    keeps the class mix of the split."""
    index = sample_indices(len(self), n, seed)
    return ArrayDataset({k: v[index] for k, v in self.arrays.items()})

  def fields(self) -> list[str]:
    """The names of the fields every example has (e.g. `image`, `label`)."""
    return list(self.arrays)

  def head(self, n: int) -> dict[str, np.ndarray]:
    """The first `n` examples, stacked (e.g. to initialise a model or check saved statistics)."""
    return {k: v[:n] for k, v in self.arrays.items()}

  def fit_sample(self, n: int, seed: int) -> dict[str, np.ndarray]:
    """The `sample_indices(len(self), n, seed)` examples, stacked: the seeded sample an input
    transform fits its statistics on (`transform_registry.fit_sample` draws the same rows)."""
    return self[sample_indices(len(self), n, seed)]


def sample_indices(total: int, n: int, seed: int) -> np.ndarray:
  """Sorted indices of `min(n, total)` examples drawn without replacement from `total` with `seed`
  (all of them, in order, when n >= total)."""
  if n < 0 or total < 0:
    raise ValueError(f"need n >= 0 and total >= 0, got n={n}, total={total}")
  if n >= total:
    return np.arange(total)
  return np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))


@dataclasses.dataclass(frozen=True)
class Splits:
  """The train and test splits of one source, with what a model needs to know about them."""

  train: Any  # an ArrayDataset, or a `random_access.LazySplit` read one example at a time
  test: Any  # an ArrayDataset; a LazySplit for a detection source with config.data.lazy_test
  num_classes: int
  name: str
  meta: dict[str, Any] = dataclasses.field(default_factory=dict)

  def summary(self) -> str:
    """One line: examples, classes, fields; for detection also the instances of each split."""
    # One example describes the fields (a lazy split decodes just that one).
    shapes = ", ".join(f"{k} {v.shape[1:]} {v.dtype}" for k, v in self.train.head(1).items())
    counts = [instance_count(self.train), instance_count(self.test)]
    instances = (f" ({counts[0]} / {counts[1]} instances)" if None not in counts else "")
    return (f"{self.name}: {len(self.train)} train / {len(self.test)} test{instances}, "
            f"{self.num_classes} classes; {shapes}")


def instance_count(split: Any) -> int | None:
  """The labelled instances of a detection split (rows of its `classes` field > 0), counted without
  decoding an image (a lazy split asks its source's `instance_counts`); None for other splits."""
  if isinstance(split, ArrayDataset):
    classes = split.arrays.get("classes")
    return None if classes is None else int((np.asarray(classes) > 0).sum())
  counts = getattr(getattr(split, "source", None), "instance_counts", None)
  rows = getattr(split, "rows", None)
  return None if counts is None or rows is None else int(np.asarray(counts)[rows].sum())
