"""PCM inference noise (freqnoise.analog.pcm): aihwkit's PCMLikeNoiseModel term by term (closed
forms with the other terms off, moments of the random ones), global drift compensation, the config
block, and a Monte Carlo sweep of times × draws in one compiled call."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from freqnoise.analog import pcm
from freqnoise.analog.layers import NoisyDense
from freqnoise.analog.noise import NoiseConfig, noise_from_config
from freqnoise.analog.product_quant import quant_from_config
from freqnoise.robust.montecarlo import mc_accuracy

KEY = jax.random.key(0)
program = jax.jit(pcm.program, static_argnums=2)
drift = jax.jit(pcm.drift, static_argnums=4)


def _w(seed, shape):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def test_without_noise_programming_returns_the_weights():
  w = _w(0, (30, 7))
  w_prog, nu = program(KEY, w, pcm.PcmConfig(prog_noise_scale=0.0))
  np.testing.assert_allclose(w_prog, w, rtol=1e-6, atol=1e-7)
  assert nu.shape == (2, 30, 7)


def test_programming_noise_std_is_the_polynomial_in_g():
  """g = 0.5·g_max on the positive device: σ = (0.26348 + 1.9650/2 − 1.1731/4)·g_max/25 µS; the
  negative device (g = 0) is max(0, 0.26348·ε): mean 0.26348/sqrt(2π)."""
  w = jnp.full((200_000,), 0.5).at[0].set(1.0)  # max|W| = 1: the others at g = g_max / 2
  w_prog, _ = program(KEY, w, pcm.PcmConfig(g_max=25.0))
  g_diff = np.asarray(w_prog[1:]) * 25.0  # (g+ − g−) in µS
  sigma = 0.26348 + 1.9650 / 2 - 1.1731 / 4
  neg_mean = 0.26348 / math.sqrt(2 * math.pi)
  assert np.mean(g_diff) == pytest.approx(12.5 - neg_mean, abs=0.01)
  neg_var = 0.26348**2 * (0.5 - 1 / (2 * math.pi))
  assert np.std(g_diff) == pytest.approx(math.sqrt(sigma**2 + neg_var), rel=0.01)


def test_drift_coefficients_at_g_max_and_at_zero():
  """μ_ν, σ_ν clipped: g = g_max gives |0.049 + 0.008ε|; g = 0 gives |0.1 + 0.045ε| (a folded
  normal)."""
  w = jnp.concatenate([jnp.ones(100_000), -jnp.ones(100_000)])
  _, nu = program(KEY, w, pcm.PcmConfig())
  top, zero = np.asarray(nu[0, :100_000]), np.asarray(nu[1, :100_000])
  assert (top.mean(), top.std()) == pytest.approx((0.049, 0.008), rel=0.02)
  folded = scipy.stats.foldnorm(0.1 / 0.045, scale=0.045)
  assert (zero.mean(), zero.std()) == pytest.approx((folded.mean(), folded.std()), rel=0.02)


def test_drift_without_read_noise_is_the_power_law():
  """W_t = W·((t + t0)/t0)^(−ν) per device; at t = 0 nothing drifts."""
  w = _w(1, (50,))
  nu = jnp.stack([jnp.full((50,), 0.06), jnp.full((50,), 0.06)])
  cfg = pcm.PcmConfig(read_noise_scale=0.0)
  year = 365 * 24 * 3600.0
  np.testing.assert_allclose(drift(KEY, w, nu, year, cfg), w * ((year + 20) / 20) ** -0.06,
                             rtol=2e-5)
  np.testing.assert_allclose(drift(KEY, w, nu, 0.0, cfg), w, rtol=1e-6)


def test_read_noise_std_is_the_accumulated_1_over_f_noise():
  """At g = g_max: Q_s = 0.0088, σ = Q_s·sqrt(ln((t + t_read)/(2 t_read))) relative to g."""
  w = jnp.ones((200_000,))
  nu = jnp.zeros((2, 200_000))
  t = 3600.0
  w_t = np.asarray(drift(KEY, w, nu, t, pcm.PcmConfig()))
  sigma = 0.0088 * math.sqrt(math.log((t + 20 + 250e-9) / (2 * 250e-9)))
  assert np.std(w_t) == pytest.approx(sigma, rel=0.01)
  assert np.mean(w_t) == pytest.approx(1.0, abs=1e-3)


def _ideal_readout(weights, _):
  return weights


def test_global_drift_compensation_restores_the_mean_level():
  """gain = a0 / a_t with the readouts' mean |output|: an ideal readout (the weights) puts the
  compensated weights' mean |W| back at the programmed one's."""
  w = _w(2, (64, 32))
  compensated = jax.jit(pcm.pcm_weights, static_argnums=(3, 4))
  w_t, gain = compensated(KEY, w, 86_400.0, pcm.PcmConfig(), _ideal_readout)
  assert float(gain) > 1.05  # a day of drift lowers the conductances
  w_prog, _ = program(jax.random.split(KEY, 4)[0], w, pcm.PcmConfig())
  assert float(jnp.mean(jnp.abs(w_t)) * gain) == pytest.approx(float(jnp.mean(jnp.abs(w_prog))),
                                                                rel=1e-5)
  _, off = compensated(KEY, w, 86_400.0, pcm.PcmConfig(drift_compensation=False), _ideal_readout)
  assert float(off) == 1.0


def test_the_config_block_and_its_errors():
  block = {"weight_noise": "pcm", "t_inference": 60, "pcm": {**pcm.DEFAULTS, "g_max": 10}}
  noise = noise_from_config(block)
  assert noise.pcm == pcm.PcmConfig(g_max=10.0) and noise.t_inference == 60.0
  assert not noise.statically_off
  with pytest.raises(ValueError, match=r"noise pcm.g_max is used only with weight_noise='pcm'"):
    noise_from_config({"pcm": {"g_max": 10.0}})
  with pytest.raises(ValueError, match=r"noise pcm has unknown field\(s\) \['gmax'\]"):
    noise_from_config({"weight_noise": "pcm", "pcm": {"gmax": 1.0}})
  with pytest.raises(ValueError, match="t_inference must be >= 0"):
    NoiseConfig(weight_noise="pcm", t_inference=-1.0)


def test_a_draw_is_one_chip_and_times_times_draws_sweep_in_one_call():
  """Each draw's chip (its 'program' key) is fixed over batches; t_inference is traced, so
  mc_accuracy's grid axis sweeps times: accuracy falls with time without compensation."""
  x = _w(3, (64, 20))
  w = _w(4, (20, 5))
  labels = np.asarray(jnp.argmax(x @ w, -1))
  q = quant_from_config({"preset": "aihwkit", "aihwkit": {"bound_management": "none"}})

  def apply(variables, xs, t, key, program_key, mask):
    noise = NoiseConfig(weight_noise="pcm", t_inference=t,
                        pcm=pcm.PcmConfig(drift_compensation=False, prog_noise_scale=3.0))
    return NoisyDense(5, use_bias=False, quant=q, noise=noise).apply(
        variables, xs, rngs={"noise": key, "program": program_key})

  result = mc_accuracy(apply, {"params": {"kernel": w}}, np.asarray(x), labels,
                       snrs_db=[0.0, 3.0e8], num_draws=4, key=KEY, batch_size=16)
  assert result.accuracy.shape == (2, 4)
  assert result.mean[0] > result.mean[1]
