"""Streaming training batches on Grain: examples are read one at a time from a random-access source.

`StreamingBatches` gives, for every (seed, step), exactly the batch `pipeline.TrainBatches` gives on
the same split in memory (the same rows of the same per-epoch permutation, sorted, this process's
slice, then the same augmentation draw), so `config.data.pipeline` = 'memory' and 'grain' train
bitwise alike. What changes is where examples come from: Grain reads them from a source
(`freqnoise.data.random_access`, or a `tfds.data_source`) one example at a time, in
`num_workers` worker processes when asked, so a split need not fit in memory.

The Grain pipeline is: positions `step * local + r` -> (step, example) -> batches of `local`
(= batch_size / process_count) -> augmentation -> iterator (-> worker processes). Batching happens
before Grain hands positions to its workers, so every worker builds whole batches and the order of
batches does not depend on the number of workers. An iterator's state is the next step (plus what
must not change on resume); resuming from it equals an uninterrupted run bitwise.
"""

from __future__ import annotations

from typing import Any

import grain
import numpy as np
from absl import flags

from freqnoise.data.augment import augment_batch, augment_coefficients, check_coefficient_augment
from freqnoise.data.dataset import ArrayDataset
from freqnoise.data.pipeline import ORDERS, epoch_order, process_rows
from freqnoise.data.random_access import ArraySource

PIPELINES = ("memory", "grain")  # config.data.pipeline: TrainBatches | StreamingBatches
_OPEN_ENDED_STEPS = 2**40  # an iterator without a stop runs this many steps (i.e. until dropped)


class _Plan:
  """Which source rows this process reads at each step (picklable: it goes to Grain's workers)."""

  def __init__(self, num_examples: int, batch_size: int, seed: int, process_index: int,
               process_count: int, order: str):
    self.num_examples, self.batch_size, self.seed = num_examples, batch_size, seed
    self.process_index, self.process_count, self.order = process_index, process_count, order
    self.local = batch_size // process_count
    self.steps_per_epoch = num_examples // batch_size  # remainder dropped, as in TrainBatches
    self._perm: tuple[int, np.ndarray] | None = None  # (epoch, permutation), read and set whole
    self._rows: tuple[int, np.ndarray] | None = None  # (step, sorted rows)

  def __getstate__(self) -> dict[str, Any]:
    return {**self.__dict__, "_perm": None, "_rows": None}

  def permutation(self, epoch: int) -> np.ndarray:
    cached = self._perm
    if cached is None or cached[0] != epoch:
      cached = self._perm = (epoch, epoch_order(self.num_examples, self.seed, epoch, self.order))
    return cached[1]

  def rows(self, step: int) -> np.ndarray:
    """This process's rows of step `step`, sorted (TrainBatches' indices for the same step)."""
    cached = self._rows
    if cached is None or cached[0] != step:
      epoch, i = divmod(step, self.steps_per_epoch)
      rows, _ = process_rows(self.permutation(epoch), i, self.batch_size, self.process_index,
                             self.process_count)
      cached = self._rows = (step, rows)
    return cached[1]


class _ReadExample:
  """Grain map: position `step * local + r` -> (step, r-th example of the step)."""

  def __init__(self, plan: _Plan, source: Any):
    self.plan, self.source = plan, source

  def __call__(self, position: int) -> tuple[int, Any]:
    step, r = divmod(int(position), self.plan.local)
    return step, self.source[int(self.plan.rows(step)[r])]


