"""The montecarlo evaluator inside training (config.evals) and on a restored checkpoint (the CLI's
`evaluate_run`) give the same numbers; bad evaluator configs are clear errors."""

import json
import math
import types

import pytest

from configs.digits_mlp import get_config
from freqnoise.evaluate import format_table, load_run_config, evaluate_run
from freqnoise.robust.evaluators import (evaluator_settings, parse_snr_grid, result_from_json,
                                         run_evaluator)
from freqnoise.train import train_and_evaluate


def _config():
  c = get_config("tiny")
  c.train_noise = {"snr_db": 5.0}
  c.eval_noise = {"snr_db": 0.0, "layers": "all_but_first"}
  c.evals = ("montecarlo",)
  c.montecarlo = {"snrs_db": (0.0, 10.0, math.inf), "num_draws": 4, "limit": 100}
  return c


def test_trainer_and_checkpoint_evaluation_agree(tmp_path):
  workdir = str(tmp_path / "run")
  result = train_and_evaluate(_config(), workdir)
  mc = {k.split("/", 1)[1]: v for k, v in result.items() if k.startswith("montecarlo/")}
  assert set(mc) == {f"snr_{s}/{m}" for s in ("0", "10", "inf") for m in
                     ("mean", "std", "p2.5", "p97.5", "vote_majority", "vote_mean_prob")}
  assert mc["snr_inf/std"] == 0.0 and mc["snr_0/std"] > 0.0
  assert mc["snr_0/mean"] < mc["snr_inf/mean"]
  with open(f"{workdir}/montecarlo.json") as f:
    saved = json.load(f)
  assert saved["noise"]["layers"] == "all_but_first" and saved["snrs_db"][-1] == "inf"
  assert result_from_json(saved).accuracy.shape == (3, 4)

  config = load_run_config(workdir)
  config.montecarlo.output = "again.json"
  again = evaluate_run(config, workdir)
  assert again == mc
  assert "inf" in format_table(again).splitlines()[-1]


def test_evaluator_errors():
  task = types.SimpleNamespace(config=_config())
  with pytest.raises(ValueError, match="unknown evaluator 'fgsm'"):
    run_evaluator("fgsm", task, None, None)
  with pytest.raises(ValueError, match="unknown field"):
    evaluator_settings({"montecarlo": {"draws": 3}}, "montecarlo", {"num_draws": 1})


def test_snr_grid_from_command_line_strings():
  # A tuple override such as --config.montecarlo.snrs_db="(0.0, float('inf'))" arrives as one string.
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


@pytest.mark.parametrize("field, value, match", [
    ("snrs_db", ("0,loud",), "cannot read 'loud'"),
    ("num_draws", 0, "num_draws must be an integer >= 1"),
    ("batch_size", -1, "batch_size must be an integer >= 0"),
    ("split", "valid", "split must be 'train' or 'test'"),
])
def test_bad_evaluator_settings_fail_before_training(tmp_path, field, value, match):
  c = _config()
  c.montecarlo[field] = value
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match=match):
    train_and_evaluate(c, str(workdir))
  assert not workdir.exists()  # nothing was trained, loaded or written


def test_montecarlo_keeps_eval_noise_layers_when_its_own_snr_is_inf(tmp_path):
  """The grid sets the SNR; kind / power / layers come from config.eval_noise even when that block
  is noiseless (snr_db = inf) -- it used to fall back to 'all' layers."""
  workdir = str(tmp_path / "run")
  train_and_evaluate(_config(), workdir)

  def run(snr_db, layers):
    config = load_run_config(workdir)
    config.eval_noise.snr_db, config.eval_noise.layers = snr_db, layers
    config.montecarlo.snrs_db, config.montecarlo.output = "0", ""
    return evaluate_run(config, workdir)

  off_but_last = run(math.inf, "all_but_last")
  assert off_but_last == run(5.0, "all_but_last")
  assert off_but_last != run(5.0, "all")
