"""Noisy recurrent cells: NumPy reference (noise off), Flax's cells, scan vs loop, noise draws, gradients."""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from freqnoise.analog.noise import NoiseConfig
from freqnoise.analog.product import AdcNoise, analog_product
from freqnoise.analog.product_quant import ProductQuant
from freqnoise.analog.quant import QuantConfig
from freqnoise.analog.recurrent import NoisyGRUCell, NoisyLSTMCell, NoisyRNNCell, RecurrentScan

B, T, F, H = 3, 5, 4, 6


def _sigmoid(z):
  return 1.0 / (1.0 + np.exp(-z))


def numpy_rnn(x, p):
  """float64 reference tanh RNN over x [B, T, F]; returns h [B, T, H]."""
  h = np.zeros((x.shape[0], p["recurrent_kernel"].shape[0]))
  out = []
  for t in range(x.shape[1]):
    h = np.tanh(x[:, t] @ p["input_kernel"] + h @ p["recurrent_kernel"] + p["bias"])
    out.append(h)
  return np.stack(out, 1)


def numpy_lstm(x, p):
  """float64 reference LSTM (gates i, f, g, o; Hochreiter & Schmidhuber with forget gate)."""
  n_h = p["recurrent_kernel"].shape[0]
  h = c = np.zeros((x.shape[0], n_h))
  out = []
  for t in range(x.shape[1]):
    z = x[:, t] @ p["input_kernel"] + h @ p["recurrent_kernel"] + p["bias"]
    i, f, g, o = (z[:, k * n_h:(k + 1) * n_h] for k in range(4))
    c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    h = _sigmoid(o) * np.tanh(c)
    out.append(h)
  return np.stack(out, 1)


def numpy_gru(x, p):
  """float64 reference GRU (Cho et al. 2014, reset applied after the recurrent product)."""
  n_h = p["recurrent_kernel"].shape[0]
  h = np.zeros((x.shape[0], n_h))
  out = []
  for t in range(x.shape[1]):
    xi = x[:, t] @ p["input_kernel"] + p["bias"]
    hh = h @ p["recurrent_kernel"]
    r = _sigmoid(xi[:, :n_h] + hh[:, :n_h])
    z = _sigmoid(xi[:, n_h:2 * n_h] + hh[:, n_h:2 * n_h])
    n = np.tanh(xi[:, 2 * n_h:] + r * (hh[:, 2 * n_h:] + p["recurrent_bias"]))
    h = (1 - z) * n + z * h
    out.append(h)
  return np.stack(out, 1)


REFERENCES = {"rnn": numpy_rnn, "lstm": numpy_lstm, "gru": numpy_gru}


def _init(cell, noise=None, seed=0, x=None):
  x = jax.random.normal(jax.random.key(seed + 1), (B, T, F)) if x is None else x
  model = RecurrentScan(cell, H, noise=noise)
  variables = model.init(jax.random.key(seed), x)
  # non-zero biases so the bias path is checked too
  params = jax.tree.map(lambda a: a, variables["params"])
  for name in ("bias", "recurrent_bias"):
    if name in params["cell"]:
      params["cell"][name] = 0.1 * jax.random.normal(jax.random.key(seed + 2), params["cell"][name].shape)
  return model, {"params": params}, x


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_noise_off_matches_numpy_reference(cell):
  model, variables, x = _init(cell)
  _, ys = model.apply(variables, x)
  p = {k: np.asarray(v, np.float64) for k, v in variables["params"]["cell"].items()}
  want = REFERENCES[cell](np.asarray(x, np.float64), p)
  assert ys.shape == (B, T, H)
  np.testing.assert_allclose(ys, want, atol=1e-5, rtol=0)
  # a statically-off noise config is the same computation
  off = RecurrentScan(cell, H, noise=NoiseConfig(snr_db=math.inf))
  np.testing.assert_array_equal(off.apply(variables, x)[1], ys)


