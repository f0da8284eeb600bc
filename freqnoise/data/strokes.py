"""MNIST pen-stroke sequences (Edwin de Jong, 2016) in their published file format.

Source: https://github.com/edwin-de-jong/mnist-digits-stroke-sequence-data (wiki page "MNIST digits
stroke sequence data"; archive `sequences.tar.gz`). For image i of split s in {train, test}:
  * `{s}img-{i}-inputdata.txt`: one row per pen movement, four integer columns `dx dy eos eod`:
    dx, dy the pen offset in pixels (positive y downward, implicit start at (0, 0)); eos = 1 on the
    last point of a stroke; eod = 1 on the last point of the digit.
  * `{s}img-{i}-targetdata.txt`: rows whose first ten columns are the one-hot digit label (the
    remaining columns repeat the next input point, for sequence prediction; unused here).
This dataset is not available offline; the tests exercise the reader on files they write.

Sequences have different lengths; they are zero-padded at the *front* to a common length so that
the last time step of every row is the digit's last real point (a classifier reading the last RNN
state then needs no mask). The true lengths are returned too.
"""

from __future__ import annotations

import os
import re

import numpy as np

_INPUT_FILE = re.compile(r"^(train|test)img-(\d+)-inputdata\.txt$")


def read_stroke_points(path: str) -> np.ndarray:
  """int32 [T, 4] rows `dx dy eos eod` of one `*-inputdata.txt` file."""
  values = _read_ints(path)
  if values.size == 0 or values.size % 4:
    raise ValueError(f"{path}: expected rows of 4 integers (dx dy eos eod), got {values.size} values")
  return values.reshape(-1, 4)


def read_stroke_label(path: str) -> int:
  """The digit 0..9 of one `*-targetdata.txt` file (first ten columns of its first row, one-hot)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"stroke target file not found: {path}")
  with open(path) as f:
    first = f.readline().split()
  if len(first) < 10:
    raise ValueError(f"{path}: first row has {len(first)} columns, expected a 10-column one-hot label")
  onehot = np.array([int(float(v)) for v in first[:10]])
  if onehot.sum() != 1 or set(np.unique(onehot)) - {0, 1}:
    raise ValueError(f"{path}: first ten columns {onehot.tolist()} are not a one-hot label")
  return int(np.argmax(onehot))


def load_stroke_split(directory: str, split: str = "train", *, max_length: int | None = None,
                      limit: int | None = None) -> dict[str, np.ndarray]:
  """Reads every `{split}img-{i}-*` pair in `directory`, in order of i.

  Args:
    directory: folder of the extracted `sequences/` archive.
    split: 'train' or 'test'.
    max_length: pad/crop length T; sequences longer than it are an error (default: the longest).
    limit: read only images 0..limit-1.

  Returns:
    {'inputs': float32 [N, T, 4] front-padded rows (dx, dy, eos, eod), 'length': int32 [N],
     'label': int32 [N]}.
  """
  if split not in ("train", "test"):
    raise ValueError(f"split must be 'train' or 'test', got {split!r}")
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"stroke directory not found: {directory}")
  indices = sorted(int(m.group(2)) for m in map(_INPUT_FILE.match, os.listdir(directory))
                   if m and m.group(1) == split)
  if limit is not None:
    indices = indices[:limit]
  if not indices:
    raise FileNotFoundError(f"no {split}img-N-inputdata.txt files in {directory}")
  if indices != list(range(len(indices))):
    raise ValueError(f"{split} image files in {directory} are not numbered 0..{len(indices) - 1}")
  points, labels = [], []
  for i in indices:
    stem = os.path.join(directory, f"{split}img-{i}")
    points.append(read_stroke_points(stem + "-inputdata.txt"))
    labels.append(read_stroke_label(stem + "-targetdata.txt"))
  lengths = np.array([len(p) for p in points], np.int32)
  t = int(lengths.max()) if max_length is None else max_length
  if lengths.max() > t:
    raise ValueError(f"a {split} sequence has {lengths.max()} points, more than max_length={t}")
  inputs = np.zeros((len(points), t, 4), np.float32)
  for row, p in zip(inputs, points):
    row[t - len(p):] = p
  return {"inputs": inputs, "length": lengths, "label": np.array(labels, np.int32)}


def _read_ints(path: str) -> np.ndarray:
  if not os.path.isfile(path):
    raise FileNotFoundError(f"stroke input file not found: {path}")
  with open(path) as f:
    text = f.read().split()
  try:
    return np.array([int(v) for v in text], np.int32)
  except ValueError as e:
    raise ValueError(f"{path}: non-integer value ({e})") from None
