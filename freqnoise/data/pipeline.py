"""Batching: deterministic shuffling from (seed, epoch), per-process slices, padded eval batches.

The batch of training step `s` is a pure function of (seed, s), so a run resumed at step `s` sees
exactly the batches an uninterrupted run would. `order='sequential'` skips the shuffle: step k of
every epoch takes rows [k*B, (k+1)*B), which is what truncated BPTT with a carried state needs (the
PTB rows are laid out so that row b of block k+1 continues row b of block k).
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator

import numpy as np

from freqnoise.data.augment import augment_batch
from freqnoise.data.dataset import ArrayDataset


ORDERS = ("shuffled", "sequential")  # training batch orders (see the module docstring)


def epoch_order(num_examples: int, seed: int, epoch: int, order: str) -> np.ndarray:
  """The example order of one epoch: seeded per-epoch permutation, or 0..n-1 ('sequential')."""
  if order == "sequential":
    return np.arange(num_examples)
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def process_rows(perm: np.ndarray, i: int, batch_size: int, process_index: int,
                 process_count: int) -> tuple[np.ndarray, int]:
  """This process's rows of the epoch's batch `i`, and their offset in the global batch. The
  global batch is sorted, then sliced: row j of it is the same example (with the same
  augmentation and, on the device, the same dropout mask) on any process layout."""
  local = batch_size // process_count
  offset = process_index * local
  rows = np.sort(perm[i * batch_size:(i + 1) * batch_size])
  return rows[offset:offset + local], offset


class TrainBatches:
  """Training batches indexed by step: `batches[step]` -> this process's slice of the global batch."""

  def __init__(self, ds: ArrayDataset, batch_size: int, seed: int, *, process_index: int = 0,
               process_count: int = 1, augment: dict | None = None, order: str = "shuffled"):
    """`augment`: keyword arguments of `augment_images` (crop_padding, flip, resized_crop_min_scale).
    `order`: 'shuffled' or 'sequential' (see the module docstring)."""
    if order not in ORDERS:
      raise ValueError(f"unknown batch order {order!r}; expected one of {', '.join(ORDERS)}")
    if batch_size <= 0 or batch_size % process_count:
      raise ValueError(f"batch_size {batch_size} must be positive and divisible by the "
                       f"{process_count} processes")
    if len(ds) < batch_size:
      raise ValueError(f"batch_size {batch_size} is larger than the training split ({len(ds)})")
    self.ds, self.batch_size, self.seed = ds, batch_size, seed
    self.process_index, self.process_count = process_index, process_count
    self.augment = {k: v for k, v in (augment or {}).items() if v}  # only what is switched on
    self.steps_per_epoch = len(ds) // batch_size  # the remainder is dropped, reshuffled next epoch
    self.order = order
    self._epoch, self._perm = -1, None

  def __getitem__(self, step: int) -> dict[str, np.ndarray]:
    epoch, i = divmod(step, self.steps_per_epoch)
    if epoch != self._epoch:
      self._epoch = epoch
      self._perm = epoch_order(len(self.ds), self.seed, epoch, self.order)
    rows, offset = process_rows(self._perm, i, self.batch_size, self.process_index,
                                self.process_count)
    batch = self.ds[rows]
    if self.augment:
      rng = np.random.default_rng([self.seed, step, 1])
      batch = augment_batch(rng, batch, self.augment, rows=(offset, self.batch_size),
                            examples=(self.seed, rows, epoch))
    return batch


def eval_batches(ds: ArrayDataset, batch_size: int, *, process_index: int = 0,
                 process_count: int = 1) -> Iterator[dict[str, np.ndarray]]:
  """Sequential batches over the whole split; the last one is padded and `mask` marks real examples."""
  if batch_size <= 0 or batch_size % process_count:
    raise ValueError(f"eval batch_size {batch_size} must be positive and divisible by the "
                     f"{process_count} processes")
  local = batch_size // process_count
  for start in range(0, len(ds), batch_size):
    idx = np.arange(start + process_index * local, start + (process_index + 1) * local)
    mask = idx < len(ds)
    batch = ds[np.minimum(idx, len(ds) - 1)]
    batch["mask"] = mask.astype(np.float32)
    yield batch


def prefetch(make: Callable[[int], object], start: int, stop: int, depth: int = 2) -> Iterator:
  """Yields make(start), ..., make(stop - 1), computed `depth` items ahead in a background thread."""
  q: queue.Queue = queue.Queue(maxsize=depth)
  stop_flag = threading.Event()

  def worker():
    try:
      for i in range(start, stop):
        if stop_flag.is_set():
          return
        q.put((i, make(i), None))
    except BaseException as e:  # surface the producer's error in the consumer
      q.put((None, None, e))

  thread = threading.Thread(target=worker, daemon=True)
  thread.start()
  try:
    for _ in range(start, stop):
      _, item, err = q.get()
      if err is not None:
        raise err
      yield item
  finally:
    stop_flag.set()
    while thread.is_alive():
      try:
        q.get_nowait()
      except queue.Empty:
        thread.join(timeout=0.01)
