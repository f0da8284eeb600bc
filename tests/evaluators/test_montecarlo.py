"""The montecarlo evaluator on a digits MLP built as an Experiment: its scalars and JSON, a limit
that samples across a class-sorted split, the run's mesh, the eval noise's layers kept when its
own SNR is inf, the inf shortcut only without weight noise, SNR grids from command-line strings; the
grid run an SNR at a time (a progress line after each) gives the numbers of one call over it."""

import dataclasses
import json
import math

import jax
import ml_collections
import numpy as np
import pytest

from configs.digits_mlp import get_config
from freqnoise import evaluators
from freqnoise.analog.noise import NoiseConfig
from freqnoise.data import ArrayDataset, Splits, load_splits
from freqnoise.evaluators import montecarlo as mc_module
from freqnoise.evaluators.montecarlo import (NoisyPredict, deterministic_at_inf, evaluation_set,
                                             parse_snr_grid)
from freqnoise.experiment import Experiment
from freqnoise.robust import mc_accuracy, result_from_json


def _config(**block):
  c = get_config("tiny")
  c.eval_noise.snr_db = 0.0
  c.eval_noise.layers = "all_but_first"
  c.evals = ml_collections.ConfigDict({"montecarlo": {
      "type": "montecarlo", "snrs_db": (0.0, 10.0, math.inf), "num_draws": 4, "limit": 100,
      **block}})
  return c


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  experiment = Experiment(_config(), str(tmp_path_factory.mktemp("mc")))
  return experiment, experiment.initial_state()


def test_scalars_and_json(run):
  experiment, state = run
  mc = evaluators.run(experiment, state, "montecarlo")
  assert set(mc) == {f"snr_{s}/{m}" for s in ("0", "10", "inf") for m in
                     ("mean", "ci95", "std", "p2.5", "p97.5", "vote_majority", "vote_mean_prob")}
  assert mc["snr_inf/std"] == 0.0 and mc["snr_0/std"] > 0.0 and mc["snr_0/ci95"] > 0.0
  with open(f"{experiment.workdir}/montecarlo.json") as f:
    saved = json.load(f)
  assert saved["noise"]["layers"] == "all_but_first" and saved["snrs_db"][-1] == "inf"
  result = result_from_json(saved)
  assert result.accuracy.shape == (3, 4) and result.num_examples == 100
  assert evaluators.run(experiment, state, "montecarlo") == mc  # a function of the key alone


def test_rows_one_at_a_time_give_the_numbers_of_one_call_and_show_progress(run, capsys):
  experiment, state = run
  capsys.readouterr()
  evaluators.run(experiment, state, "montecarlo")
  lines = capsys.readouterr().out.splitlines()
  assert lines[0] == "montecarlo: 3 SNRs x 4 noise draws on 100 test examples"
  assert [line.split(" | ")[:2] for line in lines[1:]] == [
      ["draw 4/12", "snr 0"], ["draw 8/12", "snr 10"], ["draw 12/12", "snr inf"]]
  with open(f"{experiment.workdir}/montecarlo.json") as f:
    rows = result_from_json(json.load(f))
  images, labels = evaluation_set(experiment, evaluators.settings(experiment.config,
                                                                  "montecarlo")[1])
  whole = mc_accuracy(NoisyPredict(experiment, experiment.eval_noise_spec),
                      experiment.variables(state), images, labels, snrs_db=[0.0, 10.0, math.inf],
                      num_draws=4, key=experiment.key("montecarlo"),
                      batch_size=experiment.eval_batch_size, mesh=experiment.mesh,
                      static_at_inf=True)
  for field in ("accuracy", "majority", "mean_prob"):
    np.testing.assert_array_equal(getattr(rows, field), getattr(whole, field))
  assert [float(m) for m in (lines[1].split(" | ")[2][5:], lines[3].split(" | ")[2][5:])] == [
      pytest.approx(whole.mean[0], abs=5e-5), pytest.approx(whole.mean[2], abs=5e-5)]


def test_limit_is_a_seeded_sample_across_a_class_sorted_split(tmp_path):
  splits = load_splits(get_config("tiny").data)
  order = np.argsort(splits.test.arrays["label"], kind="stable")  # like an image folder
  test = ArrayDataset({k: v[order] for k, v in splits.test.arrays.items()})
  sorted_splits = Splits(splits.train, test, splits.num_classes, splits.name, splits.meta)
  experiment = Experiment(_config(limit=60), str(tmp_path), splits=sorted_splits)
  settings = evaluators.settings(experiment.config, "montecarlo")[1]
  images, labels = evaluation_set(experiment, settings)
  assert len(labels) == 60 and set(labels) == set(range(10))  # a prefix holds 2 classes
  assert set(test.arrays["label"][:60]) == {0, 1}
  again = evaluation_set(experiment, settings)[1]
  np.testing.assert_array_equal(labels, again)  # seeded


