"""Robustness evaluation: Monte Carlo noise evaluation and the voting defense."""

from freqnoise.robust.montecarlo import MCResult, draw_key, mc_accuracy
from freqnoise.robust.voting import cumulative_votes, vote_predictions
