"""Reader for the IDX format of MNIST / Fashion-MNIST (`*-idx3-ubyte[.gz]`), as LeCun published it.

Format: 2 zero bytes, a type byte (0x08 = uint8), a rank byte, then `rank` big-endian uint32 sizes,
then the data in C order.
"""

from __future__ import annotations

import gzip
import os

import numpy as np

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
           0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str) -> np.ndarray:
  """Returns the array stored in an IDX file (gzipped or not); errors name the file and problem."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"IDX file not found: {path}")
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      raw = f.read()
  except (OSError, EOFError) as e:  # gzip raises these on truncated/corrupt streams
    raise ValueError(f"{path}: cannot read IDX data ({e})") from e
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
    raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
  type_code, rank = raw[2], raw[3]
  if type_code not in _DTYPES:
    raise ValueError(f"{path}: unknown IDX element type 0x{type_code:02x}")
  header = 4 + 4 * rank
  if len(raw) < header:
    raise ValueError(f"{path}: truncated IDX header")
  shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank))
  dtype = np.dtype(_DTYPES[type_code])
  expected = int(np.prod(shape)) * dtype.itemsize
  if len(raw) - header != expected:
    raise ValueError(f"{path}: IDX body has {len(raw) - header} bytes but shape {shape} needs "
                     f"{expected} (truncated or corrupt file)")
  return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _find(directory: str, stem: str) -> str:
  for name in (stem, stem + ".gz"):
    path = os.path.join(directory, name)
    if os.path.isfile(path):
      return path
  raise FileNotFoundError(f"{directory}: neither {stem} nor {stem}.gz found (expected the original "
                          "MNIST/Fashion-MNIST file names)")


def load_idx_dataset(directory: str) -> dict[str, dict[str, np.ndarray]]:
  """Loads `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` from a folder into train/test splits."""
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"IDX data folder not found: {directory}")
  splits = {}
  for split, prefix in (("train", "train"), ("test", "t10k")):
    images = read_idx(_find(directory, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find(directory, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
      raise ValueError(f"{directory}: {split} images {images.shape} and labels {labels.shape} "
                       "do not match")
    splits[split] = {"image": images[..., None], "label": labels.astype(np.int32)}
  return splits
