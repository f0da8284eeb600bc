"""aihwkit's tile periphery (freqnoise.analog.tiles): tiles, iterative bound management, clip-only
converters, per-patch α of convolutions and exact zeros, each against a NumPy transcription of
aihwkit 1.1.0's C++ `forwardVector` loop (noise off), and the configuration that selects them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from freqnoise.analog.layers import NoisyConv, NoisyDense
from freqnoise.analog.noise import NoiseConfig
from freqnoise.analog.product_quant import quant_from_config
from freqnoise.analog.tiles import Periphery, split_sizes

f32 = np.float32


def _step(res, bound):
  return f32(f32(1 / res if res > 1 else res) * f32(2 * bound)) if res > 0 else f32(0)


def _vector(x, w, inp_res, inp_bound, out_res, out_bound, bm=True, factor=1000, bm_res=0.25):
  """C++ `ForwardBackwardPassIOManaged::forwardVector` of one vector x [F] on one tile w [F, O]
  (abs-max noise management, no noise), line by line in float32."""
  di, do = _step(inp_res, inp_bound), _step(out_res, out_bound)
  alpha = f32(np.abs(x).max())
  if alpha <= 0:
    return np.zeros(w.shape[1], f32)
  reduction = f32(0.5)
  while True:
    reduction *= f32(2)
    scale = f32(f32(1) / alpha) / reduction if bm else f32(1) / alpha
    v = x * scale
    v = np.rint(v / di) * di if di > 0 else v
    y = np.clip(v, -f32(inp_bound), f32(inp_bound)) @ w
    y = np.rint(y / do) * do if do > 0 else y
    passed = not np.any((y > out_bound) | (y < -out_bound))
    y = np.clip(y, -f32(out_bound), f32(out_bound))
    if not bm or passed or int(reduction) > factor or (di > 0 and reduction > f32(bm_res) / di):
      return y * (f32(1) / scale)


def _reference(x, w, max_in=512, max_out=512, **io):
  """aihwkit's `TileModuleArray.forward`: split, each tile per vector, input chunks summed."""
  ins, outs = split_sizes(w.shape[0], max_in), split_sizes(w.shape[1], max_out)
  cin, cout = np.cumsum([0] + ins), np.cumsum([0] + outs)
  y = np.zeros((x.shape[0], w.shape[1]), f32)
  for i in range(len(ins)):
    for j in range(len(outs)):
      xi, wij = x[:, cin[i]:cin[i + 1]], w[cin[i]:cin[i + 1], cout[j]:cout[j + 1]]
      y[:, cout[j]:cout[j + 1]] += np.stack([_vector(v, wij, **io) for v in xi])
  return y


def _dense(x, w, **aihwkit):
  q = quant_from_config({"preset": "aihwkit", "aihwkit": {"out_noise": 0.0, **aihwkit}})
  params = {"params": {"kernel": jnp.asarray(w), "bias": jnp.zeros(w.shape[1])}}
  return np.asarray(jax.jit(NoisyDense(w.shape[1], quant=q).apply)(params, jnp.asarray(x)))


def _data(seed, n, f, o, w_scale=1.0):
  rng = np.random.default_rng(seed)
  return (rng.standard_normal((n, f)).astype(f32),
          (rng.standard_normal((f, o)) * w_scale).astype(f32))


IO = dict(inp_res=1 / 126, inp_bound=1.0, out_res=1 / 510, out_bound=12.0)


def test_split_sizes_are_aihwkits_near_equal_chunks():
  assert split_sizes(784, 512) == [392, 392]
  assert split_sizes(1000, 256) == [250, 250, 250, 250]
  assert split_sizes(513, 512) == [257, 256]
  assert split_sizes(300, 512) == [300] and split_sizes(300, 0) == [300]


