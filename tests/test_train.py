"""The trainer end to end on tiny configs: metrics, resume, sharding, and its error messages."""

import json
import os
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import digits_mlp, mnist_cnn
from freqnoise import train
from freqnoise.checkpoint import Checkpointer, CheckpointError
from freqnoise.metrics import read_metrics
from freqnoise.experiment import Experiment
from freqnoise.train import NonFiniteLossError, train_and_evaluate
from freqnoise.workdir import ConfigMismatchError, WorkdirLockedError
from tests.conftest import REPO


def tiny(**overrides):
  c = digits_mlp.get_config("tiny")
  for k, v in overrides.items():
    node = c
    *path, last = k.split(".")
    for p in path:
      node = node[p]
    node[last] = v
  return c


def params_of(workdir, config):
  return Experiment(config, str(workdir)).restore()


def test_digits_tiny_trains_and_logs(tmp_path):
  result = train_and_evaluate(tiny(), str(tmp_path))
  assert result["steps"] == 20 and 0.5 < result["test_accuracy"] <= 1.0
  rows = read_metrics(str(tmp_path))
  train_rows = [r for r in rows if r["split"] == "train"]
  test_rows = [r for r in rows if r["split"] == "test"]
  assert [r["step"] for r in train_rows] == [5, 10, 15, 20]
  assert [r["step"] for r in test_rows] == [10, 20]
  assert test_rows[-1]["accuracy"] == pytest.approx(result["test_accuracy"])
  assert train_rows[-1]["loss"] < train_rows[0]["loss"]
  for name in ("config.json", "input_stats.npz", "final_metrics.json"):
    assert (tmp_path / name).is_file()
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["10", "20"]


def test_restart_gives_bitwise_the_same_parameters(tmp_path):
  straight = train_and_evaluate(tiny(), str(tmp_path / "a"))
  first = train_and_evaluate(tiny(), str(tmp_path / "b"), stop_after=10)
  assert first["steps"] == 10
  resumed = train_and_evaluate(tiny(), str(tmp_path / "b"))
  assert resumed["steps"] == 20 and resumed["test_accuracy"] == straight["test_accuracy"]
  a, b = params_of(tmp_path / "a", tiny()), params_of(tmp_path / "b", tiny())
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  rows_a = [r for r in read_metrics(str(tmp_path / "a")) if r["split"] == "train"]
  rows_b = [r for r in read_metrics(str(tmp_path / "b")) if r["split"] == "train"]
  assert [r["loss"] for r in rows_a] == [r["loss"] for r in rows_b]


def test_four_devices_match_one_device(tmp_path):
  assert jax.device_count() == 4, "tests run with 4 fake CPU devices (conftest.py)"
  cfg = lambda n: tiny(num_devices=n, num_steps=6, log_every=1, eval_every=6, checkpoint_every=6)
  one = train_and_evaluate(cfg(1), str(tmp_path / "one"))
  four = train_and_evaluate(cfg(4), str(tmp_path / "four"))
  loss = lambda d: [r["loss"] for r in read_metrics(str(tmp_path / d)) if r["split"] == "train"]
  np.testing.assert_allclose(loss("four"), loss("one"), rtol=0, atol=1e-5)
  assert four["test_loss"] == pytest.approx(one["test_loss"], abs=1e-5)


def test_cnn_tiny_under_mocked_tfds(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=64):
    result = train_and_evaluate(mnist_cnn.get_config("tiny"), str(tmp_path))
  assert result["steps"] == 10 and np.isfinite(result["test_loss"])