def _flax_params(p, gates, in_names, hid_names, bias_on):
  """Our fused params as Flax's per-gate Dense params."""
  out = {}
  wi = np.split(np.asarray(p["input_kernel"]), len(gates), -1)
  wh = np.split(np.asarray(p["recurrent_kernel"]), len(gates), -1)
  for k, g in enumerate(gates):
    out[in_names + g] = {"kernel": wi[k]}
    out[hid_names + g] = {"kernel": wh[k]}
  for name, bias in bias_on(p).items():
    out[name]["bias"] = bias
  return out


def test_lstm_matches_flax_optimized_lstm_cell():
  model, variables, x = _init("lstm")
  p = variables["params"]["cell"]
  b = np.split(np.asarray(p["bias"]), 4)
  fp = _flax_params(p, "ifgo", "i", "h", lambda p: {"h" + g: b[k] for k, g in enumerate("ifgo")})
  flax_rnn = nn.RNN(nn.OptimizedLSTMCell(H))
  want = flax_rnn.apply({"params": {"cell": fp}}, x)
  np.testing.assert_allclose(model.apply(variables, x)[1], want, atol=1e-6, rtol=0)


def test_gru_and_rnn_match_flax_cells():
  model, variables, x = _init("gru")
  p = variables["params"]["cell"]
  b = np.split(np.asarray(p["bias"]), 3)
  fp = _flax_params(p, "rzn", "i", "h", lambda p: {**{"i" + g: b[k] for k, g in enumerate("rzn")},
                                                  "hn": np.asarray(p["recurrent_bias"])})
  want = nn.RNN(nn.GRUCell(H)).apply({"params": {"cell": fp}}, x)
  np.testing.assert_allclose(model.apply(variables, x)[1], want, atol=1e-6, rtol=0)
  model, variables, x = _init("rnn")
  p = variables["params"]["cell"]
  fp = {"i": {"kernel": p["input_kernel"], "bias": p["bias"]}, "h": {"kernel": p["recurrent_kernel"]}}
  want = nn.RNN(nn.SimpleCell(H)).apply({"params": {"cell": fp}}, x)
  np.testing.assert_allclose(model.apply(variables, x)[1], want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell_cls", [NoisyRNNCell, NoisyLSTMCell, NoisyGRUCell])
def test_lax_scan_equals_unrolled_loop_with_noise(cell_cls):
  cell = cell_cls(H, noise=NoiseConfig(snr_db=5.0, weight_noise="additive", weight_sigma=0.05,
                                        weight_draw="read"))
  x = jax.random.normal(jax.random.key(1), (B, T, F))
  carry0 = cell.initial_carry(x)
  params = cell.init({"params": jax.random.key(0), "noise": jax.random.key(9)}, carry0, x[:, 0])
  keys = jax.random.split(jax.random.key(3), T)

  def step(carry, inputs):
    x_t, k_t = inputs
    return cell.apply(params, carry, x_t, rngs={"noise": k_t})

  step = jax.jit(step)  # one compilation shared by the loop and the scan body
  _, ys_scan = jax.lax.scan(step, carry0, (jnp.swapaxes(x, 0, 1), keys))
  carry, ys_loop = carry0, []
  for t in range(T):
    carry, y = step(carry, (x[:, t], keys[t]))
    ys_loop.append(y)
  np.testing.assert_allclose(ys_scan, np.stack(ys_loop), atol=1e-6, rtol=0)


def test_recurrent_scan_equals_unrolled_loop_without_noise():
  model, variables, x = _init("lstm")
  cell = NoisyLSTMCell(H)
  carry = cell.initial_carry(x)
  ys = []
  for t in range(T):
    carry, y = cell.apply({"params": variables["params"]["cell"]}, carry, x[:, t])
    ys.append(y)
  final, ys_scan = model.apply(variables, x)
  np.testing.assert_allclose(ys_scan, np.stack(ys, 1), atol=1e-6, rtol=0)
  np.testing.assert_allclose(final[1], carry[1], atol=1e-6, rtol=0)


def test_noise_is_fresh_per_step_and_sequence_with_the_right_power():
  """Zero recurrent kernel and identical inputs: the clean pre-activation is the same at every step
  and in every sequence, so atanh(h) - clean is exactly the input product's noise draw."""
  snr_db, n_seq, n_t, n_h = 10.0, 64, 40, 32
  model = RecurrentScan("rnn", n_h, noise=NoiseConfig(snr_db=snr_db))
  x = jnp.ones((n_seq, n_t, F)) * jnp.array([0.3, -0.2, 0.1, 0.05])
  variables = model.init(jax.random.key(0), x)
  params = variables["params"]["cell"]
  params["recurrent_kernel"] = jnp.zeros_like(params["recurrent_kernel"])
  params = {"cell": params}
  _, h = model.apply({"params": params}, x, rngs={"noise": jax.random.key(4)})
  clean = np.asarray(x[0, 0] @ params["cell"]["input_kernel"])
  noise = np.arctanh(np.asarray(h, np.float64)) - clean
  assert np.all(np.abs(np.diff(noise, axis=1)).max(-1) > 0), "same draw at two consecutive steps"
  assert np.all(np.abs(np.diff(noise, axis=0)).max(-1) > 0), "same draw in two sequences"
  ratio = noise.var() / np.mean(clean ** 2) * 10 ** (snr_db / 10)
  assert abs(ratio - 1.0) < 0.05, ratio  # 81,920 draws: std of the estimate ~ 0.5 %
  # a different key gives different noise; the same key reproduces it
  _, h2 = model.apply({"params": params}, x, rngs={"noise": jax.random.key(4)})
  _, h3 = model.apply({"params": params}, x, rngs={"noise": jax.random.key(5)})
  np.testing.assert_array_equal(h, h2)
  assert not np.allclose(h, h3)


def test_merged_output_noise_has_the_summed_variance_of_both_products():
  """RNN cell, one step, 4000 copies of one (x, h): the pre-activation noise variance is
  (P_input + P_recurrent) / 10^(SNR/10), P of each product per example (one gate)."""
  snr_db, n = 3.0, 4000
  cell = NoisyRNNCell(5, noise=NoiseConfig(snr_db=snr_db))
  x = jnp.tile(jnp.array([[0.5, -1.0, 0.25]]), (n, 1))
  h = jnp.tile(jnp.array([[0.3, -0.2, 0.1, 0.4, -0.5]]), (n, 1))
  params = cell.init({"params": jax.random.key(0), "noise": jax.random.key(1)}, h, x)
  _, out = cell.apply(params, h, x, rngs={"noise": jax.random.key(2)})
  p = params["params"]
  y_i, y_h = x[0] @ p["input_kernel"], h[0] @ p["recurrent_kernel"]
  noise = np.arctanh(np.asarray(out, np.float64)) - np.asarray(y_i + y_h + p["bias"])
  want = (np.mean(np.square(y_i)) + np.mean(np.square(y_h))) / 10 ** (snr_db / 10)
  np.testing.assert_allclose(noise.var(axis=0), want, rtol=0.1)  # 4000 draws: ~2% std per unit
  np.testing.assert_allclose(noise.var(), want, rtol=0.03)


def test_grouped_product_power_is_per_gate():
  """Per-example power is each gate block's own mean square, not the fused row's."""
  x = jnp.ones((2000, 1))
  kernel = jnp.array([[1.0, 1.0, 10.0, 10.0]])  # gate 0 power 1, gate 1 power 100
  rng = lambda stream: jax.random.key(0)
  y = analog_product(jnp.dot, x, kernel, NoiseConfig(snr_db=0.0), rng, groups=2)
  var = np.var(np.asarray(y - x @ kernel), axis=0)
  np.testing.assert_allclose(var, [1.0, 1.0, 100.0, 100.0], rtol=0.1)
  with pytest.raises(ValueError, match="keys"):
    analog_product(jnp.dot, x, kernel, NoiseConfig(snr_db=0.0), None, groups=2)


def test_errors():
  x = jnp.ones((2, 3, 4))
  with pytest.raises(ValueError, match="unknown cell"):
    RecurrentScan("transformer", 4).init(jax.random.key(0), x)
  with pytest.raises(ValueError, match=r"\[batch, time, features\]"):
    RecurrentScan("lstm", 4).init(jax.random.key(0), x[0])
  with pytest.raises(TypeError, match="NoiseConfig"):
    RecurrentScan("lstm", 4, noise={"snr_db": 3}).init(jax.random.key(0), x)


def test_gradient_through_scan_matches_finite_differences():
  """Central differences along a random direction, float64. Multiplicative weight noise keeps the
  loss a smooth function of the parameters for a fixed key (output noise scales with P under
  stop_gradient, which finite differences would see but the gradient by definition does not)."""
  noise = NoiseConfig(weight_noise="multiplicative", weight_sigma=0.1, weight_draw="read")
  with jax.enable_x64(True):
    model = RecurrentScan("lstm", 3, noise=noise)
    x = jax.random.normal(jax.random.key(1), (2, 4, 2), jnp.float64)
    params = jax.tree.map(lambda a: a.astype(jnp.float64), model.init(jax.random.key(0), x)["params"])

    @jax.jit
    def loss(p):
      _, ys = model.apply({"params": p}, x, rngs={"noise": jax.random.key(7)})
      return jnp.sum(jnp.sin(ys))

    grad = jax.grad(loss)(params)
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(2), len(leaves))
    v = treedef.unflatten([jax.random.normal(k, a.shape, jnp.float64) for k, a in zip(keys, leaves)])
    eps = 1e-5
    shift = lambda s: jax.tree.map(lambda p, d: p + s * eps * d, params, v)
    fd = (loss(shift(1.0)) - loss(shift(-1.0))) / (2 * eps)
    analytic = sum(jnp.vdot(g, d) for g, d in zip(jax.tree.leaves(grad), jax.tree.leaves(v)))
    np.testing.assert_allclose(analytic, fd, rtol=1e-6)


