"""freqnoise.evaluate: a restored checkpoint evaluated by the CLI gives exactly the numbers of the
end-of-training evaluation (same key, experiment.key(name)); the CLI still runs with --snrs_db /
--num_draws and prints its table; runs saved with the old config.evals shape still load."""

import json
import math
import os
import re
import subprocess
import sys

import ml_collections
import pytest

from configs.digits_mlp import get_config
from freqnoise import evaluators
from freqnoise.checkpoint import Checkpointer
from freqnoise.evaluate import (LEGEND, evaluate_checkpoint, evaluate_run, format_table,
                                load_run_config)
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


def test_checkpoint_evaluation_equals_the_end_of_training_one(saved_run, tmp_path):
  workdir, final = saved_run
  config = load_run_config(workdir)
  assert config.evals.mc.snrs_db == "0.0,10.0,inf" and config.evals.mc.split == "test"
  config.evals.mc.output = str(tmp_path / "again.json")  # an absolute output path, outside
  again, step = evaluate_checkpoint(config, workdir)
  assert again == final and step == 0
  assert "inf" in format_table(again).splitlines()[3]
  assert os.path.isfile(tmp_path / "again.json")
  assert not os.path.exists(os.path.join(workdir, "again.json"))


def test_table_has_a_legend_and_the_checkpoint_step():
  scalars = {"snr_0.0/mean": 0.5, "snr_0.0/ci95": 0.1, "snr_0.0/vote_majority": 0.6}
  lines = format_table(scalars, step=42).splitlines()
  assert lines[0].split() == ["SNR", "dB", "mean", "ci95", "major."]
  assert lines[2] == LEGEND and all(f"{m}:" in LEGEND for m in
                                    ("mean", "ci95", "std", "p2.5", "p97.5", "major.", "meanp"))
  assert lines[3] == "checkpoint step 42"


@pytest.fixture
def no_experiment(monkeypatch):
  """Makes building an Experiment (which reads data and writes input_stats.npz) an error."""
  def forbidden(self, *args, **kwargs):
    raise AssertionError("an Experiment was built (data read) before the request was checked")
  monkeypatch.setattr(Experiment, "__init__", forbidden)


def _files(folder):
  return {os.path.join(root, f) for root, _, files in os.walk(folder) for f in files} | {
      os.path.join(root, d) for root, dirs, _ in os.walk(folder) for d in dirs}


@pytest.mark.parametrize("field,value,match", [("num_draws", 0, "num_draws"),
                                               ("snrs_db", "nan", "snrs_db")])
def test_bad_requests_fail_before_any_data_is_read(saved_run, no_experiment, field, value, match):
  workdir, _ = saved_run
  config = load_run_config(workdir)
  config.evals.mc[field] = value
  before = _files(workdir)
  with pytest.raises(ValueError, match=match):
    evaluate_run(config, workdir)
  assert _files(workdir) == before


def test_a_workdir_without_checkpoints_is_left_untouched(saved_run, tmp_path):
  workdir, _ = saved_run
  with open(os.path.join(workdir, "config.json")) as src, open(tmp_path / "config.json", "w") as f:
    f.write(src.read())
  config = load_run_config(str(tmp_path))
  before = _files(tmp_path)
  with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "checkpoints"))):
    evaluate_run(config, str(tmp_path))
  assert _files(tmp_path) == before  # no input_stats.npz, no checkpoints/ folder


def test_an_unwritable_output_fails_before_computing(saved_run, no_experiment, monkeypatch):
  workdir, _ = saved_run
  config = load_run_config(workdir)
  before = _files(workdir)
  # Under a regular file: unwritable even for root.
  config.evals.mc.output = "config.json/mc.json"
  hint = r".*--config\.evals\.mc\.output="
  with pytest.raises(NotADirectoryError, match=r"config\.json/mc\.json" + hint):
    evaluate_run(config, workdir)
  # A read-only run folder (simulated: chmod does not stop root).
  config.evals.mc.output = "mc.json"
  real_access = os.access
  monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.path.abspath(p) ==
                      os.path.abspath(workdir) and mode & os.W_OK else real_access(p, mode, **kw))
  with pytest.raises(PermissionError, match=r"mc\.json.*not writable" + hint):
    evaluate_run(config, workdir)
  assert _files(workdir) == before


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
  assert LEGEND in out.stdout and "checkpoint step 0" in out.stdout
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
