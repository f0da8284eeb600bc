"""config.evals: every bad block is an error naming the evaluator and the field before any data is
read; run_configured writes and returns each evaluator's scalars under its name; each evaluator's
key is its own (two blocks of one type draw different noise; adding one changes no other)."""

import math
import os
import subprocess
import sys
import textwrap

import ml_collections
import pytest

from configs.digits_mlp import get_config
from freqnoise import evaluators
from freqnoise.experiment import Experiment
from tests.conftest import REPO


def _config(**evals):
  c = get_config("tiny")
  c.eval_noise.snr_db = 0.0
  c.data.source = "idx:/nonexistent"  # check_config must fail before reading any data
  c.evals = ml_collections.ConfigDict(evals)
  return c


def _mc(**fields):
  return {"type": "montecarlo", "snrs_db": (0.0, math.inf), "num_draws": 4, **fields}


def test_good_configs_pass():
  evaluators.check_config(_config())
  evaluators.check_config(_config(mc=_mc(), ppl={"type": "mc_perplexity"}))
  c = _config()
  del c["evals"]
  evaluators.check_config(c)
  assert {"montecarlo", "mc_perplexity"} <= set(evaluators.known_types())


@pytest.mark.parametrize("evals, error, match", [
    ({"mc": {"type": "fgsm"}}, ValueError, r"config.evals.mc: unknown evaluator type 'fgsm'; "
                                           r"known: .*montecarlo"),
    ({"mc": {"num_draws": 3}}, ValueError, r"config.evals.mc has no 'type'; known types"),
    ({"mc": _mc(draws=3)}, ValueError, r"config.evals.mc \(type montecarlo\) has unknown "
                                       r"field\(s\) \['draws'\]; known: .*'num_draws'"),
    ({"eval": _mc()}, ValueError, r"config.evals.eval: the name 'eval' is reserved"),
    ({"mc": "montecarlo"}, ValueError, r"config.evals.mc must be a block"),
    ({"mc": _mc(snrs_db=("0,loud",))}, ValueError, r"config.evals.mc .*cannot read 'loud'"),
    ({"mc": _mc(num_draws=0)}, ValueError, r"config.evals.mc .*num_draws must be an integer >= 1"),
    ({"mc": _mc(batch_size=-1)}, ValueError, r"config.evals.mc .*batch_size must be an integer"),
    ({"mc": _mc(split="valid")}, ValueError, r"config.evals.mc .*split must be 'train' or 'test'"),
    ({"mc": _mc(draws_per_chunk=3)}, ValueError, r"config.evals.mc .*draws_per_chunk=3 must "
                                                 r"divide num_draws=4"),
    ({"mc": _mc(snrs_db=())}, ValueError, r"config.evals.mc .*snrs_db is empty and "
                                          r"config.eval_noise is off"),
    ({"ppl": {"type": "mc_perplexity", "num_draws": -2}}, ValueError,
     r"config.evals.ppl \(type mc_perplexity\): num_draws must be"),
])
def test_bad_blocks_are_errors_naming_evaluator_and_field(evals, error, match):
  c = _config(**evals)
  if "is empty" in match:
    c.eval_noise.snr_db = math.inf
  with pytest.raises(error, match=match):
    evaluators.check_config(c)


def test_draws_must_be_shardable_over_the_runs_devices():
  c = _config(mc=_mc(num_draws=6, draws_per_chunk=3))
  c.num_devices = 2
  with pytest.raises(ValueError, match=r"config.evals.mc .*= 3 must be a multiple of the run's 2 "
                                       r"devices"):
    evaluators.check_config(c)
  c.evals.mc.draws_per_chunk = 2
  evaluators.check_config(c)


def test_old_shape_is_a_clear_error():
  c = _config()
  del c["evals"]  # e.g. a config built before config.evals became a ConfigDict
  c.evals = ("montecarlo",)
  with pytest.raises(ValueError, match=r"config.evals must map each evaluator's name to its "
                                       r"block, e.g. config.evals.montecarlo = dict\(type="):
    evaluators.check_config(c)


def test_register_rejects_duplicates_and_a_type_field():
  with pytest.raises(ValueError, match="registered twice"):
    evaluators.register("montecarlo", {})(lambda *a: {})
  with pytest.raises(ValueError, match="'type' is the block's type name"):
    evaluators.register("other", {"type": 1})


class Writer:
  def __init__(self):
    self.rows = []

  def write(self, step, name, scalars):
    self.rows.append((step, name, dict(scalars)))


def test_run_configured_writes_each_evaluator_under_its_own_name_and_key(tmp_path):
  both = get_config("tiny")
  both.eval_noise.snr_db = 0.0
  both.evals = ml_collections.ConfigDict({"mc_a": _mc(limit=100, output=""),
                                          "mc_b": _mc(limit=100, output="")})
  experiment = Experiment(both, str(tmp_path))
  state = experiment.initial_state()
  writer = Writer()
  out = evaluators.run_configured(experiment, state, writer, step=7)
  assert [(s, n) for s, n, _ in writer.rows] == [(7, "mc_a"), (7, "mc_b")]
  a, b = writer.rows[0][2], writer.rows[1][2]
  assert out == {**{f"mc_a/{k}": v for k, v in a.items()}, **{f"mc_b/{k}": v for k, v in b.items()}}
  assert a["snr_inf/mean"] == b["snr_inf/mean"]  # noiseless: the same pass
  assert a["snr_0/p2.5"] != b["snr_0/p2.5"] or a["snr_0/std"] != b["snr_0/std"]  # own keys
  # Adding mc_b changed nothing of mc_a's numbers.
  alone = get_config("tiny")
  alone.eval_noise.snr_db = 0.0
  alone.evals = ml_collections.ConfigDict({"mc_a": _mc(limit=100, output="")})
  experiment_alone = Experiment(alone, str(tmp_path))
  assert evaluators.run(experiment_alone, state, "mc_a") == a
  assert evaluators.run_configured(experiment, state, Writer(), 0) == out


def test_layering_robust_below_evaluators_below_the_trainer():
  """robust imports nothing of experiments/evaluators; evaluators never import the trainer."""
  script = textwrap.dedent("""
      import sys
      import freqnoise.robust
      assert not {'freqnoise.experiment', 'freqnoise.evaluators', 'freqnoise.train'} & set(sys.modules)
      import freqnoise.evaluators
      assert 'freqnoise.train' not in sys.modules
      print('OK')
  """)
  env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
  out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=120)
  assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-2000:]
