"""Progress lines of an evaluator's sweep over SNRs x noise draws, as the trainer prints its steps
(freqnoise.metrics.Progress: the rate and ETA from wall-clock time), from process 0 only:

    montecarlo: 6 SNRs x 16 noise draws on 10,000 test examples
    draw 16/96 | snr -5 | mean 0.4312 | 3.2 draws/s | ETA 0:00:25

One line when a row (an SNR, all its draws) is done. The rate counts from the sweep's start, so it
includes the first row's compilation: the first ETA is pessimistic, later ones settle.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax

from freqnoise.metrics import Progress


class SweepProgress:
  """`SweepProgress(title, snrs, num_draws, what)` prints the sweep's size; `.row(snr, scalars)`
  after each SNR's draws prints the draws done of `len(snrs) * num_draws`, `scalars` (e.g. the
  row's mean) and the ETA."""

  def __init__(self, title: str, snrs: Sequence[float], num_draws: int, what: str):
    self.num_draws, self.done = num_draws, 0
    self.enabled = jax.process_index() == 0
    self.progress = Progress(len(snrs) * num_draws, 0, unit="draw")
    self.progress.mark_compiled(0)  # no separate compile step: the clock starts now
    if self.enabled:
      print(f"{title}: {len(snrs)} SNR{'s' * (len(snrs) != 1)} x {num_draws} noise "
            f"draw{'s' * (num_draws != 1)} on {what}", flush=True)

  def row(self, snr: float, scalars: Mapping[str, float]) -> None:
    self.done += self.num_draws
    if self.enabled:
      print(self.progress.line(self.done, {"snr": snr, **scalars}), flush=True)
