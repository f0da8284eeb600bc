"""freqnoise.evaluate: a restored checkpoint evaluated by the CLI gives exactly the numbers of the
end-of-training evaluation (same key, experiment.key(name)); the CLI still runs with --snrs_db /
--num_draws and prints its table; runs saved with the old config.evals shape still load."""

import json
import math
import os
import subprocess
import sys

import ml_collections
import pytest

from configs.digits_mlp import get_config
from freqnoise import evaluators
from freqnoise.checkpoint import Checkpointer
from freqnoise.evaluate import evaluate_run, format_table, load_run_config
from freqnoise.experiment import Experiment
from tests.conftest import REPO


class _Writer:
  def write(self, step, name, scalars):
    pass


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
  """A run folder as the trainer leaves it: config.json, input statistics, a checkpoint, and the
  end-of-training evaluator results."""
  workdir = str(tmp_path_factory.mktemp("run"))
  c = get_config("tiny")
  c.eval_noise.snr_db = 0.0
  c.evals = ml_collections.ConfigDict({"mc": {
      "type": "montecarlo", "snrs_db": (0.0, 10.0, math.inf), "num_draws": 4, "limit": 100}})
  experiment = Experiment(c, workdir)
  state = experiment.initial_state()
  checkpointer = Checkpointer(workdir, every=1)
  checkpointer.maybe_save(0, state, force=True)
  checkpointer.close()
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(c.to_json_best_effort(indent=2))
  final = evaluators.run_configured(experiment, state, _Writer(), 0)
  return workdir, {k.split("/", 1)[1]: v for k, v in final.items()}


def test_checkpoint_evaluation_equals_the_end_of_training_one(saved_run):
  workdir, final = saved_run
  config = load_run_config(workdir)
  assert config.evals.mc.snrs_db == "0.0,10.0,inf" and config.evals.mc.split == "test"
  config.evals.mc.output = "again.json"
  again = evaluate_run(config, workdir)
  assert again == final
  assert "inf" in format_table(again).splitlines()[-1]
  assert os.path.isfile(os.path.join(workdir, "again.json"))


def test_cli_runs_with_snrs_and_draws(saved_run):
  workdir, _ = saved_run
  env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
  out = subprocess.run([sys.executable, "-m", "freqnoise.evaluate", f"--workdir={workdir}",
                        "--snrs_db=0", "--num_draws=4", "--config.evals.mc.output=cli.json"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  header, row = out.stdout.splitlines()[:2]
  assert header.split() == ["SNR", "dB", "mean", "ci95", "std", "p2.5", "p97.5", "major.", "meanp"]
  assert row.split()[0] == "0"
  with open(os.path.join(workdir, "cli.json")) as f:
    assert json.load(f)["snrs_db"] == [0.0]


def test_old_config_shape_and_runs_without_a_montecarlo_block_load(tmp_path):
  old = {"seed": 0, "evals": ["montecarlo"], "montecarlo": {"num_draws": 8, "snrs_db": [0.0]},
         "eval_noise": {"snr_db": 0.0}}
  with open(tmp_path / "config.json", "w") as f:
    json.dump(old, f)
  config = load_run_config(str(tmp_path))
  assert "montecarlo" not in config  # the old top-level block moved into config.evals
  assert config.evals.montecarlo.type == "montecarlo" and config.evals.montecarlo.num_draws == 8
  assert config.evals.montecarlo.snrs_db == "0.0" and config.eval_noise.power == "per_example"
  with open(tmp_path / "config.json", "w") as f:
    json.dump({"seed": 0, "evals": {}}, f)
  config = load_run_config(str(tmp_path))
  assert config.evals.montecarlo.num_draws == 16  # the evaluator's own default
