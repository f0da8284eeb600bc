"""Tests of NoisyDense / NoisyConv: exact equality with nn.Dense / nn.Conv when off, noise draws,
bias after the noise, gradients, quantizer hook."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from freqnoise.analog import AnalogProduct, NoiseConfig, NoisyConv, NoisyDense
from freqnoise.analog.product_quant import ProductQuant, quant_from_config
from freqnoise.analog.quant import QuantConfig

X_DENSE = jax.random.normal(jax.random.key(0), (8, 16))
X_CONV = jax.random.normal(jax.random.key(1), (2, 9, 9, 4))

LAYERS = [
    (lambda **kw: NoisyDense(6, **kw), lambda: nn.Dense(6), X_DENSE),
    (lambda **kw: NoisyConv(5, (3, 3), **kw), lambda: nn.Conv(5, (3, 3)), X_CONV),
    (lambda **kw: NoisyConv(4, (3, 3), strides=2, padding="VALID", feature_group_count=2, **kw),
     lambda: nn.Conv(4, (3, 3), strides=2, padding="VALID", feature_group_count=2), X_CONV),
]


def _init_pair(noisy, plain, x):
  params = noisy().init(jax.random.key(2), x)
  plain_params = plain().init(jax.random.key(2), x)
  return params, plain_params


@pytest.mark.parametrize("noisy,plain,x", LAYERS)
def test_noise_off_is_bitwise_the_plain_layer(noisy, plain, x):
  params, plain_params = _init_pair(noisy, plain, x)
  # Same parameter names, shapes and initial values.
  assert jax.tree.map(np.asarray, params).keys() == plain_params.keys()
  jax.tree.map(np.testing.assert_array_equal, params, plain_params)
  expected = np.asarray(plain().apply(params, x))
  for noise in (None, NoiseConfig(snr_db=math.inf), NoiseConfig(kind="none"),
                NoiseConfig(snr_db=jnp.float32(jnp.inf))):
    out = noisy(noise=noise).apply(params, x, rngs={"noise": jax.random.key(3)})
    assert np.array_equal(np.asarray(out), expected)
    out_jit = jax.jit(lambda p: noisy(noise=noise).apply(p, x, rngs={"noise": jax.random.key(3)}))
    assert np.array_equal(np.asarray(out_jit(params)),
                          np.asarray(jax.jit(plain().apply)(params, x)))


@pytest.mark.parametrize("noisy,plain,x", LAYERS)
def test_noise_on_keeps_params_and_changes_output(noisy, plain, x):
  layer = noisy(noise=NoiseConfig(snr_db=0.0, weight_noise="additive", weight_sigma=0.1,
                                      weight_draw="read"))
  params = layer.init({"params": jax.random.key(2), "noise": jax.random.key(0)}, x)
  assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, noisy().init(
      jax.random.key(2), x))
  a = layer.apply(params, x, rngs={"noise": jax.random.key(7)})
  b = layer.apply(params, x, rngs={"noise": jax.random.key(7)})
  c = layer.apply(params, x, rngs={"noise": jax.random.key(8)})
  assert np.array_equal(np.asarray(a), np.asarray(b))
  assert not np.any(np.asarray(a) == np.asarray(c))


def test_noise_needs_the_noise_rng_stream():
  layer = NoisyDense(3, noise=NoiseConfig(snr_db=0.0))
  params = NoisyDense(3).init(jax.random.key(0), X_DENSE)
  with pytest.raises(Exception, match="noise"):
    layer.apply(params, X_DENSE)


def test_bias_is_added_after_the_noise():
  # With a zero kernel the noiseless product is 0, so its power is 0 and the noise is 0:
  # the output is exactly the bias. (If the bias were inside, P > 0 and the output would be noisy.)
  layer = NoisyDense(4, noise=NoiseConfig(snr_db=-10.0), kernel_init=nn.initializers.zeros,
                     bias_init=nn.initializers.constant(3.0))
  params = layer.init({"params": jax.random.key(0), "noise": jax.random.key(1)}, X_DENSE)
  out = layer.apply(params, X_DENSE, rngs={"noise": jax.random.key(2)})
  np.testing.assert_array_equal(np.asarray(out), np.full((8, 4), 3.0, np.float32))


def test_dense_noise_matches_the_definition_per_example():
  layer = NoisyDense(2048, noise=NoiseConfig(snr_db=3.0))
  x = jax.random.normal(jax.random.key(0), (64, 32))
  params = NoisyDense(2048).init(jax.random.key(1), x)
  clean = NoisyDense(2048).apply(params, x)
  noisy = layer.apply(params, x, rngs={"noise": jax.random.key(2)})
  y = np.asarray(clean - params["params"]["bias"], np.float64)
  n = np.asarray(noisy - clean, np.float64)
  ratio = np.mean(y**2) / np.mean(n**2)
  assert abs(ratio / 10**0.3 - 1) < 0.02


def test_conv_noise_is_per_output_position():
  layer = NoisyConv(512, (1, 1), use_bias=False, noise=NoiseConfig(snr_db=0.0))
  x = jnp.concatenate([jnp.ones((1, 1, 1, 3)), 100 * jnp.ones((1, 1, 1, 3))], axis=2)  # 2 positions
  params = layer.init({"params": jax.random.key(0), "noise": jax.random.key(1)}, x)
  clean = np.asarray(NoisyConv(512, (1, 1), use_bias=False).apply(params, x), np.float64)
  n = np.asarray(layer.apply(params, x, rngs={"noise": jax.random.key(2)}), np.float64) - clean
  rms_signal = np.sqrt(np.mean(clean**2, axis=-1))
  rms_noise = np.sqrt(np.mean(n**2, axis=-1))
  np.testing.assert_allclose(rms_noise / rms_signal, 1.0, rtol=0.15)
  assert rms_noise[0, 0, 1] / rms_noise[0, 0, 0] > 50


@pytest.mark.parametrize("weight_noise", ["none", "additive", "multiplicative"])
def test_gradients_flow_through_noisy_layers(weight_noise):
  noise = NoiseConfig(snr_db=5.0, weight_noise=weight_noise, weight_sigma=0.1, weight_draw="read")

  class Net(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = nn.relu(NoisyConv(4, (3, 3), noise=noise)(x))
      return NoisyDense(3, noise=noise)(x.reshape(x.shape[0], -1))

  params = Net().init({"params": jax.random.key(0), "noise": jax.random.key(1)}, X_CONV)
  loss = lambda p: jnp.sum(Net().apply(p, X_CONV, rngs={"noise": jax.random.key(2)})**2)
  grads = jax.grad(loss)(params)
  for g in jax.tree.leaves(grads):
    assert np.all(np.isfinite(np.asarray(g))) and np.any(np.asarray(g) != 0)
  # The noise enters additively with power under stop_gradient, so the gradient of a linear
  # readout wrt the bias equals the clean one.
  lin = lambda p, n: jnp.sum(NoisyDense(3, noise=n).apply(p, X_DENSE, rngs={"noise": jax.random.key(2)}))
  p = NoisyDense(3).init(jax.random.key(0), X_DENSE)
  g_noisy = jax.grad(lin)(p, NoiseConfig(snr_db=0.0))
  g_clean = jax.grad(lin)(p, None)
  np.testing.assert_allclose(g_noisy["params"]["kernel"], g_clean["params"]["kernel"])


def test_snr_is_traceable_and_vmappable():
  params = NoisyDense(6).init(jax.random.key(0), X_DENSE)
  def run(snr, key):
    return NoisyDense(6, noise=NoiseConfig(snr_db=snr)).apply(params, X_DENSE, rngs={"noise": key})
  keys = jax.random.split(jax.random.key(1), 3)
  snrs = jnp.array([0.0, 10.0, jnp.inf])
  out = jax.jit(jax.vmap(run))(snrs, keys)
  for i in range(3):
    np.testing.assert_allclose(out[i], run(snrs[i], keys[i]), rtol=1e-6, atol=1e-6)
  # SNR = inf is noiseless; only XLA's choice of fused kernel under jit+vmap may reorder the sum.
  np.testing.assert_allclose(out[2], NoisyDense(6).apply(params, X_DENSE), rtol=1e-6, atol=1e-6)


def test_quantizer_hook_wraps_the_product_before_the_bias():
  calls = []
  def dac(x):
    calls.append("dac")
    return jnp.round(x)
  def adc(y):
    calls.append("adc")
    return jnp.zeros_like(y)
  layer = NoisyDense(3, input_quantizer=dac, output_quantizer=adc,
                     bias_init=nn.initializers.constant(2.0))
  params = layer.init(jax.random.key(0), X_DENSE)
  out = layer.apply(params, X_DENSE)
  np.testing.assert_array_equal(np.asarray(out), np.full((8, 3), 2.0, np.float32))
  assert calls[-2:] == ["dac", "adc"]


def test_bad_noise_argument_is_a_clear_error():
  with pytest.raises(TypeError, match="NoiseConfig"):
    NoisyDense(3, noise={"snr_db": 0.0}).init(jax.random.key(0), X_DENSE)


@pytest.mark.parametrize("layer,example,n", [
    (NoisyDense(4), (5,), 5),                   # N = one input vector's features
    (NoisyConv(4, (1, 1)), (3, 3, 5), 3 * 3 * 5),  # N = one example's features
], ids=["dense", "conv"])
def test_a_learned_dac_step_gradient_does_not_depend_on_the_batch(layer, example, n):
  """LSQ's g = 1/sqrt(N·qmax) with N per example, at batch 1 and 256 alike (issue 24 #11: N
  counted the batch). L = Σ c·y; the DAC's output cotangent is c·Wᵀ (a 1×1 kernel: per pixel), so
  dL/dΔ = g·Σ (c·Wᵀ)·(k − x/Δ inside, k outside), Δ = 0.5, qmax = 3."""
  layer = layer.clone(quant=ProductQuant(dac=QuantConfig(3, mode="learned", bound=1.5)))
  rng = np.random.default_rng(0)
  w = rng.standard_normal((5, 4)).astype(np.float32)
  kernel = w if isinstance(layer, NoisyDense) else w[None, None]
  for batch in (1, 256):
    x = (rng.standard_normal((batch,) + example) * 1.5).astype(np.float32)
    c = rng.standard_normal((batch,) + example[:-1] + (4,)).astype(np.float32)
    loss = lambda s: jnp.sum(c * layer.apply({"params": {
        "kernel": kernel, "bias": jnp.zeros(4), "analog": {"dac": {"step": s}}}}, x))
    dstep = jax.jit(jax.grad(loss))(jnp.float32(0.5))
    u = x / 0.5
    k = np.clip(np.round(u), -3, 3)
    unscaled = np.sum((c @ w.T) * np.where(np.abs(u) <= 3, k - u, k))
    np.testing.assert_allclose(dstep / unscaled, 1 / math.sqrt(n * 3), rtol=2e-5)


def _convert(v, step, bound):
  """aihwkit's converter in NumPy: round to the step, clamp to ±bound."""
  return np.clip(np.round(v / np.float32(step)) * np.float32(step), -bound, bound)


