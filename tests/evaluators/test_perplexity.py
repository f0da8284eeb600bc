"""mc_perplexity (moved from experiments/deep_noise_injection/run.py into the library): without
noise it reproduces the SplitEvaluator's perplexity exactly (same stream order, same carried
state; and with independent, padded rows); noise draws differ; the inf draws are one pass; keys
are one chip per draw and one noise key per batch; the montecarlo evaluator refuses a carried
model."""

import json
import math
import os

import ml_collections
import numpy as np
import pytest

from configs import dni_ptb
from freqnoise import evaluators
from freqnoise.experiment import Experiment
from freqnoise.robust import draw_noise_key, draw_program_key
from tests.conftest import key_data, spy_experiment, write_tiny_ptb


def _config(tmp_path, carry=True, **block):
  write_tiny_ptb(tmp_path)
  c = dni_ptb.get_config("tiny")
  c.data.source = f"ptb:{tmp_path}"
  if not carry:
    c.model.carry_state = False
    c.data.order = "shuffled"
  c.eval_noise.snr_db = 0.0
  c.evals = ml_collections.ConfigDict({"ppl": {
      "type": "mc_perplexity", "snrs_db": (math.inf, 0.0), "num_draws": 2, "output": "mc.json",
      **block}})
  return c


def test_carried_lm_clean_perplexity_matches_the_split_evaluator(tmp_path):
  experiment = spy_experiment(_config(tmp_path), str(tmp_path / "run"))
  state = experiment.initial_state()
  evaluators.check_config(experiment.config)
  out = evaluators.run(experiment, state, "ppl")
  experiment.eval_noise = None  # the periodic eval, noiseless
  clean = evaluators.SplitEvaluator(experiment)(state)
  assert out["snr_inf/mean"] == pytest.approx(clean["perplexity"], rel=1e-5)
  with open(os.path.join(experiment.workdir, "mc.json")) as f:
    ppl = np.array(json.load(f)["perplexity"])
  assert ppl[0, 0] == ppl[0, 1] and ppl[1, 0] != ppl[1, 1]
  assert out["snr_inf/std"] == 0.0 and out["snr_0/std"] > 0.0
  # Draw d: one chip for the whole pass, a noise key per batch (the noiseless pass used draw 0's).
  key = experiment.key("ppl")
  num_batches = -(-len(experiment.splits.test) // experiment.eval_batch_size)
  expected = {(key_data(draw_noise_key(key, d, b)), key_data(draw_program_key(key, d)))
              for d in range(2) for b in range(num_batches)}
  assert expected <= experiment.seen


def test_independent_rows_are_padded_and_masked(tmp_path):
  experiment = Experiment(_config(tmp_path, carry=False, batch_size=12, snrs_db=(math.inf,)),
                          str(tmp_path / "run"))
  assert len(experiment.splits.test) % 12 and experiment.eval_batch_size != 12
  state = experiment.initial_state()
  out = evaluators.run(experiment, state, "ppl")
  experiment.eval_noise = None
  assert out["snr_inf/mean"] == pytest.approx(
      evaluators.SplitEvaluator(experiment)(state)["perplexity"], rel=1e-5)


def test_montecarlo_refuses_a_carried_model(tmp_path):
  config = _config(tmp_path)
  config.evals = ml_collections.ConfigDict({"montecarlo": {"type": "montecarlo", "num_draws": 4}})
  experiment = Experiment(config, str(tmp_path / "run"))
  with pytest.raises(ValueError, match="carries its recurrent state .* mc_perplexity"):
    evaluators.run(experiment, experiment.initial_state(), "montecarlo")