def test_bound_management_rounds_follow_the_cpp_limits():
  """r = 1, 2, 4, …: the default DAC (Δ = 2/126) stops after r = 16 > 0.25/Δ = 15.75; without a
  DAC only int(r) > max_bm_factor = 1000 stops it (r = 1024, 11 products)."""
  assert Periphery(inp_step=float(_step(1 / 126, 1.0))).bm_rounds == 5
  assert Periphery(inp_step=0.0).bm_rounds == 11
  assert Periphery(bound_management="none").bm_rounds == 1


def test_a_784_input_layer_is_two_tiles_each_with_its_own_alpha():
  """Issue 28 #1: 784 inputs are two tiles of 392, each scaled by its own α, summed digitally;
  one product over all 784 (max_input_size=0) gives other numbers."""
  x, w = _data(0, 16, 784, 10, 0.05)
  x[:, :392] *= 0.01  # the first tile's inputs are much smaller: its own α keeps their precision
  y = _dense(x, w, **IO)
  np.testing.assert_allclose(y, _reference(x, w, **IO), rtol=0, atol=2e-5)
  one = _dense(x, w, max_input_size=0, **IO)
  assert np.abs(one - y).max() > 1e-2


def test_outputs_are_split_too():
  x, w = _data(1, 8, 40, 30, 0.3)
  io = dict(IO, out_bound=2.0)  # clipping on some tiles only: bound management per tile
  y = _dense(x, w, max_input_size=16, max_output_size=12, **io)
  np.testing.assert_allclose(y, _reference(x, w, 16, 12, **io), rtol=0, atol=2e-5)


def test_iterative_bound_management_reruns_clipping_vectors_at_half_input():
  """Issue 28 #3: outputs beyond ±out_bound make aihwkit re-run that vector with the input
  halved; without it the output stays clipped at ±out_bound·α."""
  x, w = _data(2, 32, 64, 8, 1.0)
  io = dict(IO, out_bound=4.0)
  y = _dense(x, w, **io)
  ref = _reference(x, w, **io)
  np.testing.assert_allclose(y, ref, rtol=0, atol=2e-5)
  clipped = _dense(x, w, bound_management="none", **io)
  np.testing.assert_allclose(clipped, _reference(x, w, bm=False, **io), rtol=0, atol=2e-5)
  assert np.abs(clipped - y).max() > 1.0


def test_top_adc_code_counts_as_clipping_in_float32():
  """aihwkit's default ADC step float32(1/510)·24 = 0.04705883 puts code 255 at 12.000001 > 12:
  an output rounding to the top code already triggers bound management."""
  w = np.zeros((2, 1), f32)
  w[0, 0] = 11.99  # code 255 (254.8 → 255), not beyond the range in exact arithmetic
  x = np.array([[1.0, 0.0]], f32)
  y = _dense(x, w, **IO)
  assert y[0, 0] != pytest.approx(12.0, abs=0.02)  # re-run at r = 2: 5.995 → code 127 (·2)
  np.testing.assert_allclose(y, _reference(x, w, **IO), rtol=0, atol=1e-6)


def test_res_zero_is_infinite_resolution_but_still_clipped():
  """Issue 28 #2: res <= 0 removes the rounding, not the range."""
  x, w = _data(3, 16, 20, 6, 1.5)
  io = dict(inp_res=0.0, inp_bound=1.0, out_res=-1.0, out_bound=3.0)
  y = _dense(x, w, bound_management="none", **io)
  ref = _reference(x, w, bm=False, **io)
  np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-6)
  assert np.isclose(np.abs(y / np.abs(x).max(1, keepdims=True)), 3.0).any()  # clipped


def test_a_zero_input_vector_gives_exact_zeros_even_with_output_noise():
  """Issue 28 #5: aihwkit's tile short-cuts α = 0 to zeros, no noise; 'noisy' keeps ours."""
  x, w = _data(4, 4, 8, 5)
  x[1] = 0
  q = quant_from_config({"preset": "aihwkit"})
  layer = NoisyDense(5, use_bias=False, quant=q)
  params = {"params": {"kernel": jnp.asarray(w)}}
  y = np.asarray(layer.apply(params, x, rngs={"noise": jax.random.key(0)}))
  assert np.all(y[1] == 0) and np.all(y[0] != 0)
  q = quant_from_config({"preset": "aihwkit", "aihwkit": {"zero_vectors": "noisy"}})
  y = np.asarray(NoisyDense(5, use_bias=False, quant=q).apply(
      params, x, rngs={"noise": jax.random.key(0)}))
  assert np.any(y[1] != 0)


