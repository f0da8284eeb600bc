"""An evaluator sweep's progress lines: its size first, then after each SNR the draws done, the
row's value, the rate and the ETA from the wall clock (the trainer's Progress, counting draws)."""

import math

from freqnoise import metrics
from freqnoise.evaluators.progress import SweepProgress


def test_a_line_per_snr_with_rate_and_eta(capsys, monkeypatch):
  clock = iter([100.0, 102.0, 103.0])  # start, after row 1 (4 draws in 2 s), after row 2
  monkeypatch.setattr(metrics.time, "perf_counter", lambda: next(clock))
  progress = SweepProgress("montecarlo", [0.0, math.inf], 4, "100 test examples")
  progress.row(0.0, {"mean": 0.51234})
  progress.row(math.inf, {"mean": 0.9})
  assert capsys.readouterr().out.splitlines() == [
      "montecarlo: 2 SNRs x 4 noise draws on 100 test examples",
      "draw 4/8 | snr 0 | mean 0.5123 | 2.0 draws/s | ETA 0:00:02",
      "draw 8/8 | snr inf | mean 0.9 | 2.7 draws/s | ETA 0:00:00"]


def test_one_snr_and_one_draw_are_singular(capsys):
  SweepProgress("mc_perplexity", [0.0], 1, "8 test rows")
  assert capsys.readouterr().out == "mc_perplexity: 1 SNR x 1 noise draw on 8 test rows\n"