@pytest.mark.parametrize("cell_cls", [NoisyRNNCell, NoisyLSTMCell])
def test_power_gradient_keeps_the_forward_pass_and_lets_the_gradient_see_the_noise_power(cell_cls):
  """Same key: identical outputs; the parameter gradient gains the d(noise std)/d(W) term."""
  x = jax.random.normal(jax.random.key(3), (B, F))
  base = cell_cls(H, noise=NoiseConfig(snr_db=0.0))
  variables = base.init({"params": jax.random.key(0), "noise": jax.random.key(1)},
                        base.initial_carry(x[:, None]), x)

  def run(power_gradient):
    cell = cell_cls(H, noise=NoiseConfig(snr_db=0.0, power_gradient=power_gradient))

    def loss(params):
      _, out = cell.apply({"params": params}, cell.initial_carry(x[:, None]), x,
                          rngs={"noise": jax.random.key(2)})
      return jnp.sum(out ** 2), out

    (_, out), grads = jax.value_and_grad(loss, has_aux=True)(variables["params"])
    return out, grads

  out_stop, g_stop = run(False)
  out_flow, g_flow = run(True)
  np.testing.assert_array_equal(np.asarray(out_stop), np.asarray(out_flow))
  diff = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), g_stop, g_flow)
  assert diff["input_kernel"] > 1e-4  # the gradient now sees that the noise grows with x·W


