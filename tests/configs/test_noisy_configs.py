"""The noisy-inference configs: every variant builds with the right noise blocks, bad variants are
clear errors, and the tiny variant trains and Monte-Carlo-evaluates end to end."""

import math

import pytest

from configs import noisy_cifar10, noisy_mnist
from freqnoise.analog import noise_from_config
from freqnoise.train import train_and_evaluate


@pytest.mark.parametrize("module", [noisy_mnist, noisy_cifar10])
def test_variants(module):
  for snr in module.TRAIN_SNRS:
    c = module.get_config(f"snr={snr:g}")
    noise = noise_from_config(c.train_noise)
    assert (noise is None) if math.isinf(snr) else (noise.snr_db == snr and noise.power_gradient)
    assert noise_from_config(c.eval_noise).snr_db == 0.0
    mc = c.evals.montecarlo
    assert mc.type == "montecarlo" and mc.num_draws == 8
    assert tuple(mc.snrs_db) == (-5.0, 0.0, 5.0, 10.0, 20.0, math.inf)
  assert list(module.get_config().evals) == ["montecarlo"]
  assert module.get_config().train_noise.snr_db == 0.0
  tiny = module.get_config("snr=inf,tiny")
  assert tiny.data.source == "digits" and math.isinf(tiny.train_noise.snr_db)
  assert tiny.evals.montecarlo.num_draws == 4
  with pytest.raises(ValueError, match=r"config argument snr=3\.0 is not one of: inf, 10, 5, 0"):
    module.get_config("snr=3")
  with pytest.raises(ValueError, match="unknown config argument 'clean'"):
    module.get_config("clean")


def test_tiny_variant_trains_and_evaluates(tmp_path):
  result = train_and_evaluate(noisy_mnist.get_config("snr=inf,tiny"), str(tmp_path))
  assert result["steps"] == 10
  assert 0.0 <= result["montecarlo/snr_0/vote_mean_prob"] <= 1.0
  assert result["montecarlo/snr_inf/std"] == 0.0
  assert (tmp_path / "montecarlo.json").is_file()
