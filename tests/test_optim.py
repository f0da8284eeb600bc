"""Learning-rate schedules hit their closed-form values; optimizer settings are checked."""

import math

import numpy as np
import pytest
from ml_collections import ConfigDict

from freqnoise.optim import build_optimizer, build_schedule


def cfg(**kw):
  return ConfigDict({"learning_rate": 0.1, **kw})


def test_cosine_with_warmup_closed_form():
  s = build_schedule(cfg(schedule="cosine", warmup_steps=10), 110)
  assert float(s(0)) == 0.0 and float(s(5)) == pytest.approx(0.05)
  assert float(s(10)) == pytest.approx(0.1)
  assert float(s(60)) == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 0.5)))
  assert float(s(110)) == pytest.approx(0.0, abs=1e-9)


def test_step_schedule_decays_at_boundaries():
  s = build_schedule(cfg(schedule="step", boundaries=(0.5, 0.75), decay_factor=0.1), 100)
  values = [float(s(t)) for t in (0, 49, 50, 74, 75, 99)]
  np.testing.assert_allclose(values, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)


def test_staircase_decay_closed_form():
  s = build_schedule(cfg(schedule="exponential", learning_rate=1.0, decay_factor=0.5,
                         decay_begin_epochs=4, decay_every_epochs=1), 130, steps_per_epoch=10)
  steps = np.array([0, 39, 40, 49, 50, 59, 60, 129])
  decays = np.where(steps < 40, 0, 1 + (steps - 40) // 10)
  np.testing.assert_allclose([float(s(t)) for t in steps], 0.5 ** decays, rtol=1e-6)
  np.testing.assert_allclose([float(s(t)) for t in steps],
                             [1, 1, 0.5, 0.5, 0.25, 0.25, 0.125, 2 ** -9], rtol=1e-6)


def test_zaremba_medium_schedule_per_epoch():
  """39 epochs: lr 1 for epochs 1-6, then / 1.2 after every epoch (Zaremba et al., 2014); their
  lr 1 on the loss summed over a row's T = 35 steps is 35 on the trainer's mean-token loss."""
  from configs import dni_ptb
  config = dni_ptb.get_config("size=medium")
  spe, seq_len = 7, config.data.seq_len
  s = build_schedule(config.optimizer, 39 * spe, steps_per_epoch=spe)
  for epoch in range(1, 40):  # 1-based, as in the paper
    expected = seq_len * 1.2 ** -max(epoch - 6, 0)
    for t in ((epoch - 1) * spe, epoch * spe - 1):
      assert float(s(t)) == pytest.approx(expected, rel=1e-6), (epoch, t)


def test_exponential_schedule_counts_from_the_start_through_warmup():
  s = build_schedule(cfg(schedule="exponential", decay_factor=0.1, decay_begin_epochs=2,
                         decay_every_epochs=1, warmup_steps=5), 40, steps_per_epoch=10)
  values = [float(s(t)) for t in (0, 5, 19, 20, 29, 30)]
  np.testing.assert_allclose(values, [0.0, 0.1, 0.1, 0.01, 0.01, 0.001], rtol=1e-6)
  with pytest.raises(ValueError, match="steps_per_epoch"):
    build_schedule(cfg(schedule="exponential"), 40)
  with pytest.raises(ValueError, match="decay_every > 0"):
    build_schedule(cfg(schedule="exponential", decay_every_epochs=0), 40, steps_per_epoch=10)


def test_bad_optimizer_settings():
  with pytest.raises(ValueError, match="learning_rate must be positive"):
    build_schedule(cfg(learning_rate=0.0), 10)
  with pytest.raises(ValueError, match="warmup_steps=20 must be in"):
    build_schedule(cfg(warmup_steps=20), 10)
  with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
    build_optimizer(cfg(name="rmsprop"), 10)
  for name in ("sgd", "adam", "adamw"):
    build_optimizer(cfg(name=name, weight_decay=1e-4, grad_clip_norm=1.0), 10)
  build_optimizer(cfg(name="sgd", schedule="exponential"), 10, steps_per_epoch=5)
