"""The one analog product: padding-free per-unit power, programming vs read weight noise, and the
layers / cells / tied weights all going through it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from freqnoise.analog.layers import NoisyDense
from freqnoise.analog.noise import (NoiseConfig, add_output_noise, perturb_weights, signal_power,
                                    standard_normal)
from freqnoise.analog.product import AdcNoise, analog_product
from freqnoise.analog.quant import QuantConfig, stateless_quantizer
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


# ----------------------------------------------------------------------------- converters
def _dyadic(seed, shape, scale):
  """Values on a 1/scale grid: every product and sum below is exact in float32."""
  return np.round(np.random.default_rng(seed).standard_normal(shape) * scale) / scale


def _quant(v, step, qmax):
  """NumPy fake quantizer: nearest code (half to even), clipped to ±qmax."""
  return np.clip(np.round(v / step), -qmax, qmax) * step


DAC = QuantConfig(4, bound=0.875)                               # Δ = 1/8
WEIGHTS = QuantConfig(3, mode="dynamic", per_channel=True)      # Δ_c = max|w_c| / 3
ADC = QuantConfig(4, bound=1.75)                                # Δ = 1/4


def test_dac_weights_and_adc_equal_a_hand_composed_numpy_reference():
  x = _dyadic(0, (16, 8), 16)
  w = _dyadic(1, (8, 5), 4)
  w[0] = 3 * 2.0 ** -np.arange(1, 6)  # each column's max|w| is 3·2^-k: a power-of-two step
  w[1:] = np.clip(w[1:], -w[0], w[0])
  ref = _quant(_quant(x, 0.125, 7) @ _quant(w, w[0] / 3, 3), 0.25, 7)
  out = analog_product(jnp.dot, jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32), None,
                       None, dac=stateless_quantizer(DAC), weight_quantizer=stateless_quantizer(
                           WEIGHTS), adc=stateless_quantizer(ADC))
  np.testing.assert_array_equal(np.asarray(out), ref.astype(np.float32))
  assert np.abs(ref).max() == 1.75  # the ADC clips some outputs


def test_weight_noise_perturbs_the_quantized_weights():
  """W̃ = Q_w(W) + noise: additive noise scales with max|Q_w(W)| and is drawn around Q_w(W)."""
  x, w = jnp.asarray(_dyadic(0, (4, 8), 16)), jnp.asarray(_dyadic(1, (8, 5), 4))
  noise = NoiseConfig(weight_noise="additive", weight_sigma=0.1, weight_draw="read")
  q = stateless_quantizer(WEIGHTS)
  out = analog_product(jnp.dot, x, w, noise, lambda s: jax.random.key(3), weight_quantizer=q)
  np.testing.assert_array_equal(
      out, jnp.dot(x, perturb_weights(jax.random.key(3), q(w), "additive", 0.1)))


def _adc_out(position, lsb, shape=(400, 50)):
  x, w = _x_w(shape)
  adc = stateless_quantizer(QuantConfig(4, bound=64.0))  # Δ = 64/7: no output clips
  run = lambda noise: analog_product(jnp.dot, x, w, None, lambda s: jax.random.key(5), adc=adc,
                                     adc_noise=noise)
  step = 64.0 / 7
  return (np.asarray(run(AdcNoise(lsb, position) if lsb is not None else None), np.float64),
          np.asarray(run(None), np.float64), step)


def _x_w(shape):
  return (jax.random.normal(jax.random.key(0), (shape[0], 16)) * 3,
          jax.random.normal(jax.random.key(1), (16, shape[1])))


def test_adc_noise_after_the_adc_leaves_the_grid_with_its_std_in_lsb():
  """After: ADC(y) + e, e ~ N(0, (σ·Δ)²): the outputs leave the grid by e, whose std in LSB is
  σ within 3 standard errors (20,000 draws: SE = σ/sqrt(2n))."""
  for lsb in (0.3, 2.0):
    out, clean, step = _adc_out("after", lsb)
    e = (out - clean) / step
    assert abs(e.std() - lsb) < 3 * lsb / np.sqrt(2 * e.size)
    assert abs(e.mean()) < 3 * lsb / np.sqrt(e.size)
    assert np.mean(np.abs(out / step - np.round(out / step)) > 1e-3) > 0.9


def test_adc_noise_before_the_adc_stays_on_the_grid():
  out, clean, step = _adc_out("before", 0.6)
  np.testing.assert_allclose(out / step, np.round(out / step), atol=1e-4)
  moved = np.round((out - clean) / step)
  # a level moves when |y/Δ − nearest| + e crosses ½: P ≈ 0.47 for σ = 0.6 LSB and uniform offsets
  assert 0.35 < np.mean(moved != 0) < 0.6 and set(np.unique(moved)) <= {-3, -2, -1, 0, 1, 2, 3}


def test_adc_noise_off_when_zero_and_errors():
  out, clean, _ = _adc_out("before", 0.0)
  np.testing.assert_array_equal(out, clean)
  x, w = _x_w((4, 3))
  no_key = lambda: analog_product(jnp.dot, x, w, None, None, adc=stateless_quantizer(ADC),
                                  adc_noise=AdcNoise(0.0))
  no_key()  # no noise: no key needed
  with pytest.raises(ValueError, match="needs keys"):
    analog_product(jnp.dot, x, w, None, None, adc=stateless_quantizer(ADC), adc_noise=AdcNoise(1.0))
  rng = lambda s: jax.random.key(0)
  with pytest.raises(ValueError, match=">= 0 LSB"):
    analog_product(jnp.dot, x, w, None, rng, adc=stateless_quantizer(ADC), adc_noise=AdcNoise(-1.0))
  with pytest.raises(ValueError, match="needs an ADC quantizer with a grid"):
    analog_product(jnp.dot, x, w, None, rng, adc=jnp.round, adc_noise=AdcNoise(1.0))


def test_adc_noise_composes_with_the_snr_output_noise():
  """Output noise first, then ADC noise, each from its own 'noise' key."""
  x, w = _x_w((8, 5))
  keys = iter(jax.random.split(jax.random.key(2), 2))
  adc = stateless_quantizer(QuantConfig(4, bound=64.0))
  out = analog_product(jnp.dot, x, w, NoiseConfig(snr_db=10.0), lambda s: next(keys), adc=adc,
                       adc_noise=AdcNoise(1.0, "after"))
  k1, k2 = jax.random.split(jax.random.key(2), 2)
  y = add_output_noise(k1, x @ w, 10.0)
  ref = adc(y) + 64.0 / 7 * standard_normal(k2, y.shape)
  np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-5)