class _Augment:
  """Grain map on a batch: (steps, examples) -> (step, examples augmented with step's draw).
  `coefficients`: the `image` field holds JPEG DCT coefficients (`augment_coefficients`)."""

  def __init__(self, plan: _Plan, augment: dict, rows: tuple[int, int], coefficients: bool = False):
    self.plan, self.seed, self.augment = plan, plan.seed, augment
    self.rows, self.coefficients = rows, coefficients  # rows: (offset, global batch size)

  def __call__(self, batch: tuple[np.ndarray, dict]) -> tuple[int, dict]:
    steps, examples = batch
    step = int(steps[0])
    examples = dict(examples)
    if self.augment:
      rng = np.random.default_rng([self.seed, step, 1])  # TrainBatches' draw for this step
      if self.coefficients:  # JPEG coefficients in `image`: the flip only, the pixel flip's draws
        examples["image"] = augment_coefficients(rng, examples["image"], **self.augment,
                                                 rows=self.rows)
      else:  # the row numbers and epoch are for the alternating flip
        examples = augment_batch(rng, examples, self.augment, rows=self.rows,
                                 examples=(self.seed, self.plan.rows(step),
                                           step // self.plan.steps_per_epoch))
    return step, examples


class StreamingBatches:
  """Training batches of step s read through Grain; the same batches as `TrainBatches`.

  Args:
    source: anything with `__len__` and `__getitem__(i) -> dict of arrays`: an `ArrayDataset`
      (wrapped in `ArraySource`), an `ImageFolderSource`, a `tfds.data_source(...)`.
    batch_size: the global batch; each process reads `batch_size / process_count` rows.
    seed: the shuffling seed (config.seed, as for TrainBatches).
    augment: keyword arguments of `augment_images`; only what is switched on is applied.
    order: 'shuffled' or 'sequential' (see freqnoise.data.pipeline).
    num_workers: Grain worker processes reading examples (0 = in this process).
    read_threads: threads per process reading examples (0 = one at a time; decoding images in
      threads overlaps file reads).
    coefficients: the examples' `image` field holds JPEG DCT coefficients `[h, w, 192]` (an
      `ImageFolderSource` with `jpeg_coefficients`): augmentation is `augment_coefficients` (flip
      only, with the pixel flip's draws); a crop in `augment` raises a ValueError naming it.
  """

  def __init__(self, source: Any, batch_size: int, seed: int, *, process_index: int = 0,
               process_count: int = 1, augment: dict | None = None, order: str = "shuffled",
               num_workers: int = 0, read_threads: int = 0, coefficients: bool = False):
    if isinstance(source, (ArrayDataset, dict)):
      source = ArraySource(source)
    if order not in ORDERS:
      raise ValueError(f"unknown batch order {order!r}; expected one of {', '.join(ORDERS)}")
    if batch_size <= 0 or batch_size % process_count:
      raise ValueError(f"batch_size {batch_size} must be positive and divisible by the "
                       f"{process_count} processes")
    if not 0 <= process_index < process_count:
      raise ValueError(f"process_index {process_index} is not in [0, {process_count})")
    if len(source) < batch_size:
      raise ValueError(f"batch_size {batch_size} is larger than the training split ({len(source)})")
    for name, value in (("num_workers", num_workers), ("read_threads", read_threads)):
      if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    self.source = source
    self.plan = _Plan(len(source), batch_size, seed, process_index, process_count, order)
    self.steps_per_epoch = self.plan.steps_per_epoch
    self.augment = {k: v for k, v in (augment or {}).items() if v}  # only what is switched on
    if coefficients:  # fail here, not in a worker process
      check_coefficient_augment(self.augment)
    self.coefficients = bool(coefficients)
    self.num_workers, self.read_threads = num_workers, read_threads
    self._iterator: StreamingIterator | None = None  # the one `batches[step]` advances

  def rows(self, step: int) -> np.ndarray:
    """The source rows of this process's slice of step `step`, sorted."""
    return self.plan.rows(step).copy()  # (the plan keeps its own)

  def dataset(self, start: int = 0, stop: int | None = None) -> grain.IterDataset:
    """Grain dataset of (step, batch) for steps start, start+1, ..., stop - 1."""
    if start < 0:
      raise ValueError(f"start step must be >= 0, got {start}")
    stop = start + _OPEN_ENDED_STEPS if stop is None else stop
    local = self.plan.local
    ds = (grain.MapDataset.range(start * local, max(start, stop) * local)
          .map(_ReadExample(self.plan, self.source))
          .batch(local)
          .map(_Augment(self.plan, self.augment,
                        (self.plan.process_index * local, self.plan.batch_size),
                        self.coefficients)))
    it = ds.to_iter_dataset(grain.ReadOptions(num_threads=self.read_threads,
                                              prefetch_buffer_size=max(2, 2 * self.read_threads)))
    if self.num_workers:
      if not flags.FLAGS.is_parsed():  # Grain reads an absl flag as it starts workers; outside
        flags.FLAGS.mark_as_parsed()   # an absl app (tests, notebooks) use the flags' defaults
      it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=self.num_workers))
    return it

  def iterator(self, start: int = 0) -> "StreamingIterator":
    """Batches of steps start, start+1, ... (close it, or drop it, when done)."""
    return StreamingIterator(self, start)

  def state_fields(self) -> dict[str, Any]:
    """What an iterator state must agree on to be resumed here (besides the step)."""
    p = self.plan
    return {"seed": p.seed, "batch_size": p.batch_size, "num_examples": p.num_examples,
            "process_index": p.process_index, "process_count": p.process_count, "order": p.order}

  def __getitem__(self, step: int) -> dict[str, np.ndarray]:
    """The batch of step `step`, as `TrainBatches[step]`. Consecutive steps come from one running
    iterator; any other step starts a new one there."""
    if self._iterator is None or self._iterator.next_step != step:
      self.close()
      self._iterator = self.iterator(step)
    return next(self._iterator)

  def close(self) -> None:
    """Stops the iterator behind `batches[step]` (and its worker processes)."""
    if self._iterator is not None:
      self._iterator.close()
      self._iterator = None

  def __del__(self):
    if hasattr(self, "_iterator"):  # not when __init__ raised before setting it
      self.close()


class StreamingIterator:
  """Iterator over one process's batches with a checkpointable state.

  `get_state()` is a small JSON-able dict: `next_step` and the fields that must match on resume
  (seed, batch size, split size, process slice, order). `set_state(state)` continues from it; it
  does not depend on num_workers, so a run may resume with another number of workers.
  """

  def __init__(self, batches: StreamingBatches, start: int):
    self._batches = batches
    self._iter = None
    self._start(start)

  def _start(self, step: int) -> None:
    self.close()
    self.next_step = step
    self._iter = iter(self._batches.dataset(step))

  def __iter__(self) -> "StreamingIterator":
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    step, batch = next(self._iter)
    if step != self.next_step:  # cannot happen unless Grain reorders elements: fail loudly
      raise RuntimeError(f"streaming pipeline produced step {step}, expected {self.next_step}")
    self.next_step += 1
    # Batches from worker processes arrive in shared memory (an ndarray subclass): copy them out
    # so none outlives its mapping, e.g. one still referenced at interpreter exit.
    return {k: v if type(v) is np.ndarray else np.array(v) for k, v in batch.items()}

  def get_state(self) -> dict[str, Any]:
    return {"next_step": self.next_step, **self._batches.state_fields()}

  def set_state(self, state: dict[str, Any]) -> None:
    for field, value in self._batches.state_fields().items():
      if state.get(field) != value:
        raise ValueError(f"iterator state has {field}={state.get(field)!r} but these batches have "
                         f"{field}={value!r}; it was saved by another data configuration")
    step = state.get("next_step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
      raise ValueError(f"iterator state next_step must be a non-negative integer, got {step!r}")
    self._start(step)

  def close(self) -> None:
    if self._iter is not None:
      self._iter.close()
      self._iter = None
