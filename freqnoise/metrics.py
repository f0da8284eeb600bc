"""One metrics writer (JSON lines + TensorBoard) and a progress line with steps/s and ETA."""

from __future__ import annotations

import datetime
import json
import math
import os
import time
from typing import Mapping


class MetricWriter:
  """Appends `{"step": s, "split": ..., name: value}` rows to `workdir/metrics.jsonl` and TensorBoard.

  Only the writing process (process 0 in multi-host runs) should pass `enabled=True`.
  """

  def __init__(self, workdir: str, enabled: bool = True, tensorboard: bool = True):
    self.enabled = enabled
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if enabled:
      os.makedirs(workdir, exist_ok=True)
      if tensorboard:
        from tensorboardX import SummaryWriter
        self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))

  def write(self, step: int, split: str, scalars: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    row = {"step": int(step), "split": split, **{k: float(v) for k, v in scalars.items()}}
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")
    if self._tb is not None:
      for k, v in scalars.items():
        self._tb.add_scalar(f"{split}/{k}", float(v), int(step))

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def read_metrics(workdir: str) -> list[dict]:
  """All rows written by `MetricWriter` in `workdir`, in order."""
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.isfile(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


class Progress:
  """Formats `step 120/1000 | loss 0.31 | 85.2 steps/s | ETA 0:00:10` from wall-clock rate."""

  def __init__(self, total_steps: int, start_step: int):
    self.total = total_steps
    self._t0, self._s0 = None, start_step

  def mark_compiled(self, step: int) -> None:
    """Starts the rate clock after the first (compiling) step so steps/s reflects steady state."""
    self._t0, self._s0 = time.perf_counter(), step

  def steps_per_sec(self, step: int) -> float:
    if self._t0 is None or step <= self._s0:
      return float("nan")
    return (step - self._s0) / (time.perf_counter() - self._t0)

  def line(self, step: int, scalars: Mapping[str, float]) -> str:
    rate = self.steps_per_sec(step)
    eta = (self.total - step) / rate if rate > 0 else float("nan")
    eta_text = str(datetime.timedelta(seconds=round(eta))) if math.isfinite(eta) else "?"
    values = " | ".join(f"{k} {v:.4g}" for k, v in scalars.items())
    return f"step {step}/{self.total} | {values} | {rate:.1f} steps/s | ETA {eta_text}"
