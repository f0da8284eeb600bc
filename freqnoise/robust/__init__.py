"""Robustness numerics: Monte Carlo noise evaluation and the voting defense (no experiment or
config code here; `freqnoise.evaluators` builds evaluators on top of these)."""

from freqnoise.robust.montecarlo import (MCResult, draw_noise_key, draw_program_key, mc_accuracy,
                                         result_from_json, result_to_json)
from freqnoise.robust.voting import cumulative_votes, vote_predictions
