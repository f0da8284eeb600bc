"""The decoded-image cache of image-folder sources (`config.data.cache_dir`, default
`~/.cache/freqnoise`; "" = none): one `imagefolder-<digest>.npz` per folder, split pair and image
size, bounded in total by evicting the least recently used file.

The bound is `FREQNOISE_CACHE_MAX_GB` (GB of 10^9 bytes, default `DEFAULT_MAX_GB`; 0 keeps nothing).
An environment variable, not a config field: where and how much a machine caches never changes
what a run computes. A file used (read or written) gets the current modification time, so
"least recently used" is the oldest mtime. Only `imagefolder-*.npz` files are ever removed.
Clearing it by hand: `rm -rf ~/.cache/freqnoise` (or the run's `data.cache_dir`).
"""

from __future__ import annotations

import contextlib
import glob
import os

MAX_GB_ENV = "FREQNOISE_CACHE_MAX_GB"
# A few decoded datasets at a few sizes (Imagenette at 224²: 1.5 GB; at 448²: 6 GB).
DEFAULT_MAX_GB = 10.0
PATTERN = "imagefolder-*.npz"


def max_bytes() -> int:
  """The bound in bytes, from `FREQNOISE_CACHE_MAX_GB` (unset or empty: `DEFAULT_MAX_GB`)."""
  text = os.environ.get(MAX_GB_ENV, "").strip()
  if not text:
    return int(DEFAULT_MAX_GB * 1e9)
  try:
    gb = float(text)
  except ValueError:
    gb = -1.0
  if not 0 <= gb < float("inf"):
    raise ValueError(f"{MAX_GB_ENV}={text!r} must be a size in GB >= 0 (e.g. 10; 0 = cache "
                     "nothing)")
  return int(gb * 1e9)


def mark_used(path: str) -> None:
  """Makes `path` the most recently used entry (a read-only cache just keeps its order)."""
  with contextlib.suppress(OSError):
    os.utime(path)


def entries(cache_dir: str) -> list[tuple[str, int, int]]:
  """(path, bytes, mtime_ns) of every cache file in `cache_dir`, most recently used first."""
  found = []
  for path in glob.glob(os.path.join(glob.escape(cache_dir), PATTERN)):
    with contextlib.suppress(FileNotFoundError):  # another process may be pruning too
      st = os.stat(path)
      found.append((path, st.st_size, st.st_mtime_ns))
  return sorted(found, key=lambda e: (-e[2], e[0]))


def prune(cache_dir: str, limit: int, keep: str | None = None) -> list[str]:
  """Removes the least recently used cache files until the rest fit in `limit` bytes; `keep` (the
  file just written or read) is never removed. Returns the removed paths."""
  total = sum(size for path, size, _ in entries(cache_dir) if path == keep)
  removed = []
  for path, size, _ in entries(cache_dir):
    if path == keep:
      continue
    if total + size <= limit:
      total += size
      continue
    with contextlib.suppress(FileNotFoundError):
      os.remove(path)
    removed.append(path)
  return removed


def describe(cache_dir: str, limit: int) -> str:
  """'N files, X GB of the Y GB bound (FREQNOISE_CACHE_MAX_GB) in DIR': for the user's log."""
  found = entries(cache_dir)
  used = sum(size for _, size, _ in found) / 1e9
  return (f"{len(found)} file{'s' * (len(found) != 1)}, {used:.2f} GB of the {limit / 1e9:g} GB "
          f"bound ({MAX_GB_ENV}) in {cache_dir}")
