"""The noisy-inference configs: every variant builds with the right noise blocks, bad variants are
clear errors, and the tiny variant trains and Monte-Carlo-evaluates end to end."""

import math

import pytest

from configs import noisy_cifar10, noisy_mnist
from freqnoise.analog import noise_from_config
from freqnoise.train import train_and_evaluate


@pytest.mark.parametrize("module", [noisy_mnist, noisy_cifar10])
def test_variants(module):
  for name, snr in module.TRAIN_SNRS.items():
    c = module.get_config(name)
    noise = noise_from_config(c.train_noise)
    assert (noise is None) if math.isinf(snr) else (noise.snr_db == snr and noise.power_gradient)
    assert noise_from_config(c.eval_noise).snr_db == 0.0
    assert tuple(c.montecarlo.snrs_db) == (-5.0, 0.0, 5.0, 10.0, 20.0, math.inf)
  assert module.get_config("tiny").data.source == "digits"
  with pytest.raises(ValueError, match="unknown config variant"):
    module.get_config("snr3")


def test_tiny_variant_trains_and_evaluates(tmp_path):
  result = train_and_evaluate(noisy_mnist.get_config("clean_tiny"), str(tmp_path))
  assert result["steps"] == 10
  assert 0.0 <= result["montecarlo/snr_0/vote_mean_prob"] <= 1.0
  assert result["montecarlo/snr_inf/std"] == 0.0
  assert (tmp_path / "montecarlo.json").is_file()
