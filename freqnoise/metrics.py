"""One metrics writer (JSON lines + TensorBoard) and a progress line with steps/s and ETA.

Records are strict JSON (`strict_json`): a non-finite value is written as `null`, never as the
`NaN` / `Infinity` that Python's json module writes by default and other JSON readers reject.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import time
from typing import Any, Mapping

from freqnoise.workdir import write_atomically


def strict_json(value: Any, **kwargs) -> str:
  """`json.dumps(value, allow_nan=False, **kwargs)` with every non-finite float (in nested dicts,
  lists and tuples too) written as null."""
  def finite(v):
    if isinstance(v, float):
      return v if math.isfinite(v) else None
    if isinstance(v, dict):
      return {k: finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
      return [finite(x) for x in v]
    return v
  return json.dumps(finite(value), allow_nan=False, **kwargs)


def _complete_rows(path: str, text: str) -> list[tuple[str, dict]]:
  """(line, row) of every non-blank line of `text` that ends in a newline: a last line without one
  is a row cut short by a killed process. A malformed complete line is a ValueError naming it."""
  rows = []
  for number, line in enumerate(text.split("\n")[:-1], 1):
    if line.strip():
      try:
        rows.append((line, json.loads(line)))
      except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{number}: not a JSON row ({e}): {line[:80]!r}") from None
  return rows


class MetricWriter:
  """Appends `{"step": s, "split": ..., name: value}` rows to `workdir/metrics.jsonl` and TensorBoard.

  Only the writing process (process 0 in multi-host runs) should pass `enabled=True`.

  A resumed run passes `resume_step`, the step of the checkpoint it resumes from. Opening an
  existing file then rewrites it (temp file + rename) without a partial last row left by a killed
  process and without the rows of steps after `resume_step` (the resumed run logs those steps
  again), and a row of a (step, split) that the file already held is not written again (a rerun of
  a finished run evaluates its last step once more).
  """

  def __init__(self, workdir: str, enabled: bool = True, tensorboard: bool = True,
               resume_step: int | None = None):
    self.enabled = enabled
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    self._earlier: set[tuple[int, str]] = set()  # (step, split) of the rows a previous run wrote
    if enabled:
      os.makedirs(workdir, exist_ok=True)
      if os.path.isfile(self.path):
        self._resume(resume_step)
      if tensorboard:
        from tensorboardX import SummaryWriter
        self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def _resume(self, resume_step: int | None) -> None:
    with open(self.path) as f:
      text = f.read()
    keep = [(line, row) for line, row in _complete_rows(self.path, text)
            if resume_step is None or row["step"] <= resume_step]
    kept_text = "".join(line + "\n" for line, _ in keep)
    if kept_text != text:
      write_atomically(self.path, kept_text)
    self._earlier = {(row["step"], row["split"]) for _, row in keep}

  def write(self, step: int, split: str, scalars: Mapping[str, float]) -> None:
    if not self.enabled or (int(step), split) in self._earlier:
      return
    row = {"step": int(step), "split": split, **{k: float(v) for k, v in scalars.items()}}
    with open(self.path, "a") as f:
      f.write(strict_json(row) + "\n")
    if self._tb is not None:
      for k, v in scalars.items():
        self._tb.add_scalar(f"{split}/{k}", float(v), int(step))

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def read_metrics(workdir: str) -> list[dict]:
  """All complete rows written by `MetricWriter` in `workdir`, in order, a non-finite value (null in
  the file) as NaN. A partial last row left by a killed run is not one; a malformed complete row is
  a ValueError naming the file and line."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.isfile(path):
    return []
  with open(path) as f:
    return [{k: math.nan if v is None else v for k, v in row.items()}
            for _, row in _complete_rows(path, f.read())]


class Progress:
  """Formats `step 120/1000 | loss 0.31 | 85.2 steps/s | ETA 0:00:10` from wall-clock rate.

  The rate counts training steps only: time spent in evaluations and checkpoint saves is
  `exclude`d, so steps/s is the step's own cost whatever the eval cadence. The ETA is of the
  training steps left (rounded up: never 0:00:00 while any remain).
  """

  def __init__(self, total_steps: int, start_step: int, unit: str = "step"):
    self.total, self.unit = total_steps, unit  # unit: what is counted (an evaluator's "draw")
    self._t0, self._s0 = None, start_step
    self._excluded = 0.0

  def mark_compiled(self, step: int) -> None:
    """Starts the rate clock after the first (compiling) step so steps/s reflects steady state."""
    self._t0, self._s0, self._excluded = time.perf_counter(), step, 0.0

  def exclude(self, seconds: float) -> None:
    """Leaves `seconds` (an evaluation, a checkpoint save) out of the training rate."""
    if self._t0 is not None:
      self._excluded += seconds

  def steps_per_sec(self, step: int) -> float:
    if self._t0 is None or step <= self._s0:
      return float("nan")
    return (step - self._s0) / max(time.perf_counter() - self._t0 - self._excluded, 1e-9)

  def line(self, step: int, scalars: Mapping[str, float]) -> str:
    rate = self.steps_per_sec(step)
    eta = (self.total - step) / rate if rate > 0 else float("nan")
    eta_text = str(datetime.timedelta(seconds=math.ceil(eta))) if math.isfinite(eta) else "?"
    values = " | ".join(f"{k} {v:.4g}" for k, v in scalars.items())
    return (f"{self.unit} {step}/{self.total} | {values} | {rate:.1f} {self.unit}s/s | "
            f"ETA {eta_text}")