def test_a_convolution_scales_each_patch_by_its_own_alpha():
  """Issue 28 #4: aihwkit unfolds a convolution's input (torch's (C, kh, kw) order): α, tiles and
  bound management are per patch. The layer equals the tile reference on the unfolded patches."""
  rng = np.random.default_rng(5)
  x = rng.standard_normal((2, 6, 7, 3)).astype(f32)
  x[0, :3] *= 0.02  # a low-amplitude region: per-example α would waste the DAC's levels there
  k = (rng.standard_normal((3, 3, 3, 4)) * 0.4).astype(f32)
  io = dict(IO, out_bound=1.5)
  q = quant_from_config({"preset": "aihwkit", "aihwkit": {"out_noise": 0.0, "max_input_size": 10,
                                                          **io}})
  conv = NoisyConv(4, (3, 3), strides=(1, 2), padding=((1, 1), (0, 1)), use_bias=False, quant=q)
  y = np.asarray(jax.jit(conv.apply)({"params": {"kernel": jnp.asarray(k)}}, x))
  patches = np.asarray(jax.lax.conv_general_dilated_patches(
      x, (3, 3), (1, 2), ((1, 1), (0, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")))
  ref = _reference(patches.reshape(-1, 27), k.transpose(2, 0, 1, 3).reshape(27, 4), 10, **io)
  np.testing.assert_allclose(y, ref.reshape(y.shape), rtol=0, atol=2e-5)
  q = quant_from_config({"preset": "aihwkit", "aihwkit": {"out_noise": 0.0, "conv_alpha": "example",
                                                          "max_input_size": 10, **io}})
  example = np.asarray(conv.clone(quant=q).apply({"params": {"kernel": jnp.asarray(k)}}, x))
  assert np.abs(example - y)[0, :2].max() > 0.01


def test_noise_on_matches_the_reference_distribution_and_gradients_flow():
  """With out_noise the output of a clipping tile is the accepted round's: its mean over draws is
  the noiseless reference's within sampling error; the gradient is the accepted round's product."""
  x, w = _data(6, 4, 12, 3, 1.0)
  q = quant_from_config({"preset": "aihwkit", "aihwkit": {"out_bound": 3.0, "out_noise": 0.02}})
  layer = NoisyDense(3, use_bias=False, quant=q)
  params = {"params": {"kernel": jnp.asarray(w)}}
  draws = jax.jit(jax.vmap(lambda k: layer.apply(params, x, rngs={"noise": k})))(
      jax.random.split(jax.random.key(1), 400))
  ref = _reference(x, w, **dict(IO, out_bound=3.0))
  np.testing.assert_allclose(np.asarray(draws).mean(0), ref, atol=0.05)
  grad = jax.grad(lambda v: jnp.sum(layer.apply({"params": {"kernel": v}}, x,
                                                rngs={"noise": jax.random.key(2)})))(jnp.asarray(w))
  assert np.all(np.isfinite(grad)) and np.abs(grad).sum() > 0


def test_snr_noise_and_tiles_compose():
  x, w = _data(7, 4, 20, 5)
  q = quant_from_config({"preset": "aihwkit", "aihwkit": {"max_input_size": 8, "out_noise": 0.0}})
  layer = NoisyDense(5, use_bias=False, quant=q, noise=NoiseConfig(snr_db=10.0))
  params = {"params": {"kernel": jnp.asarray(w)}}
  a = layer.apply(params, x, rngs={"noise": jax.random.key(0)})
  b = layer.apply(params, x, rngs={"noise": jax.random.key(1)})
  assert np.abs(np.asarray(a - b)).max() > 0