@pytest.mark.parametrize("field,value,message", [
    ("model.name", "transformer", "unknown model 'transformer'; known models: .*lenet.*mlp"),
    ("optimizer.name", "lamb", "unknown optimizer 'lamb'; known: sgd, adam, adamw"),
    ("optimizer.schedule", "linear", "unknown learning-rate schedule 'linear'"),
    ("data.source", "idx:/nonexistent/mnist", "source='idx:/nonexistent/mnist': /nonexistent/mnist "
     "does not exist"),
    ("data.source", "ptb", "unknown data source 'ptb'; expected one of .*ptb:DIR"),
    ("optimizer.learning_rate", -0.1, "optimizer.learning_rate must be positive, got -0.1"),
    ("num_steps", 0, "set config.num_steps or config.num_epochs to a positive number"),
    ("input.name", "wavelet", "unknown input transform 'wavelet'"),
    ("data.batch_size", 6, "batch_size=6 is not divisible by the 4 devices"),
    ("data.batch_size", 0, r"^config.data.batch_size=0 must be a positive integer$"),
    ("log_every", 0, r"^config.log_every must be a positive integer, got 0$"),
    ("keep_checkpoints", 0, r"^config.keep_checkpoints must be a positive integer, got 0$"),
])
def test_bad_config_values_are_clear_errors(tmp_path, monkeypatch, field, value, message):
  monkeypatch.setattr("freqnoise.experiment.load_splits", data_must_not_be_read)
  with pytest.raises((ValueError, FileNotFoundError), match=message):
    train_and_evaluate(tiny(**{field: value}), str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()  # failed before any data was read or any file written


def data_must_not_be_read(*args, **kwargs):
  raise AssertionError("the data was read before the config was checked")


def test_unknown_model_field_is_named_before_any_data_is_read(tmp_path, monkeypatch):
  monkeypatch.setattr("freqnoise.experiment.load_splits", data_must_not_be_read)
  c = tiny()
  c.model.width = 3
  with pytest.raises(ValueError, match="model 'mlp' rejected its config fields.*width"):
    train_and_evaluate(c, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_nonfinite_loss_names_the_step(tmp_path):
  c = tiny(**{"optimizer.name": "sgd", "optimizer.learning_rate": 1e12, "optimizer.schedule": "constant"})
  with pytest.raises(NonFiniteLossError, match=r"training loss is (nan|inf) at step \d+"):
    train_and_evaluate(c, str(tmp_path))


def _all_finite(state) -> bool:
  return all(bool(np.isfinite(np.asarray(x)).all()) for x in jax.tree.leaves(state)
             if jnp.issubdtype(x.dtype, jnp.inexact))


def test_nonfinite_state_is_never_checkpointed(tmp_path):
  """Losses used to be checked only when logged: with checkpoint_every=1, log_every=100 the NaN
  states of steps 17-19 were saved, and every later run resumed into NaN."""
  c = tiny(**{"optimizer.learning_rate": 1e30, "checkpoint_every": 1, "log_every": 100})
  with pytest.raises(NonFiniteLossError, match=r"^training loss is nan at step 2; "):
    train_and_evaluate(c, str(tmp_path))
  checkpointer = Checkpointer(str(tmp_path), every=1)
  latest = checkpointer.latest_step()
  checkpointer.close()
  assert latest == 1 and _all_finite(params_of(tmp_path, c))
  assert not (tmp_path / "final_metrics.json").exists()


def test_nonfinite_parameters_with_a_finite_loss_are_not_checkpointed(tmp_path, monkeypatch):
  """The loss of step s is computed before its update: a NaN update shows in the state first."""
  real = train.make_train_step

  def poisoned(experiment):  # the update of step 3 makes the parameters NaN
    step_fn = real(experiment)

    def train_step(state, batch, stats, key):
      state, metrics = step_fn(state, batch, stats, key)
      nan_from_3 = lambda p: jnp.where(state.step >= 3, jnp.nan, p)
      return state.replace(params=jax.tree.map(nan_from_3, state.params)), metrics
    return train_step

  monkeypatch.setattr(train, "make_train_step", poisoned)
  c = tiny(checkpoint_every=1, log_every=100)
  with pytest.raises(NonFiniteLossError, match=r"^the parameters or model state are not finite "
                                               r"after step 3 \(its training loss was finite\)"):
    train_and_evaluate(c, str(tmp_path))
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1", "2"]
  assert _all_finite(params_of(tmp_path, c))


def test_corrupt_checkpoint_is_a_clear_error_and_is_kept(tmp_path):
  train_and_evaluate(tiny(), str(tmp_path), stop_after=10)
  step_dir = tmp_path / "checkpoints" / "10"
  data_files = [p for p in step_dir.rglob("*") if p.is_file() and p.stat().st_size > 0]
  for p in data_files:
    if p.name != "_CHECKPOINT_METADATA":
      p.write_bytes(b"garbage")
  with pytest.raises(CheckpointError, match="checkpoints/10 cannot be restored"):
    train_and_evaluate(tiny(), str(tmp_path))
  assert (step_dir).is_dir() and not (tmp_path / "checkpoints" / "20").exists()


def test_incompatible_checkpoint_is_a_clear_error(tmp_path):
  train_and_evaluate(tiny(), str(tmp_path), stop_after=10)
  other = tiny(**{"model.hidden": (32,)})
  with pytest.raises(CheckpointError, match="checkpoints/10"):
    Experiment(other, str(tmp_path)).restore()


def _files(folder):
  return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


@pytest.mark.parametrize("field,value,shown", [
    ("optimizer.learning_rate", 0.5, r"optimizer.learning_rate: 0.002 -> 0.5"),
    ("model.hidden", (32,), r"model.hidden: \[\d+(, \d+)*\] -> \[32\]"),
    ("num_steps", 10, r"num_steps: 20 -> 10 \(may only grow\)"),
])
def test_resuming_under_a_changed_config_is_refused_before_anything_is_written(
    tmp_path, monkeypatch, field, value, shown):
  """config.json used to be rewritten on every start: a changed learning rate resumed silently, a
  changed model rewrote the record and then failed in orbax."""
  train_and_evaluate(tiny(), str(tmp_path), stop_after=10)
  before, config_bytes = _files(tmp_path), (tmp_path / "config.json").read_bytes()
  monkeypatch.setattr(train, "Checkpointer", lambda *a, **k: pytest.fail("orbax was reached"))
  with pytest.raises(ConfigMismatchError, match=rf"(?s)differs in:\n  {shown}\n.*Nothing was "
                                                rf"written.*--config.init_from={tmp_path}"):
    train_and_evaluate(tiny(**{field: value}), str(tmp_path))
  assert _files(tmp_path) == before and (tmp_path / "config.json").read_bytes() == config_bytes


def test_extending_the_steps_resumes_and_updates_the_record(tmp_path):
  train_and_evaluate(tiny(), str(tmp_path))
  fingerprint = (tmp_path / "fingerprint.txt").read_text()
  result = train_and_evaluate(tiny(num_steps=30, log_every=10), str(tmp_path))
  assert result["steps"] == 30
  assert json.loads((tmp_path / "config.json").read_text())["num_steps"] == 30
  assert (tmp_path / "fingerprint.txt").read_text() == fingerprint
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["10", "20", "30"]


def test_init_from_starts_a_new_run_from_the_old_parameters(tmp_path):
  a = train_and_evaluate(tiny(), str(tmp_path / "a"))
  fine_tune = tiny(init_from=str(tmp_path / "a"), num_steps=10,
                   **{"optimizer.learning_rate": 3e-4, "optimizer.name": "sgd"})
  b = train_and_evaluate(fine_tune, str(tmp_path / "b"), stop_after=0)
  assert b["steps"] == 0  # the step is fresh; the model is A's at step 20, evaluated exactly so
  assert (b["test_loss"], b["test_accuracy"]) == (a["test_loss"], a["test_accuracy"])
  fresh = train_and_evaluate(tiny(num_steps=10), str(tmp_path / "c"), stop_after=0)
  assert fresh["test_loss"] != a["test_loss"]
  assert train_and_evaluate(fine_tune, str(tmp_path / "b"))["steps"] == 10


def test_init_from_a_missing_folder_is_a_clear_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="init_from='/nonexistent/run' has no checkpoints/"):
    train_and_evaluate(tiny(init_from="/nonexistent/run"), str(tmp_path / "b"))
  assert not (tmp_path / "b").exists()


def test_a_locked_workdir_is_refused_and_the_lock_is_released_after_each_run(tmp_path):
  (tmp_path / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                              "started": "2026-01-01T00:00:00"}))
  with pytest.raises(WorkdirLockedError, match=rf"in use by process {os.getpid()} on .*started "
                                               r"2026-01-01T00:00:00.*nothing was written"):
    train_and_evaluate(tiny(), str(tmp_path))
  assert sorted(os.listdir(tmp_path)) == [".lock"]
  os.remove(tmp_path / ".lock")
  train_and_evaluate(tiny(), str(tmp_path / "ok"))
  assert not (tmp_path / "ok" / ".lock").exists()
  with pytest.raises(NonFiniteLossError):
    train_and_evaluate(tiny(**{"optimizer.learning_rate": 1e30}), str(tmp_path / "nan"))
  assert not (tmp_path / "nan" / ".lock").exists()


