"""Tests of the analog noise models: SNR calibration, determinism, weight noise, config parsing."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from freqnoise.analog.noise import (NoiseConfig, add_output_noise, noise_for_layer,
                                    noise_from_config, perturb_weights, sample_training_noise,
                                    signal_power, standard_normal)


def _empirical_snr_db(y, noisy):
  y, noisy = np.asarray(y, np.float64), np.asarray(noisy, np.float64)
  return 10 * np.log10(np.mean(y**2) / np.mean((noisy - y)**2))


@pytest.mark.parametrize("power", ["per_example", "per_unit"])
@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 20.0])
def test_empirical_snr_matches_request_within_2_percent(power, snr_db):
  # Rows of very different power, so per-example and per-unit scaling are both exercised.
  k1, k2 = jax.random.split(jax.random.key(0))
  scale = jnp.exp(jax.random.normal(k1, (512, 1)))
  y = scale * jax.random.normal(k2, (512, 1024))
  noisy = add_output_noise(jax.random.key(1), y, snr_db, power)
  ratio_requested = 10**(snr_db / 10)
  ratio_seen = 10**(_empirical_snr_db(y, noisy) / 10)
  assert abs(ratio_seen / ratio_requested - 1) < 0.02


def test_per_example_noise_scales_with_each_rows_power():
  y = jnp.concatenate([jnp.ones((1, 200_000)), 10 * jnp.ones((1, 200_000))])
  n = add_output_noise(jax.random.key(0), y, 0.0, "per_example") - y
  np.testing.assert_allclose(np.std(np.asarray(n), axis=1), [1.0, 10.0], rtol=0.01)


def test_signal_power_shapes_and_values():
  y = jnp.arange(24.0).reshape(2, 3, 4)
  np.testing.assert_allclose(signal_power(y, "per_example"),
                             np.mean(np.arange(24.0).reshape(2, 3, 4)**2, -1, keepdims=True))
  np.testing.assert_allclose(signal_power(y, "per_unit"),
                             np.mean(np.arange(24.0).reshape(2, 3, 4)**2, (0, 1), keepdims=True))


def test_infinite_snr_is_exactly_noiseless_static_and_traced():
  y = jax.random.normal(jax.random.key(0), (4, 7))
  assert add_output_noise(jax.random.key(1), y, math.inf) is y
  traced = jax.jit(lambda s: add_output_noise(jax.random.key(1), y, s))(jnp.inf)
  assert np.array_equal(np.asarray(traced), np.asarray(y))


def test_same_key_same_noise_different_key_different_noise():
  y = jax.random.normal(jax.random.key(0), (16, 32))
  a = add_output_noise(jax.random.key(5), y, 0.0)
  b = add_output_noise(jax.random.key(5), y, 0.0)
  c = add_output_noise(jax.random.key(6), y, 0.0)
  assert np.array_equal(np.asarray(a), np.asarray(b))
  assert not np.any(np.asarray(a) == np.asarray(c))


def test_power_is_under_stop_gradient():
  # d/dy sum(y + sigma(y) eps) = 1 exactly when sigma's dependence on y is cut.
  y = jax.random.normal(jax.random.key(0), (3, 5))
  g = jax.grad(lambda v: jnp.sum(add_output_noise(jax.random.key(1), v, 0.0)))(y)
  np.testing.assert_array_equal(np.asarray(g), np.ones((3, 5)))


def test_weight_noise_additive_and_multiplicative_statistics():
  w = jnp.linspace(-2.0, 1.0, 400_000)
  add = perturb_weights(jax.random.key(0), w, "additive", 0.1) - w
  np.testing.assert_allclose(np.std(np.asarray(add)), 0.1 * 2.0, rtol=0.01)
  mul = perturb_weights(jax.random.key(0), w, "multiplicative", 0.1) / w - 1
  np.testing.assert_allclose(np.std(np.asarray(mul)), 0.1, rtol=0.01)
  assert perturb_weights(jax.random.key(0), w, "none", 0.1) is w
  assert perturb_weights(jax.random.key(0), w, "additive", 0.0) is w


def test_weight_noise_gradient_is_identity_for_additive():
  w = jnp.arange(1.0, 7.0)
  g = jax.grad(lambda v: jnp.sum(perturb_weights(jax.random.key(0), v, "additive", 0.3)))(w)
  np.testing.assert_array_equal(np.asarray(g), np.ones(6))


@settings(max_examples=20, deadline=None)
@given(st.floats(-20, 40), st.integers(0, 2**31 - 1))
def test_noise_variance_is_power_over_snr(snr_db, seed):
  # Noise divided by its sigma is the same standard normal for every SNR: exact rescaling.
  y = jax.random.normal(jax.random.key(0), (4, 64))
  key = jax.random.key(seed)
  n = np.asarray(add_output_noise(key, y, snr_db) - y, np.float64)
  sigma = np.sqrt(np.mean(np.asarray(y, np.float64)**2, -1, keepdims=True) / 10**(snr_db / 10))
  np.testing.assert_allclose(n / sigma, np.asarray(standard_normal(key, y.shape)),
                             rtol=2e-3, atol=2e-3)


def test_noise_from_config_parses_and_rejects():
  assert noise_from_config(None) is None
  assert noise_from_config({}) is None
  assert noise_from_config({"kind": "none"}) is None
  n = noise_from_config(ml_collections.ConfigDict({"snr_db": 5, "power": "per_unit",
                                                   "snr_db_range": [0, 10]}))
  assert n == NoiseConfig(snr_db=5.0, power="per_unit", snr_db_range=(0.0, 10.0))
  with pytest.raises(ValueError, match="unknown noise kind"):
    noise_from_config({"kind": "thermal"})
  with pytest.raises(ValueError, match="unknown noise weight_noise"):
    noise_from_config({"weight_noise": "gaussian"})
  with pytest.raises(TypeError, match="snr_db must be a number"):
    noise_from_config({"snr_db": "10"})
  with pytest.raises(ValueError, match="NaN"):
    noise_from_config({"snr_db": float("nan")})
  with pytest.raises(ValueError, match="finite or \\+inf"):
    noise_from_config({"snr_db": -math.inf})
  with pytest.raises(ValueError, match="unknown noise config field"):
    noise_from_config({"snr": 3})
  with pytest.raises(ValueError, match="lo <= hi"):
    NoiseConfig(snr_db_range=(10, 0))
  with pytest.raises(ValueError, match="unknown noise power"):
    add_output_noise(jax.random.key(0), jnp.ones((2, 2)), 0.0, "per_batch")


def test_noise_for_layer_selects_products():
  n = NoiseConfig(snr_db=0.0, layers="all_but_first_last")
  assert [noise_for_layer(n, i, 4) is n for i in range(4)] == [False, True, True, False]
  n = NoiseConfig(snr_db=0.0, layers="all_but_first")
  assert [noise_for_layer(n, i, 3) is n for i in range(3)] == [False, True, True]
  n = NoiseConfig(snr_db=0.0, layers="all_but_last")
  assert [noise_for_layer(n, i, 3) is n for i in range(3)] == [True, True, False]
  assert noise_for_layer(None, 0, 1) is None
  with pytest.raises(ValueError, match="outside"):
    noise_for_layer(n, 3, 3)


def test_sample_training_noise_draws_in_range_and_is_a_leaf():
  n = NoiseConfig(snr_db=0.0, snr_db_range=(0.0, 10.0))
  draws = jax.vmap(lambda k: sample_training_noise(k, n).snr_db)(
      jax.random.split(jax.random.key(0), 1000))
  assert float(draws.min()) >= 0.0 and float(draws.max()) <= 10.0
  assert 4.5 < float(draws.mean()) < 5.5
  assert sample_training_noise(jax.random.key(0), NoiseConfig(snr_db=3.0)).snr_db == 3.0
  assert len(jax.tree.leaves(n)) == 3  # snr_db, weight_sigma, t_inference


def test_power_gradient_option_differentiates_through_the_power():
  from jax.test_util import check_grads
  y = jax.random.normal(jax.random.key(0), (3, 6))
  key = jax.random.key(1)
  f = lambda v: add_output_noise(key, v, 0.0, "per_example", power_gradient=True)
  check_grads(f, (y,), order=1, modes=["rev"], atol=2e-2, rtol=2e-2)
  # Closed form per row: d/dy_i sum_j (y_j + s eps_j) = 1 + sum(eps) y_i / (n s 10^(snr/10)),
  # with s = sqrt(mean(y^2) / 10^(snr/10)) and snr = 0 dB.
  eps = np.asarray(standard_normal(key, y.shape), np.float64)
  yn = np.asarray(y, np.float64)
  s = np.sqrt(np.mean(yn**2, -1, keepdims=True))
  expected = 1 + eps.sum(-1, keepdims=True) * yn / (yn.shape[-1] * s)
  g = jax.grad(lambda v: jnp.sum(f(v)))(y)
  np.testing.assert_allclose(np.asarray(g), expected, rtol=1e-4, atol=1e-5)
  # Same forward values as the stop_gradient version.
  np.testing.assert_allclose(f(y), add_output_noise(key, y, 0.0, "per_example"), rtol=1e-6)
  with pytest.raises(TypeError, match="power_gradient"):
    NoiseConfig(power_gradient="yes")


def test_negative_weight_sigma_is_rejected_traced_values_pass():
  """weight_sigma=-0.5 used to be accepted and act as |σ| = 0.5 (σ·ε has the same law)."""
  with pytest.raises(ValueError, match=r"noise weight_sigma must be >= 0 \(a standard deviation\), "
                                       r"got -0.5"):
    noise_from_config({"weight_noise": "additive", "weight_sigma": -0.5})
  with pytest.raises(ValueError, match="weight_sigma must be >= 0"):
    perturb_weights(jax.random.key(0), jnp.ones((2, 2)), "multiplicative", -0.5)
  # a traced σ is not checked (its value is unknown when the pytree is rebuilt inside jit)
  w = jax.jit(lambda s: perturb_weights(jax.random.key(0), jnp.ones((2, 2)), "additive", s)
              )(jnp.float32(0.0))
  np.testing.assert_array_equal(np.asarray(w), np.ones((2, 2)))
  assert jax.jit(lambda s: NoiseConfig(weight_sigma=s).weight_sigma)(jnp.float32(-0.5)) == -0.5