@pytest.mark.skipif(jax.device_count() < 4, reason="needs the default 4 fake CPU devices")
def test_runs_on_the_runs_mesh(tmp_path, monkeypatch):
  config = _config(num_draws=2)
  config.num_devices = 2  # fewer than the 4 (fake) devices: the old evaluator used them all
  experiment = Experiment(config, str(tmp_path))
  seen = {}
  real = mc_module.mc_accuracy

  def spy(*args, **kwargs):
    seen.update(kwargs)
    return real(*args, **kwargs)

  monkeypatch.setattr(mc_module, "mc_accuracy", spy)
  evaluators.run(experiment, experiment.initial_state(), "montecarlo")
  assert seen["mesh"] is experiment.mesh and seen["mesh"].size == 2
  assert seen["static_at_inf"] is True


def test_eval_noise_layers_are_kept_when_its_own_snr_is_inf(tmp_path):
  """The grid sets the SNR; kind / power / layers come from config.eval_noise even when that block
  is noiseless (snr_db = inf) -- it used to fall back to 'all' layers."""

  def mean_at_0db(snr_db, layers):
    c = _config(snrs_db=(0.0,), output="")
    c.eval_noise.snr_db, c.eval_noise.layers = snr_db, layers
    experiment = Experiment(c, str(tmp_path))
    return evaluators.run(experiment, experiment.initial_state(), "montecarlo")

  off_but_last = mean_at_0db(math.inf, "all_but_last")
  assert off_but_last == mean_at_0db(5.0, "all_but_last")
  assert off_but_last != mean_at_0db(5.0, "all")


def test_inf_shortcut_only_when_nothing_else_is_random():
  assert deterministic_at_inf(NoiseConfig(snr_db=0.0))
  assert deterministic_at_inf(NoiseConfig(snr_db=0.0, kind="none"))
  assert not deterministic_at_inf(NoiseConfig(snr_db=0.0, weight_noise="additive",
                                              weight_sigma=0.1))
  fields = {f.name for f in dataclasses.fields(NoiseConfig)}
  if "weight_draw" in fields:
    assert not deterministic_at_inf(NoiseConfig(weight_noise="additive", weight_sigma=0.1,
                                                weight_draw="read"))


def test_inf_shortcut_off_with_adc_noise_or_stochastic_rounding():
  from freqnoise.analog.product_quant import quant_from_config
  off = NoiseConfig(snr_db=math.inf)
  assert deterministic_at_inf(off, quant_from_config({"adc_bits": 4, "weight_bits": 4}))
  assert not deterministic_at_inf(off, quant_from_config({"adc_bits": 4, "adc_noise_lsb": 0.5}))
  assert not deterministic_at_inf(off, quant_from_config({"dac_bits": 4, "stochastic": True}))


def test_adc_noise_draws_differ_at_inf_snr(tmp_path):
  """ADC noise is part of the model's converters, not of eval_noise: the draws at SNR inf must
  still be independent passes (not one pass repeated), and the JSON says which noise it was."""
  c = _config(snrs_db=(math.inf,), num_draws=4)
  c.quant.adc_bits, c.quant.adc_noise_lsb = 3, 1.0
  experiment = Experiment(c, str(tmp_path))
  mc = evaluators.run(experiment, experiment.initial_state(), "montecarlo")
  assert mc["snr_inf/std"] > 0.0
  with open(f"{experiment.workdir}/montecarlo.json") as f:
    saved = json.load(f)
  assert saved["noise"]["adc_noise_lsb"] == 1.0 and saved["noise"]["adc_noise_position"] == "before"
  accuracy = result_from_json(saved).accuracy[0]
  assert len(set(accuracy.tolist())) > 1


def test_snr_grid_from_command_line_strings():
  # A tuple override such as --config.evals.montecarlo.snrs_db="(0.0, float('inf'))" arrives as
  # one string.
  assert parse_snr_grid(("(0.0, float('inf'))",)) == [0.0, math.inf]
  assert parse_snr_grid("-5, 0,inf") == [-5.0, 0.0, math.inf]
  assert parse_snr_grid("[10]") == [10.0]
  assert parse_snr_grid((0, 5.5, math.inf)) == [0.0, 5.5, math.inf]
  with pytest.raises(ValueError, match="cannot read 'ten'"):
    parse_snr_grid("0,ten")
  with pytest.raises(ValueError, match="nan is not a valid SNR"):
    parse_snr_grid((math.nan,))
  with pytest.raises(ValueError, match="-inf is not a valid SNR"):
    parse_snr_grid("-inf")
  with pytest.raises(TypeError, match="True is not a number"):
    parse_snr_grid((True,))
