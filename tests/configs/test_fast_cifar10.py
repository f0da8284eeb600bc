"""The fast CIFAR-10 config: its settings, the tiny variant training end to end with the whitening
set from the training images and never moved, and a stopped run resuming bit for bit."""

import math

import jax
import numpy as np
import pytest

from configs import fast_cifar10
from freqnoise.experiment import Experiment
from freqnoise.metrics import read_metrics
from freqnoise.models.fast_cifar import whitening_kernel
from freqnoise.train import train_and_evaluate
from tests.conftest import write_image_folder


def test_settings():
  c = fast_cifar10.get_config()
  assert (c.model.widths, c.num_steps, c.data.batch_size) == ((64, 256, 256), 476, 1024)
  assert c.optimizer.learning_rate == pytest.approx(1.5) and c.optimizer.nesterov
  assert c.optimizer.weight_decay == pytest.approx(0.0153 / 11.5)
  assert c.optimizer.lookahead_start_epochs == pytest.approx(3.0)
  assert c.label_smoothing == 0.2 and math.isinf(c.train_noise.snr_db) and not c.evals
  assert c.data.source.endswith("cifar10-jpeg") and c.test_time_augment == "flip_translate"
  assert c.data.augment.alternating_flip and c.data.augment.crop_reflect
  assert not c.data.augment.flip and c.data.augment.crop_padding == 2
  cheap = fast_cifar10.get_config("setting=90,snr=0,montecarlo=32,seed=3")
  assert (cheap.model.widths, cheap.num_steps, cheap.seed) == ((64, 128, 128), 192, 3)
  assert cheap.train_noise.snr_db == 0.0 and cheap.evals.montecarlo.num_draws == 32
  assert fast_cifar10.get_config("epochs=2").num_steps == 96
  with pytest.raises(ValueError, match="config argument setting='93' is not one of: 94, 90"):
    fast_cifar10.get_config("setting=93")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  return write_image_folder(tmp_path_factory.mktemp("data"))


def tiny(folder):
  c = fast_cifar10.get_config("tiny")
  c.data.source = f"imagefolder:{folder}"
  c.data.test_split = "val"
  c.data.cache_dir = ""
  c.num_devices = 1  # one device compiles faster; sharding is the trainer's own tests' business
  return c


def test_tiny_trains_with_a_data_whitening_that_stays_frozen_and_resumes_bitwise(folder, tmp_path):
  c = tiny(folder)
  straight = train_and_evaluate(c, str(tmp_path / "a"))
  assert straight["steps"] == 8 and 0.0 <= straight["test_accuracy"] <= 1.0
  first = train_and_evaluate(c, str(tmp_path / "b"), stop_after=4)
  assert first["steps"] == 4
  resumed = train_and_evaluate(c, str(tmp_path / "b"))
  assert resumed["test_loss"] == straight["test_loss"]
  experiment = Experiment(c, str(tmp_path / "a"))
  a, b = experiment.restore(), experiment.restore(str(tmp_path / "b"))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):  # params, BN statistics, Lookahead
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  rows = lambda d: [r["loss"] for r in read_metrics(str(tmp_path / d)) if r["split"] == "train"]
  assert rows("a") == rows("b")
  # The whitening kernel: set from the seeded sample of 16 normalised training images, frozen.
  sample = experiment.splits.train.fit_sample(16, c.seed)["image"]
  x = np.asarray(experiment.transform(experiment.stats, sample))
  np.testing.assert_array_equal(a.params["whiten"]["kernel"], whitening_kernel(x))
  fresh = experiment.initial_state()
  assert not np.array_equal(a.params["whiten"]["bias"], fresh.params["whiten"]["bias"])