# ----------------------------------------------------------------------------- converters
Q444 = ProductQuant(weight=QuantConfig(4, mode="dynamic"), dac=QuantConfig(4, mode="dynamic"),
                    adc=QuantConfig(4, mode="dynamic"))


def _on_own_grid(values, qmax=7):
  """Dynamic grid: the largest |value| is code ±qmax, every value a multiple of Δ = max/qmax."""
  values = np.asarray(values, np.float64)
  step = np.abs(values).max() / qmax
  if step == 0:
    return 0.0
  codes = values / step
  np.testing.assert_allclose(codes, np.round(codes), atol=1e-4)
  return step


def test_lstm_444_quantizes_x_t_and_h_prev_with_separate_dacs_each_on_its_own_grid():
  """The patent's layout: x_t and h_{t-1} have their own DACs (dac_input, dac_recurrent), each
  kernel its own weight quantizer and each array its own ADC. Here the inputs span ±3·|N(0,1)| and
  h_{t-1} (−1, 1): different ranges, different grids, at every step."""
  cell = NoisyLSTMCell(H, quant=Q444)
  x = 3 * jax.random.normal(jax.random.key(0), (B, T, F))
  carry = cell.initial_carry(x)
  variables = jax.jit(cell.init)(jax.random.key(1), carry, x[:, 0])
  assert set(variables) == {"params"}  # dynamic ranges keep no state
  step = jax.jit(lambda c, x_t: cell.apply(variables, c, x_t, capture_intermediates=True,
                                           mutable=["intermediates"]))
  for t in range(T):
    h_prev = carry[1]
    (carry, _), state = step(carry, x[:, t])
    got = {k: v["__call__"][0] for k, v in state["intermediates"].items() if k != "__call__"}
    assert sorted(got) == ["adc_input", "adc_recurrent", "dac_input", "dac_recurrent",
                           "weight_input", "weight_recurrent"]
    np.testing.assert_allclose(_on_own_grid(got["dac_input"]), np.abs(x[:, t]).max() / 7, rtol=1e-6)
    np.testing.assert_allclose(_on_own_grid(got["dac_recurrent"]), np.abs(h_prev).max() / 7,
                               rtol=1e-6)
    steps = [_on_own_grid(got[k]) for k in ("weight_input", "weight_recurrent", "adc_input",
                                           "adc_recurrent")]
    assert len(set(steps)) == 4 or t == 0  # (step 0: h_prev = 0, the recurrent product is 0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])  # (the RNN's products are the LSTM's code path)