def test_aihwkit_conv_scales_each_example_as_a_whole():
  """With conv_alpha='example' a convolution's α is one per example (max|x| over H, W, C):
  NoisyConv (1×1, so the product is a matmul per pixel) equals α·ADC(DAC(x/α)·K) with α per
  example, bit for bit (dyadic: Δ_DAC = 1 (inp_bound 1, as aihwkit's noise management needs),
  Δ_ADC = 1/2, K in multiples of 1/8)."""
  q = quant_from_config({"preset": "aihwkit", "aihwkit": {
      "inp_res": 1 / 2, "inp_bound": 1.0, "out_res": 1 / 14, "out_bound": 3.5, "out_noise": 0.0,
      "conv_alpha": "example"}})
  rng = np.random.default_rng(3)
  x = rng.standard_normal((2, 3, 3, 5)).astype(np.float32)
  x[0, 0, 0] *= 8  # one pixel sets example 0's α
  k = (rng.integers(-8, 9, (5, 4)) / 8).astype(np.float32)
  y = jax.jit(NoisyConv(4, (1, 1), quant=q).apply)(
      {"params": {"kernel": k[None, None], "bias": jnp.zeros(4)}}, x)
  alpha = np.max(np.abs(x), axis=(1, 2, 3), keepdims=True)
  ref = _convert(_convert(x / alpha, 1.0, 1.0) @ k, 0.5, 3.5) * alpha
  np.testing.assert_array_equal(np.asarray(y), ref)


def test_an_unknown_product_layout_is_a_clear_error():
  with pytest.raises(ValueError, match="AnalogProduct.layout must be one of"):
    AnalogProduct(jnp.dot, "matmul").init(jax.random.key(0), X_DENSE, jnp.ones((16, 3)))
