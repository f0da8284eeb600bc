"""The one analog product: padding-free per-unit power, programming vs read weight noise, and the
layers / cells / tied weights all going through it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from freqnoise.analog.layers import NoisyDense
from freqnoise.analog.noise import NoiseConfig, signal_power, standard_normal
from freqnoise.analog.product import analog_product
from freqnoise.analog.recurrent import RecurrentScan


def test_per_unit_power_ignores_padding_rows():
  """One real row padded to 32 (zeros, as mc_accuracy pads; or repeats, as the trainer's eval does)
  gets noise at exactly its own 0 dB, not at the padded batch's power (was 14.9 dB)."""
  x_real = jax.random.normal(jax.random.key(0), (1, 8))
  w = jax.random.normal(jax.random.key(1), (8, 5))
  mask = jnp.zeros((32,)).at[0].set(1.0)
  for padding in (jnp.zeros((31, 8)), jnp.repeat(x_real, 31, axis=0) * 3.0):
    x = jnp.concatenate([x_real, padding])
    y = x @ w
    p_real = signal_power(x_real @ w, "per_unit")
    np.testing.assert_allclose(signal_power(y, "per_unit", valid=mask), p_real, rtol=1e-6)
    noise = NoiseConfig(snr_db=0.0, power="per_unit", valid=mask)
    out = analog_product(jnp.dot, x, w, noise, lambda stream: jax.random.key(7))
    eps = standard_normal(jax.random.key(7), y.shape)
    np.testing.assert_allclose(out[0], y[0] + jnp.sqrt(p_real[0]) * eps[0], rtol=1e-5, atol=1e-6)
  # Without the mask the zeros dilute the power by 32 (15 dB): the old behaviour.
  np.testing.assert_allclose(signal_power(jnp.concatenate([x_real, jnp.zeros((31, 8))]) @ w,
                                          "per_unit"), p_real / 32, rtol=1e-5)
  with pytest.raises(ValueError, match="row mask"):
    signal_power(jnp.ones((4, 3)), "per_unit", valid=jnp.ones((3,)))


def _dense_with(weight_draw):
  noise = NoiseConfig(weight_noise="additive", weight_sigma=0.2, weight_draw=weight_draw)
  layer = NoisyDense(4, noise=noise)
  x = jax.random.normal(jax.random.key(0), (3, 6))
  params = NoisyDense(4).init(jax.random.key(1), x)
  return layer, params, x


def test_programming_noise_is_one_chip_per_program_key():
  layer, params, x = _dense_with("programming")
  run = lambda noise_key, program_key: layer.apply(params, x, rngs={"noise": noise_key,
                                                                   "program": program_key})
  a = run(jax.random.key(1), jax.random.key(5))
  b = run(jax.random.key(2), jax.random.key(5))   # another batch of the same chip
  c = run(jax.random.key(1), jax.random.key(6))   # another chip
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)
  with pytest.raises(ValueError, match="'program' stream"):
    layer.apply(params, x, rngs={"noise": jax.random.key(1)})


def test_read_noise_is_fresh_per_call_and_ignores_the_program_key():
  layer, params, x = _dense_with("read")
  run = lambda noise_key, program_key: layer.apply(params, x, rngs={"noise": noise_key,
                                                                   "program": program_key})
  np.testing.assert_array_equal(run(jax.random.key(1), jax.random.key(5)),
                                run(jax.random.key(1), jax.random.key(6)))
  assert not np.allclose(run(jax.random.key(1), jax.random.key(5)),
                         run(jax.random.key(2), jax.random.key(5)))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_programming_noise_is_one_chip_over_time_steps_read_noise_is_not(cell):
  """Inside nn.scan the 'program' stream is broadcast: every time step sees the same W̃, so two
  scans with different noise keys but one program key agree exactly; read noise differs."""
  x = jax.random.normal(jax.random.key(0), (2, 6, 3))
  prog = NoiseConfig(weight_noise="multiplicative", weight_sigma=0.3, weight_draw="programming")
  read = prog.replace(weight_draw="read")
  params = RecurrentScan(cell, 4).init(jax.random.key(1), x)
  run = lambda noise, k_noise, k_prog: RecurrentScan(cell, 4, noise=noise).apply(
      params, x, rngs={"noise": k_noise, "program": k_prog})[1]
  np.testing.assert_array_equal(run(prog, jax.random.key(1), jax.random.key(9)),
                                run(prog, jax.random.key(2), jax.random.key(9)))
  assert not np.allclose(run(prog, jax.random.key(1), jax.random.key(9)),
                         run(prog, jax.random.key(1), jax.random.key(8)))
  np.testing.assert_array_equal(run(read, jax.random.key(1), jax.random.key(9)),
                                run(read, jax.random.key(1), jax.random.key(8)))
  assert not np.allclose(run(read, jax.random.key(1), jax.random.key(9)),
                         run(read, jax.random.key(2), jax.random.key(9)))


def test_tied_softmax_goes_through_the_product():
  from freqnoise.models.sequence import LSTMLanguageModel
  model = LSTMLanguageModel(num_classes=11, embed_dim=4, hidden=4, num_layers=1, tie_weights=True)
  tokens = jnp.arange(6).reshape(2, 3)
  variables = model.init(jax.random.key(0), tokens, train=False)
  noisy = model.clone(noise=NoiseConfig(snr_db=0.0, layers="all_but_first"))
  clean = model.apply(variables, tokens, train=False)
  out = noisy.apply(variables, tokens, train=False, rngs={"noise": jax.random.key(1)})
  # Only the softmax product is analog here: its noise has the per-example 0 dB variance.
  y = clean - variables["params"]["logits_bias"]
  eps = (out - clean) / jnp.sqrt(jnp.mean(jnp.square(y), -1, keepdims=True))
  assert 0.7 < float(jnp.std(eps)) < 1.3 and not np.allclose(out, clean)
