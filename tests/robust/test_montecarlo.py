"""mc_accuracy: the one compiled computation equals a Python loop over the same keys, exactly (per
draw one programming key for every batch, one noise key per batch, the padding mask); the inf row
computed once equals computing it D times; draws sharded over devices change nothing; Student-t
intervals; bad input is rejected before any work."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from jax.sharding import Mesh

from freqnoise.analog import NoiseConfig, NoisyDense
from freqnoise.robust import (MCResult, draw_noise_key, draw_program_key, mc_accuracy,
                              result_from_json, result_to_json)


class TinyNoisyMLP(nn.Module):
  noise: NoiseConfig | None = None

  @nn.compact
  def __call__(self, x):
    x = nn.relu(NoisyDense(32, noise=self.noise)(x))
    return NoisyDense(4, noise=self.noise)(x)


def tiny_apply(variables, x, snr_db, key, program_key, mask):
  """Output noise at `snr_db` (per-unit power over the real rows) and programming weight noise."""
  noise = NoiseConfig(snr_db=snr_db, weight_noise="multiplicative", weight_sigma=0.3,
                      power="per_unit", valid=mask)
  return TinyNoisyMLP(noise=noise).apply(variables, x, rngs={"noise": key, "program": program_key})


def output_only_apply(variables, x, snr_db, key, program_key, mask):
  """Output noise only: deterministic at SNR inf."""
  return TinyNoisyMLP(noise=NoiseConfig(snr_db=snr_db)).apply(
      variables, x, rngs={"noise": key, "program": program_key})


def _data(n=70):
  rng = np.random.RandomState(0)
  x = rng.randn(n, 12).astype(np.float32)
  w = rng.randn(12, 4)
  return x, np.argmax(x @ w, -1).astype(np.int32)


def test_mc_accuracy_equals_python_loop_over_the_same_keys():
  x, y = _data()
  variables = TinyNoisyMLP().init(jax.random.key(0), x[:1])
  snrs, draws, batch, key = [-5.0, 0.0, 10.0, np.inf], 6, 32, jax.random.key(3)
  result = mc_accuracy(tiny_apply, variables, x, y, snrs_db=snrs, num_draws=draws, key=key,
                       batch_size=batch, draws_per_chunk=3, mesh=Mesh(jax.devices()[:1], ("data",)))
  single = jax.jit(tiny_apply)
  expected = np.zeros((len(snrs), draws))
  for s, snr in enumerate(snrs):
    for d in range(draws):
      correct = 0
      for b in range(-(-len(y) // batch)):
        xb, yb = x[b * batch:(b + 1) * batch], y[b * batch:(b + 1) * batch]
        mask = np.arange(batch) < len(yb)
        xb = np.concatenate([xb, np.zeros((batch - len(xb), 12), np.float32)])  # same padding
        pred = np.asarray(single(variables, xb, jnp.float32(snr), draw_noise_key(key, d, b),
                                 draw_program_key(key, d), mask.astype(np.float32)))
        correct += int(np.sum(np.argmax(pred, -1)[:len(yb)] == yb))
      expected[s, d] = correct / len(y)
  np.testing.assert_array_equal(result.accuracy, expected)
  # Noise really varies across draws, also at inf (weight noise: one chip per draw).
  assert len(set(result.accuracy[0])) > 1
  assert len(set(result.accuracy[-1])) > 1


def test_static_inf_rows_are_computed_once_and_equal_the_full_computation():
  x, y = _data()
  variables = TinyNoisyMLP().init(jax.random.key(0), x[:1])
  traced_snrs = []

  def recording_apply(variables, x, snr_db, key, program_key, mask):
    traced_snrs.append(snr_db)
    return output_only_apply(variables, x, snr_db, key, program_key, mask)

  kw = dict(snrs_db=[np.inf, -5.0, np.inf, 3.0], num_draws=6, key=jax.random.key(5),
            batch_size=32, draws_per_chunk=3, mesh=Mesh(jax.devices()[:1], ("data",)))
  full = mc_accuracy(output_only_apply, variables, x, y, static_at_inf=False, **kw)
  fast = mc_accuracy(recording_apply, variables, x, y, static_at_inf=True, **kw)
  for name in ("accuracy", "majority", "mean_prob"):
    np.testing.assert_array_equal(getattr(fast, name), getattr(full, name))
  assert len(set(full.accuracy[1])) > 1  # the -5 dB row is noisy
  # The static row is traced once with a Python inf (nothing drawn), besides the vmapped pass.
  assert [s for s in traced_snrs if isinstance(s, float)] == [math.inf]


def test_result_summaries_use_student_t_with_few_draws():
  acc = np.array([[0.5, 0.7, 0.9, 0.8]])
  r = MCResult(snrs_db=np.array([0.0]), accuracy=acc, majority=acc, mean_prob=acc, num_examples=10)
  np.testing.assert_allclose(r.mean, [0.725])
  np.testing.assert_allclose(r.std, [np.std(acc, ddof=1)])
  lo, hi = scipy.stats.t.interval(0.95, df=3, loc=acc.mean(), scale=scipy.stats.sem(acc[0]))
  np.testing.assert_allclose(r.mean_ci95, [(hi - lo) / 2])
  assert r.metrics()["mc/snr_0/ci95"] == pytest.approx((hi - lo) / 2)
  assert r.mean_ci95[0] > 1.96 * r.std[0] / 2  # wider than the normal interval
  one = MCResult(np.array([0.0]), acc[:, :1], acc[:, :1], acc[:, :1], 10)
  assert np.isnan(one.mean_ci95[0])
  lo, hi = r.interval95
  np.testing.assert_allclose([lo[0], hi[0]], np.percentile(acc, [2.5, 97.5]))
  assert set(r.metrics()) == {f"mc/snr_0/{k}" for k in ("mean", "ci95", "std", "p2.5", "p97.5",
                                                         "vote_majority", "vote_mean_prob")}
  again = result_from_json(result_to_json(r))
  np.testing.assert_array_equal(again.accuracy, r.accuracy)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"num_draws": -1}, ValueError, "num_draws must be >= 1"),
    ({"num_draws": 0}, ValueError, "num_draws must be >= 1"),
    ({"num_draws": float("nan")}, ValueError, "num_draws is NaN"),
    ({"num_draws": 2.5}, TypeError, "num_draws must be an integer"),
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
    ({"draws_per_chunk": 3}, ValueError, "must divide num_draws"),
    ({"snrs_db": ["10"]}, TypeError, "SNR must be a number"),
    ({"snrs_db": [float("nan")]}, ValueError, "not allowed"),
    ({"snrs_db": []}, ValueError, "snrs_db is empty"),
])
def test_bad_input_is_a_clear_error(kwargs, error, match):
  x, y = _data(8)
  args = dict(snrs_db=[0.0], num_draws=4, key=jax.random.key(0), batch_size=4)
  args.update(kwargs)
  with pytest.raises(error, match=match):
    mc_accuracy(tiny_apply, None, x, y, **args)


def test_labels_must_match_images():
  x, y = _data(8)
  with pytest.raises(ValueError, match="labels"):
    mc_accuracy(tiny_apply, None, x, y[:5], snrs_db=[0.0], num_draws=1, key=jax.random.key(0))


def test_draws_sharded_over_four_devices_give_the_same_result():
  if jax.device_count() < 4:
    pytest.skip("needs 4 devices (XLA_FLAGS=--xla_force_host_platform_device_count=4)")
  x, y = _data()
  v = TinyNoisyMLP().init(jax.random.key(0), x[:1])
  kw = dict(snrs_db=[0.0, 5.0, np.inf], num_draws=8, key=jax.random.key(1), batch_size=32)
  sharded = mc_accuracy(tiny_apply, v, x, y, draws_per_chunk=4,
                        mesh=Mesh(np.array(jax.devices()[:4]), ("data",)), **kw)
  single = mc_accuracy(tiny_apply, v, x, y, mesh=Mesh(np.array(jax.devices()[:1]), ("data",)), **kw)
  np.testing.assert_array_equal(sharded.accuracy, single.accuracy)
  np.testing.assert_array_equal(sharded.majority, single.majority)
  with pytest.raises(ValueError, match="multiple of the mesh size 4"):
    mc_accuracy(tiny_apply, v, x, y, draws_per_chunk=2,
                mesh=Mesh(np.array(jax.devices()[:4]), ("data",)), **kw)
