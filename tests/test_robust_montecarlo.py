"""mc_accuracy: the one compiled computation equals a Python loop over the same keys, exactly;
sharding draws over devices changes nothing; bad input is rejected before any work."""

import os
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from freqnoise.analog import NoiseConfig, NoisyDense
from freqnoise.robust import MCResult, draw_key, mc_accuracy


class TinyNoisyMLP(nn.Module):
  noise: NoiseConfig | None = None

  @nn.compact
  def __call__(self, x):
    x = nn.relu(NoisyDense(32, noise=self.noise)(x))
    return NoisyDense(4, noise=self.noise)(x)


def tiny_apply(variables, x, snr_db, key):
  return TinyNoisyMLP(noise=NoiseConfig(snr_db=snr_db)).apply(variables, x, rngs={"noise": key})


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
                       batch_size=batch, draws_per_chunk=3)
  single = jax.jit(tiny_apply)
  expected = np.zeros((len(snrs), draws))
  for s, snr in enumerate(snrs):
    for d in range(draws):
      correct = 0
      for b in range(-(-len(y) // batch)):
        xb, yb = x[b * batch:(b + 1) * batch], y[b * batch:(b + 1) * batch]
        xb = np.concatenate([xb, np.zeros((batch - len(xb), 12), np.float32)])  # same padding
        pred = np.asarray(single(variables, xb, jnp.float32(snr), draw_key(key, d, b)))
        correct += int(np.sum(np.argmax(pred, -1)[:len(yb)] == yb))
      expected[s, d] = correct / len(y)
  np.testing.assert_array_equal(result.accuracy, expected)
  # Noise really varies across draws at low SNR, and inf is noiseless (all draws equal).
  assert len(set(result.accuracy[0])) > 1
  assert len(set(result.accuracy[-1])) == 1


def test_result_summaries():
  acc = np.array([[0.5, 0.7, 0.9]])
  r = MCResult(snrs_db=np.array([0.0]), accuracy=acc, majority=acc, mean_prob=acc, num_examples=10)
  np.testing.assert_allclose(r.mean, [0.7])
  np.testing.assert_allclose(r.std, [0.2])
  np.testing.assert_allclose(r.mean_ci95, [1.96 * 0.2 / np.sqrt(3)])
  lo, hi = r.interval95
  np.testing.assert_allclose([lo[0], hi[0]], [0.51, 0.89])
  assert set(r.metrics()) == {f"mc/snr_0/{k}" for k in
                              ("mean", "std", "p2.5", "p97.5", "vote_majority", "vote_mean_prob")}


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
  # A fresh interpreter: the fake-device count must be set before JAX starts.
  script = textwrap.dedent("""
      import jax, numpy as np
      from jax.sharding import Mesh
      from tests.test_robust_montecarlo import TinyNoisyMLP, tiny_apply, _data
      from freqnoise.robust import mc_accuracy
      assert jax.device_count() == 4
      x, y = _data()
      v = TinyNoisyMLP().init(jax.random.key(0), x[:1])
      kw = dict(snrs_db=[0.0, 5.0], num_draws=8, key=jax.random.key(1), batch_size=32)
      sharded = mc_accuracy(tiny_apply, v, x, y, draws_per_chunk=4, **kw)
      single = mc_accuracy(tiny_apply, v, x, y, mesh=Mesh(np.array(jax.devices()[:1]), ('data',)), **kw)
      np.testing.assert_array_equal(sharded.accuracy, single.accuracy)
      np.testing.assert_array_equal(sharded.majority, single.majority)
      print('OK')
  """)
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
  out = subprocess.run([sys.executable, "-c", script], env=env, cwd=root, capture_output=True,
                       text=True, timeout=120)
  assert out.returncode == 0, out.stderr[-3000:]
  assert "OK" in out.stdout