def test_cli_runs_from_any_directory_and_rejects_config_typos(tmp_path):
  env = {**os.environ, "XLA_FLAGS": ""}
  # from another working directory, the config given by its absolute path still finds configs.common
  ok = subprocess.run([sys.executable, "-m", "freqnoise.main",
                       f"--config={REPO / 'configs' / 'digits_mlp.py'}:tiny",
                       "--workdir=run", "--config.num_steps=10"],
                      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
  assert ok.returncode == 0, ok.stderr[-2000:]
  assert "test accuracy:" in ok.stdout and "steps/s" in ok.stdout
  run = tmp_path / "run"
  assert json.loads((run / "final_metrics.json").read_text())["steps"] == 10
  # where the results land, when the run starts and when it ends
  assert f"writing results to {run}/:" in ok.stdout and f"results in {run}/:" in ok.stdout
  shown = f"tensorboard --logdir {run / 'tensorboard'}" in ok.stdout
  assert shown == digits_mlp.get_config("tiny").get("tensorboard", True)
  # every file the run wrote has the same permissions (atomic writes used to be 0600)
  modes = {p.name: oct(p.stat().st_mode & 0o777) for p in run.iterdir() if p.is_file()}
  assert len(set(modes.values())) == 1 and "config.json" in modes and "metrics.jsonl" in modes, modes
  typo = subprocess.run([sys.executable, "-m", "freqnoise.main", "--config=configs/digits_mlp.py:tiny",
                         f"--workdir={tmp_path / 'typo'}", "--config.optimizer.nam=sgd"],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert typo.returncode != 0 and 'Did you mean "name" instead of "nam"' in typo.stderr


def test_resuming_past_the_configured_steps_is_an_error(tmp_path):
  """A 20-step checkpoint resumed with 10 steps used to 'train' range(20, 10) (nothing) and write
  final metrics as if trained; now it is a clear error, and nothing is written."""
  train_and_evaluate(tiny(num_steps=20, checkpoint_every=10), str(tmp_path))
  before = (tmp_path / "final_metrics.json").read_text()
  with pytest.raises(ConfigMismatchError, match=r"num_steps: 20 -> 10 \(may only grow\)"):
    train_and_evaluate(tiny(num_steps=10, checkpoint_every=10), str(tmp_path))
  assert (tmp_path / "final_metrics.json").read_text() == before
  with pytest.raises(CheckpointError, match="past this config's 10"):
    Experiment(tiny(num_steps=10), str(tmp_path)).restore()


def test_input_statistics_of_another_input_are_refused(tmp_path):
  """input_stats.npz left by a run with other input channels is not silently reused."""
  from configs import freq_cifar10
  from tests.conftest import write_image_folder
  folder = write_image_folder(tmp_path / "images")
  c = freq_cifar10.get_config("variant=dct24,tiny")
  c.data.source = f"imagefolder:{folder}"
  c.data.cache_dir = ""
  c.data.test_split = "val"
  Experiment(c, str(tmp_path / "run"))  # fits and saves the statistics of 24 channels
  c.input.channels = 6
  with pytest.raises(ValueError, match=r"input_stats.npz was fitted for another input.*mean of "
                                       r"shape \(24,\) \(this config: \(6,\)\)"):
    Experiment(c, str(tmp_path / "run"))


def test_workdir_keeps_one_row_per_step_through_a_kill_and_a_rerun(tmp_path):
  """A run killed after its checkpoint at step 10 left a row of step 15 and half a row; resumed, it
  logs exactly the rows of an uninterrupted run. A rerun of the finished workdir adds no rows and
  writes strict JSON (its train_steps_per_sec, with no step trained, used to be a bare NaN)."""
  train_and_evaluate(tiny(), str(tmp_path / "a"))
  train_and_evaluate(tiny(), str(tmp_path / "b"), stop_after=10)
  metrics = tmp_path / "b" / "metrics.jsonl"
  with open(metrics, "a") as f:
    f.write('{"step": 15, "split": "train", "loss": 123.0, "cross_entropy": 1.0, "accuracy": 0.5}\n'
            '{"step": 20, "spl')
  train_and_evaluate(tiny(), str(tmp_path / "b"))
  assert metrics.read_text() == (tmp_path / "a" / "metrics.jsonl").read_text()
  train_and_evaluate(tiny(), str(tmp_path / "b"))  # finished: its stored result stands
  assert metrics.read_text() == (tmp_path / "a" / "metrics.jsonl").read_text()
  final_text = (tmp_path / "b" / "final_metrics.json").read_text()
  final = json.loads(final_text, parse_constant=pytest.fail)  # NaN / Infinity are not JSON
  assert final["steps"] == 20
  assert final["test_accuracy"] == json.loads((tmp_path / "a" / "final_metrics.json").read_text()
                                              )["test_accuracy"]


def test_rerunning_a_finished_run_keeps_its_final_metrics(tmp_path, capsys):
  """A rerun of a finished workdir trains nothing; it used to evaluate again and rewrite
  final_metrics.json with its own timing (train_seconds 4.51 -> 0.0003, steps/s NaN). Now the
  stored metrics are returned and the file stays byte-identical; an evaluator added to
  config.evals since is run, its keys added beside the stored ones."""
  mc = {"type": "montecarlo", "snrs_db": (float("inf"),), "num_draws": 4}
  config = tiny()
  config.evals = ml_collections.ConfigDict({"mc": mc})
  first = train_and_evaluate(config, str(tmp_path))
  path = tmp_path / "final_metrics.json"
  before = path.read_bytes()
  capsys.readouterr()
  again = train_and_evaluate(config, str(tmp_path))
  assert path.read_bytes() == before
  assert again == json.loads(before) and again["train_seconds"] == first["train_seconds"]
  assert first["train_seconds"] > 0.01 and again["train_steps_per_sec"] is not None
  out = capsys.readouterr().out
  assert f"{tmp_path} finished at step 20: its stored final metrics stand ({path}, not " \
         "rewritten; nothing was trained)" in out
  assert "eval at step" not in out
  config.evals.mc2 = mc
  added = train_and_evaluate(config, str(tmp_path))
  assert "running the evaluators it lacks: mc2)" in capsys.readouterr().out
  stored = json.loads(path.read_text())
  assert stored == added and {k: stored[k] for k in first} == first
  assert {k[4:] for k in stored if k.startswith("mc2/")} == {k[3:] for k in first
                                                              if k.startswith("mc/")} != set()


# ----------------------------------------------------------------------------- config.quant
@pytest.mark.parametrize("field,value,message", [
    ("quant.adc_bits", 17, r"config.quant.adc_bits must be in \[1, 16\] or 0 \(off\), got 17"),
    ("quant.adc_noise_lsb", -0.5, r"config.quant.adc_noise_lsb must be >= 0"),
])
def test_quant_errors_are_named_before_any_data_is_read(tmp_path, monkeypatch, field, value,
                                                        message):
  monkeypatch.setattr("freqnoise.experiment.load_splits", data_must_not_be_read)
  c = tiny(**{"quant.adc_bits": 4, field: value})
  with pytest.raises(ValueError, match=message):
    train_and_evaluate(c, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def _qat(**overrides):
  """The tiny digits MLP (20 steps, one device) with 4-bit weights, DAC and ADC: tracked ADC ranges
  (the 'quant_ranges' collection) and ADC noise (keys from the 'noise' stream)."""
  return tiny(num_devices=1, **{"quant.weight_bits": 4, "quant.dac_bits": 4, "quant.dac_bound": 3.0,
                                "quant.adc_bits": 4, "quant.adc_mode": "tracked",
                                "quant.adc_noise_lsb": 0.5, **overrides})


def test_qat_fine_tuning_from_a_float_run_restores_its_params_and_resumes_bitwise(tmp_path):
  """config.init_from a float run: its params, the converters' variables fresh (the float
  checkpoint has none); then a QAT run stopped half-way and resumed ends bitwise as one that was
  not interrupted, tracked ranges included."""
  from freqnoise.init_from import initialize_from
  float_run = tiny(num_devices=1, seed=1)  # a float state saved as a run would (seed 1: not ours)
  saved = Experiment(float_run, str(tmp_path / "float")).initial_state()
  checkpointer = Checkpointer(str(tmp_path / "float"), every=1)
  checkpointer.maybe_save(20, saved, force=True)
  checkpointer.close()
  qat = _qat(init_from=str(tmp_path / "float"))
  experiment = Experiment(qat, str(tmp_path / "probe"))
  fresh = experiment.initial_state()
  start = initialize_from(experiment, fresh, str(tmp_path / "float"))
  for layer in ("dense0", "dense1", "logits"):
    for name in ("kernel", "bias"):
      np.testing.assert_array_equal(start.params[layer][name], saved.params[layer][name])
      assert not np.array_equal(fresh.params[layer][name], saved.params[layer][name]) or (
          name == "bias")  # (zero-initialised)
  assert sorted(start.model_state["quant_ranges"]) == ["dense0", "dense1", "logits"]
  for a, b in zip(jax.tree.leaves(start.model_state), jax.tree.leaves(fresh.model_state)):
    np.testing.assert_array_equal(a, b)
  straight = train_and_evaluate(qat, str(tmp_path / "a"))
  train_and_evaluate(qat, str(tmp_path / "b"), stop_after=10)
  resumed = train_and_evaluate(qat, str(tmp_path / "b"))
  assert resumed["test_loss"] == straight["test_loss"]
  a, b = params_of(tmp_path / "a", qat), params_of(tmp_path / "b", qat)
  assert int(a.model_state["quant_ranges"]["logits"]["analog"]["adc"]["count"]) == 20
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
