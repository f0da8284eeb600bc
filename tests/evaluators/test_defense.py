"""The `craft` and `adversarial` evaluators: a stored transfer set, and black-box / EOT white-box
accuracy of a target over inference SNRs x noise draws."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from freqnoise import adversarial, evaluators
from freqnoise.experiment import Experiment
from freqnoise.train import train_and_evaluate
from tests.test_train import tiny

ATTACK = dict(epsilon=0.1, steps=4, step_size=0.03)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp("defense")
  sub = tiny(seed=1)
  sub.evals.craft = ml_collections.ConfigDict(dict(type="craft", limit=96, **ATTACK))
  sub_result = train_and_evaluate(sub, str(root / "sub"))
  target = tiny()
  train_and_evaluate(target, str(root / "target"))
  return root, sub_result, target


def test_a_crafted_set_is_stored_with_its_provenance(runs):
  root, result, _ = runs
  x_adv, labels, indices, provenance = adversarial.load_set(str(root / "sub" / "adversarial_set.npz"))
  assert x_adv.shape == (96, 8, 8, 1) and x_adv.dtype == np.float32 and len(set(indices)) == 96
  test = Experiment(tiny(seed=1), str(root / "sub")).splits.test
  np.testing.assert_array_equal(labels, test.arrays["label"][indices])
  clean = test.arrays["image"][indices].astype(np.float32)
  assert np.abs(x_adv - clean).max() <= 0.1 * 255 + 1e-4
  assert provenance["checkpoint_step"] == 20 and provenance["examples"] == 96
  assert provenance["attack"]["epsilon"] == 0.1 and provenance["seed"] == 1
  # the start the attack used, not the block's None ("the method decides")
  assert provenance["attack"]["random_start"] is (provenance["attack"]["method"] == "pgd")
  assert provenance["substitute_adversarial_accuracy"] == result["craft/adversarial_accuracy"]
  assert result["craft/adversarial_accuracy"] < result["craft/clean_accuracy"]


def test_black_box_accuracy_is_the_targets_accuracy_on_the_stored_set(runs):
  root, _, target = runs
  path = str(root / "sub" / "adversarial_set.npz")
  target.evals.blackbox = ml_collections.ConfigDict(dict(
      type="adversarial", source=path, snrs_db=(0.0, float("inf")), num_draws=4,
      output="blackbox.json"))
  experiment = Experiment(target, str(root / "target"))
  state = experiment.restore()
  scores = evaluators.run(experiment, state, "blackbox")
  x_adv, labels, indices, _ = adversarial.load_set(path)
  variables = experiment.variables(state)
  logits = experiment.predict(variables, jnp.asarray(x_adv), noise=None, key=jax.random.PRNGKey(0))
  expected = float(np.mean(np.argmax(np.asarray(logits), -1) == labels))
  assert scores["snr_inf/mean"] == pytest.approx(expected, abs=1e-12)
  clean = experiment.splits.test.arrays["image"][indices]
  clean_logits = experiment.predict(variables, jnp.asarray(clean), noise=None,
                                    key=jax.random.PRNGKey(0))
  assert scores["clean/snr_inf/mean"] == pytest.approx(
      float(np.mean(np.argmax(np.asarray(clean_logits), -1) == labels)), abs=1e-12)
  saved = json.loads((root / "target" / "blackbox.json").read_text())
  assert saved["set"]["seed"] == 1 and len(saved["adversarial"]["accuracy"]) == 2


def test_white_box_pgd_lowers_accuracy_more_than_transfer(runs):
  root, _, target = runs
  target.evals.whitebox = ml_collections.ConfigDict(dict(
      type="adversarial", limit=96, snrs_db=(float("inf"),), num_draws=4, **ATTACK))
  target.evals.blackbox = ml_collections.ConfigDict(dict(
      type="adversarial", source=str(root / "sub" / "adversarial_set.npz"),
      snrs_db=(float("inf"),), num_draws=4))
  experiment = Experiment(target, str(root / "target"))
  state = experiment.restore()
  white = evaluators.run(experiment, state, "whitebox")
  black = evaluators.run(experiment, state, "blackbox")
  # (each on 96 test examples: the target's seeded sample, and the substitute's)
  assert white["snr_inf/mean"] < black["snr_inf/mean"] < black["clean/snr_inf/mean"]
  assert white["snr_inf/mean"] < white["clean/snr_inf/mean"] - 0.2


def test_a_missing_or_foreign_set_is_a_clear_error(runs, tmp_path):
  root, _, target = runs
  target.evals.blackbox = ml_collections.ConfigDict(dict(
      type="adversarial", source=str(tmp_path / "none.npz"), snrs_db=(float("inf"),)))
  with pytest.raises(FileNotFoundError, match="no such crafted set"):
    evaluators.check_config(target)
  x_adv, labels, indices, provenance = adversarial.load_set(str(root / "sub" /
                                                                "adversarial_set.npz"))
  adversarial.save_set(str(tmp_path / "foreign.npz"), x_adv, (labels + 1) % 10, indices, provenance)
  target.evals.blackbox.source = str(tmp_path / "foreign.npz")
  experiment = Experiment(target, str(root / "target"))
  with pytest.raises(ValueError, match="crafted on other data than this run's test split"):
    evaluators.run(experiment, experiment.restore(), "blackbox")


@pytest.mark.parametrize("kind", ["craft", "adversarial"])
def test_attack_evaluators_refuse_jpeg_coefficients_before_training(tmp_path, monkeypatch, kind):
  # Issue 24 #8: attacks clip to the pixel range [0, pixel_scale]; JPEG coefficients are no pixels.
  pytest.importorskip("jpeglib", reason="optional package jpeglib not installed")
  from tests.freq.test_jpeg_training_input import tiny_config
  from tests.test_train import data_must_not_be_read
  monkeypatch.setattr("freqnoise.experiment.load_splits", data_must_not_be_read)
  config = tiny_config(str(tmp_path))  # (otherwise a valid coefficient run)
  grid = dict(snrs_db=(float("inf"),)) if kind == "adversarial" else {}
  config.evals.attack = ml_collections.ConfigDict(dict(type=kind, **ATTACK, **grid))
  with pytest.raises(ValueError, match=rf"^config\.evals\.attack \(type {kind}\): an attack "
                     r"perturbs pixels .* but config\.data\.jpeg_coefficients=True"):
    train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()
