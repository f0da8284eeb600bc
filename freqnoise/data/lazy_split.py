"""A training split that is read one example at a time and never decoded whole.

`LazySplit` wraps a random-access source (`len(src)`, `src[i] -> dict of arrays`, e.g.
`random_access.ImageFolderSource`) and offers what the trainer asks of an in-memory `ArrayDataset`:
`len`, `split[i]` (one example), `split[index array]` (stacked), `fields()`, `take` / `sample` (for
`config.data.limit_train`; they stay lazy), and `head(n)` / `fit_sample(n, seed)`, the stacked
examples that initialise a model and fit the input statistics. Only the rows asked for are decoded,
so with `config.data.pipeline = 'grain'` (which streams training batches from `split[i]`) a split
larger than host memory trains, and the statistics see the same seeded sample as in memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from freqnoise.data.dataset import sample_indices


class LazySplit:
  """Rows `rows` (default: all, in order) of `source`, decoded only when asked for.

  Args:
    source: anything with `__len__` and `__getitem__(int) -> dict of arrays`; it is pickled into
      Grain's worker processes with the split.
    rows: the source rows this split holds, in split order (`take` / `sample` narrow it).
  """

  def __init__(self, source: Any, rows: np.ndarray | None = None):
    self.source = source
    self.rows = np.arange(len(source)) if rows is None else np.asarray(rows, np.int64)
    if self.rows.ndim != 1:
      raise ValueError(f"rows must be a 1-D array of source rows, got shape {self.rows.shape}")
    self._fields: list[str] | None = None  # read from the first example when first asked for

  def __len__(self) -> int:
    return len(self.rows)

  def _example(self, i: int) -> dict[str, np.ndarray]:
    if not -len(self) <= i < len(self):
      raise IndexError(f"index {i} out of range for a split of {len(self)} examples")
    return dict(self.source[int(self.rows[i])])

  def __getitem__(self, index) -> dict[str, np.ndarray]:
    """`split[i]`: example i (a dict of arrays); `split[indices]` or `split[a:b]`: those examples
    stacked along a new first axis, as `ArrayDataset[indices]` gives them."""
    if isinstance(index, (int, np.integer)):
      return self._example(int(index))
    if isinstance(index, slice):
      index = np.arange(len(self))[index]
    index = np.asarray(index)
    if index.ndim != 1 or not (index.size == 0 or np.issubdtype(index.dtype, np.integer)):
      raise TypeError(f"a lazy split is indexed by an int, a slice or a 1-D integer array, got "
                      f"{index.dtype} of shape {index.shape}")
    return self._stack([int(i) for i in index])

  def _stack(self, indices: list[int]) -> dict[str, np.ndarray]:
    if not indices:  # no rows: empty arrays shaped like one example's fields
      first = self._example(0) if len(self) else {}
      return {k: np.empty((0,) + np.shape(v), np.asarray(v).dtype) for k, v in first.items()}
    examples = [self._example(i) for i in indices]
    stacked = {}
    for k in examples[0]:
      values = [np.asarray(e[k]) for e in examples]
      shapes = sorted({v.shape for v in values})
      if len(shapes) != 1:
        raise ValueError(f"field {k!r} differs in shape across examples ({shapes[:4]}); for an "
                         "image folder set config.data.image_size to resize every image")
      stacked[k] = np.stack(values)
    return stacked

  def fields(self) -> list[str]:
    """The names of the fields every example has (decodes the first example once)."""
    if self._fields is None:
      self._fields = list(self._example(0)) if len(self) else []
    return list(self._fields)

  def take(self, n: int) -> "LazySplit":
    """The first `n` examples (only for splits whose order matters), still lazy."""
    return LazySplit(self.source, self.rows[:n])

  def sample(self, n: int, seed: int) -> "LazySplit":
    """`n` examples drawn without replacement across the whole split, kept in split order: the
    rows `ArrayDataset.sample(n, seed)` keeps, still lazy."""
    return LazySplit(self.source, self.rows[sample_indices(len(self), n, seed)])

  def head(self, n: int) -> dict[str, np.ndarray]:
    """The first `n` examples, stacked (decodes only those)."""
    return self._stack(list(range(min(n, len(self)))))

  def fit_sample(self, n: int, seed: int) -> dict[str, np.ndarray]:
    """The `sample_indices(len(self), n, seed)` examples, stacked: the seeded sample an input
    transform fits its statistics on, decoding only those rows (as `ArrayDataset.fit_sample`)."""
    return self._stack(sample_indices(len(self), n, seed).tolist())

  def __repr__(self) -> str:
    return f"LazySplit({len(self)} of {len(self.source)} rows of {type(self.source).__name__})"