def test_tracked_ranges_update_once_per_step_in_training_and_stay_in_evaluation(cell):
  q = ProductQuant(dac=QuantConfig(4, mode="tracked", momentum=0.5), adc=QuantConfig(
      4, mode="learned", bound=4.0), adc_noise=AdcNoise(0.5))
  model = RecurrentScan(cell, H, quant=q)
  x = jax.random.normal(jax.random.key(0), (B, T, F)) * jnp.arange(1, T + 1)[:, None]
  rngs = {"params": jax.random.key(1), "noise": jax.random.key(2)}
  variables = jax.jit(model.init)(rngs, x)
  assert int(variables["quant_ranges"]["cell"]["dac_input"]["count"]) == 0
  (_, ys), updates = jax.jit(functools.partial(model.apply, mutable=["quant_ranges"]))(
      variables, x, rngs=rngs)
  ranges = updates["quant_ranges"]["cell"]["dac_input"]
  expected = float(jnp.abs(x[:, 0]).max())
  for t in range(1, T):  # the first update takes the step's range, then the EMA
    expected = 0.5 * expected + 0.5 * float(jnp.abs(x[:, t]).max())
  assert int(ranges["count"]) == T and float(ranges["absmax"]) == pytest.approx(expected, rel=1e-6)
  trained = {**variables, **updates}
  _, ys_eval = jax.jit(model.apply)(trained, x, rngs=rngs)  # read-only in evaluation
  assert not np.allclose(ys_eval, ys) and np.isfinite(ys_eval).all()


def test_learned_converter_ranges_in_a_cell_need_an_initial_bound():
  q = ProductQuant(adc=QuantConfig(4, mode="learned"))
  with pytest.raises(ValueError, match=r"learned ADC range in a recurrent cell needs an initial "
                                       r"bound \(config.quant.adc_bound > 0\)"):
    RecurrentScan("lstm", H, quant=q).init(jax.random.key(0), jnp.ones((B, T, F)))
