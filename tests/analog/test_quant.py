"""Tests of the uniform quantizers: levels, idempotence, clipping, straight-through / LSQ / PACT
gradients, stochastic rounding, tracked ranges, integer export, aihwkit and Qwix conventions."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from freqnoise.analog.layers import NoisyDense
from freqnoise.analog.quant import (COLLECTION, Grid, QuantConfig, fake_quant, stateless_grid,
                                    stateless_quantizer)
from freqnoise.analog.quant_export import dequantize, export_weights, int_matmul
from freqnoise.analog.quant_module import Quantizer, stored_grid

f32 = np.float32
_floats = st.floats(-8, 8, width=32, allow_nan=False, allow_subnormal=False)


def _normal(seed, shape):
  """Test data from NumPy (no threefry compilations for each new shape)."""
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _step(cfg):
  """The quantizer's own step Δ, checked against NumPy: XLA on CPU divides by multiplying with the
  reciprocal, so a quotient may be 1 ulp from NumPy's correctly rounded one."""
  step = f32(stateless_grid(jnp.zeros(()), cfg).step)
  bound = cfg.bound[1] - cfg.bound[0] if isinstance(cfg.bound, tuple) else cfg.bound
  np.testing.assert_array_max_ulp(step, f32(bound) / f32(cfg.qmax), maxulp=1)
  return step


def _ref_levels(cfg):
  """NumPy reference: every value the quantizer can output: (code − z)·Δ for every code."""
  if cfg.signed and cfg.bits == 1:
    return np.array([-cfg.bound, cfg.bound], f32)
  return np.arange(cfg.qmin, cfg.qmax + 1).astype(f32) * _step(cfg)


@pytest.mark.parametrize("bits,signed,levels", [(1, True, 2), (2, True, 3), (3, True, 7),
                                                 (4, True, 15), (8, True, 255), (1, False, 2),
                                                 (2, False, 4), (4, False, 16)])
def test_levels_count_and_values(bits, signed, levels):
  cfg = QuantConfig(bits=bits, signed=signed, bound=1.5)
  x = jnp.linspace(-3, 3, 200_001, dtype=jnp.float32)
  out = np.unique(np.asarray(fake_quant(x, cfg)))
  ref = _ref_levels(cfg)
  assert cfg.levels == levels == len(ref)
  np.testing.assert_array_equal(out, ref)


def test_binary_is_sign_with_sign_of_zero_positive():
  y = fake_quant(jnp.array([-2.0, -1e-30, 0.0, 1e-30, 0.3]), QuantConfig(bits=1, bound=0.5))
  np.testing.assert_array_equal(y, [-0.5, -0.5, 0.5, 0.5, 0.5])


def test_unsigned_range_gets_an_exact_zero_and_a_zero_point():
  cfg = QuantConfig(bits=2, signed=False, bound=(-1.0, 2.0))  # Δ = 1, zero point 1: {-1, 0, 1, 2}
  y = fake_quant(jnp.array([-5.0, -0.4, 0.0, 0.6, 1.4, 9.0]), cfg)
  np.testing.assert_array_equal(y, [-1, 0, 0, 1, 1, 2])


@pytest.mark.parametrize("signed", [True, False])
def test_an_all_zero_tensor_stays_zero_with_a_dynamic_range(signed):
  cfg = QuantConfig(bits=4, signed=signed, mode="dynamic", per_channel=True)
  w = jnp.zeros((3, 2)).at[:, 1].set(1.0)
  np.testing.assert_array_equal(fake_quant(w, cfg), w)


@settings(max_examples=40, deadline=None)
@given(st.lists(_floats, min_size=16, max_size=16), st.integers(1, 16), st.booleans(),
       st.floats(0.01, 10))
def test_idempotent(xs, bits, signed, bound):
  cfg = QuantConfig(bits=bits, signed=signed, bound=bound if signed else (-bound / 3, bound))
  y = fake_quant(jnp.array(xs, jnp.float32), cfg)
  np.testing.assert_array_equal(fake_quant(y, cfg), y)


@settings(max_examples=40, deadline=None)
@given(st.lists(_floats, min_size=16, max_size=16), st.integers(2, 12), st.floats(0.1, 4))
def test_clips_to_the_range_and_rounds_to_nearest_inside(xs, bits, bound):
  cfg = QuantConfig(bits=bits, bound=bound)
  x = np.array(xs, f32)
  y = np.asarray(fake_quant(jnp.asarray(x), cfg))
  step = _step(cfg)
  top = f32(cfg.qmax) * step
  assert np.all(np.abs(y) <= top)
  inside = np.abs(x) <= top
  assert np.all(np.abs(y - x)[inside] <= step / 2 * (1 + 1e-5))
  np.testing.assert_array_equal(y[~inside], np.sign(x[~inside]) * top)


@pytest.mark.parametrize("cfg,x,inside", [
    (QuantConfig(bits=4, bound=1.0), [-3.0, -1.0, -0.3, 0.0, 0.7, 1.0, 1.2], [0, 1, 1, 1, 1, 1, 0]),
    (QuantConfig(bits=4, signed=False, bound=2.0), [-0.5, 0.0, 1.3, 2.0, 2.5], [0, 1, 1, 1, 0]),
    (QuantConfig(bits=1, bound=1.0), [-1.5, -0.2, 0.9, 1.1], [0, 1, 1, 0]),
])
def test_straight_through_gradient_is_one_inside_zero_outside(cfg, x, inside):
  g = jax.grad(lambda v: jnp.sum(fake_quant(v, cfg)))(jnp.array(x))
  np.testing.assert_array_equal(g, np.array(inside, f32))


@pytest.mark.parametrize("bits,axis", [(4, -1), (8, 0), (12, 1)])
def test_per_channel_scales_are_max_abs_over_qmax(bits, axis):
  w = np.asarray(_normal(0, (24, 10)), f32)
  cfg = QuantConfig(bits, mode="dynamic", per_channel=axis)
  codes, scales = export_weights(jnp.asarray(w), cfg)
  other = 1 - axis % 2
  np.testing.assert_array_max_ulp(scales, np.max(np.abs(w), other, keepdims=True) /
                                  f32(2**(bits - 1) - 1), maxulp=1)  # see _step
  assert codes.dtype == (jnp.int8 if bits <= 8 else jnp.int16)
  assert np.max(np.abs(codes)) == 2**(bits - 1) - 1


@pytest.mark.parametrize("bits", [1, 3])
def test_stochastic_rounding_is_unbiased_and_a_function_of_the_key(bits):
  cfg = QuantConfig(bits=bits, bound=1.0, stochastic=True)
  x = jnp.array([-0.9, -0.55, -0.1, 0.2, 0.37, 0.71, 0.99], jnp.float32)
  draws = 20_000
  y = np.asarray(fake_quant(jnp.broadcast_to(x, (draws, x.size)), cfg, key=jax.random.key(1)),
                 np.float64)
  step = 1.0 / cfg.qmax
  if bits == 1:  # ±1 with P(+1) = (1 + x)/2
    p, gap = (1 + np.asarray(x, np.float64)) / 2, 2.0
  else:  # the two neighbouring levels, the upper one with probability frac(x/Δ)
    u = np.asarray(x, np.float64) / step
    p, gap = u - np.floor(u), step
  sigma = gap * np.sqrt(p * (1 - p) / draws)
  assert np.all(np.abs(y.mean(0) - np.asarray(x)) <= 3 * sigma)
  assert set(np.unique(y)) <= set(_ref_levels(QuantConfig(bits=bits, bound=1.0)).tolist())
  again = fake_quant(jnp.broadcast_to(x, (draws, x.size)), cfg, key=jax.random.key(1))
  other = fake_quant(jnp.broadcast_to(x, (draws, x.size)), cfg, key=jax.random.key(2))
  np.testing.assert_array_equal(again, y.astype(f32))
  assert not np.array_equal(other, again)


def test_stochastic_rounding_without_a_key_is_an_error():
  cfg = QuantConfig(bits=4, bound=1.0, stochastic=True)
  with pytest.raises(ValueError, match="needs a key"):
    fake_quant(jnp.ones(3), cfg)
  with pytest.raises(ValueError, match="needs a key"):
    stateless_quantizer(cfg)
  q = Quantizer(cfg)
  variables = q.init(jax.random.key(0), jnp.ones(3))
  with pytest.raises(ValueError, match="RNG key for the 'noise' stream"):
    q.apply(variables, jnp.ones(3))
  y = q.apply(variables, jnp.full(3, 0.5), rngs={"noise": jax.random.key(3)})
  step = _step(QuantConfig(bits=4, bound=1.0))
  assert set(np.asarray(y).tolist()) <= {f32(3) * step, f32(4) * step}


def test_tracked_range_is_an_ema_initialised_from_the_first_training_batch():
  cfg = QuantConfig(bits=8, signed=False, per_channel=True, mode="tracked", momentum=0.9)
  q = Quantizer(cfg)
  a = _normal(0, (32, 5))
  b = 3 * _normal(1, (32, 5)) + 1
  variables = q.init(jax.random.key(0), jnp.zeros((32, 5)), train=True)
  assert set(variables) == {COLLECTION}  # not 'params': out of the optimizer's reach
  assert int(variables[COLLECTION]["count"]) == 0  # init does not update
  _, upd = q.apply(variables, a, train=True, mutable=[COLLECTION])
  y, upd = q.apply(upd, b, train=True, mutable=[COLLECTION])
  an, bn = np.asarray(a), np.asarray(b)
  m, one_m = f32(0.9), f32(1 - 0.9)
  np.testing.assert_array_equal(upd[COLLECTION]["min"], m * an.min(0) + one_m * bn.min(0))
  np.testing.assert_array_equal(upd[COLLECTION]["max"], m * an.max(0) + one_m * bn.max(0))
  assert int(upd[COLLECTION]["count"]) == 2
  np.testing.assert_array_equal(y, fake_quant(b, cfg, stored_grid(cfg, upd)))
  # Evaluation, or training with the collection immutable, uses the stored range as it is.
  for train, mutable in ((False, [COLLECTION]), (True, False)):
    out = q.apply(upd, 10 * b, train=train, mutable=mutable)
    if mutable:
      out, new = out
      assert int(new[COLLECTION]["count"]) == 2
    np.testing.assert_array_equal(out, fake_quant(10 * b, cfg, stored_grid(cfg, upd)))


def test_tracked_signed_range_is_an_ema_of_max_abs():
  q = Quantizer(QuantConfig(bits=4, mode="tracked", momentum=0.5), train=True)
  v = q.init(jax.random.key(0), jnp.zeros(4))
  _, v = q.apply(v, jnp.array([1.0, -4.0, 2.0, 0.0]), mutable=[COLLECTION])
  _, v = q.apply(v, jnp.array([1.0, -1.0, 2.0, 0.0]), mutable=[COLLECTION])
  assert float(v[COLLECTION]["absmax"]) == 0.5 * 4 + 0.5 * 2


def test_learned_params_live_in_params():
  v = Quantizer(QuantConfig(bits=4, mode="learned", per_channel=True)).init(
      jax.random.key(0), jnp.arange(12.0).reshape(3, 4) - 5)
  assert set(v) == {"params"} and v["params"]["step"].shape == (4,)
  # LSQ's init: 2·mean|x|/sqrt(qmax) per channel.
  x = np.arange(12.0, dtype=f32).reshape(3, 4) - 5
  np.testing.assert_allclose(v["params"]["step"], 2 * np.abs(x).mean(0) / np.sqrt(7), rtol=1e-6)


def test_lsq_gradients_match_the_paper():
  # 3 bits signed: qmax = 3, step 0.5. x/Δ = [-6.2, -1.6, 0.4, 1.4, 2.8, 10] -> codes
  # [-3, -2, 0, 1, 3, 3], inside = [0, 1, 1, 1, 1, 0]. dL/dΔ for L = Σ c·y, c = 1..6, is
  # g · Σ c·(k − x/Δ inside, k outside) = g·(−3 − 0.8 − 1.2 − 1.6 + 1.0 + 18) = 12.4·g,
  # g = 1/sqrt(N·qmax) = 1/sqrt(18).
  q = Quantizer(QuantConfig(bits=3, mode="learned", bound=1.5))
  x = jnp.array([-3.1, -0.8, 0.2, 0.7, 1.4, 5.0])
  c = jnp.arange(1.0, 7.0)
  v = q.init(jax.random.key(0), x)
  assert float(v["params"]["step"]) == 0.5
  gv, gx = jax.grad(lambda v, x: jnp.sum(c * q.apply(v, x)), argnums=(0, 1))(v, x)
  np.testing.assert_allclose(gv["params"]["step"], 12.4 / math.sqrt(18), rtol=1e-6)
  np.testing.assert_array_equal(gx, [0, 2, 3, 4, 5, 0])
  # The same as autodiff through the paper's formulation y = round_ste(clip(x/s, -3, 3))·s.
  def paper(s):
    v = jnp.clip(x / s, -3, 3)
    return jnp.sum(c * (v + jax.lax.stop_gradient(jnp.round(v) - v)) * s) / math.sqrt(18)
  np.testing.assert_allclose(gv["params"]["step"], jax.grad(paper)(0.5), rtol=1e-6)


def _lsq_scale(q: Quantizer, x: np.ndarray, seed: int = 0) -> np.ndarray:
  """LSQ's g of `q` on x at Δ = 0.5: dL/dΔ for L = Σ c·q(x) over Σ c·(k − x/Δ inside, k outside)
  (NumPy)."""
  c = np.random.default_rng(seed).standard_normal(x.shape).astype(f32)
  step = np.full(x.shape[-1:] if q.config.per_channel else (), 0.5, f32)
  dstep = jax.jit(jax.grad(lambda s: jnp.sum(c * q.apply({"params": {"step": s}}, x))))(step)
  u = x / step
  k = np.clip(np.round(u), -q.config.qmax, q.config.qmax)
  r = c * np.where(np.abs(u) <= q.config.qmax, k - u, k)
  axes = tuple(range(x.ndim - (step.ndim > 0)))  # per channel: the last axis is kept
  return np.asarray(dstep) / r.sum(axes)


@pytest.mark.parametrize("layout,example,per_channel,n", [
    ("dense", (5,), None, 5),          # [B, F]: one input vector's F features
    ("dense", (4, 5), None, 5),        # [B, T, F]: each time step is its own vector
    ("conv", (3, 3, 2), None, 18),     # [B, H, W, C]: the whole example
    ("conv", (3, 3, 2), True, 9),      # per channel: one channel of the example
])
def test_lsq_step_gradient_scale_counts_one_example_not_the_batch(layout, example, per_channel, n):
  """Esser et al. 2020: g = 1/sqrt(N·qmax), N = the features of one example (issue 24 #11: N
  counted the batch, so g fell as 1/sqrt(batch) and QAT depended on the batch size)."""
  q = Quantizer(QuantConfig(bits=3, mode="learned", bound=1.5, per_channel=per_channel),
                layout=layout)  # Δ = 0.5
  rng = np.random.default_rng(1)
  for batch in (1, 256):
    x = (rng.standard_normal((batch,) + example) * 1.5).astype(f32)
    np.testing.assert_allclose(_lsq_scale(q, x), 1 / math.sqrt(n * 3), rtol=2e-5)


@pytest.mark.parametrize("per_channel,n", [(None, 7 * 5), (True, 7)])
def test_lsq_weight_step_gradient_scale_counts_the_weights(per_channel, n):
  """Weights (no layout): N = the weights sharing the step, N_W (per channel: a column's)."""
  q = Quantizer(QuantConfig(bits=3, mode="learned", bound=1.5, per_channel=per_channel))
  x = (np.random.default_rng(2).standard_normal((7, 5)) * 1.5).astype(f32)
  np.testing.assert_allclose(_lsq_scale(q, x), 1 / math.sqrt(n * 3), rtol=2e-5)


@pytest.mark.parametrize("signed,dalpha,dx", [(False, 11.0, [0, 2, 3, 4, 0, 0]),
                                               (True, 11.0 - 1.0, [0, 2, 3, 4, 0, 0])])
def test_pact_gradients_match_the_paper(signed, dalpha, dx):
  # α = 1.5: dα = Σ c·[x > α] (signed: − Σ c·[x < −α]); dx = c inside the range.
  q = Quantizer(QuantConfig(bits=2 if not signed else 3, signed=signed, mode="learned",
                            learned="pact", bound=1.5))
  x = jnp.array([-2.0 if signed else -1.0, 0.2, 0.9, 1.5, 2.0, 4.0])
  c = jnp.arange(1.0, 7.0)
  v = q.init(jax.random.key(0), x)
  gv, gx = jax.grad(lambda v, x: jnp.sum(c * q.apply(v, x)), argnums=(0, 1))(v, x)
  assert float(gv["params"]["alpha"]) == dalpha
  np.testing.assert_array_equal(gx, dx)


@pytest.mark.parametrize("bits", [2, 4, 8, 16])
def test_integer_export_equals_fake_quant_exactly(bits):
  cfg = QuantConfig(bits=bits, mode="dynamic", per_channel=True)
  w = _normal(0, (64, 16))
  x = _normal(1, (8, 64))
  codes, scales = export_weights(w, cfg)
  fq = fake_quant(w, cfg)
  np.testing.assert_array_equal(dequantize(codes, scales), fq)
  np.testing.assert_array_equal(x @ dequantize(codes, scales), x @ fq)
  np.testing.assert_allclose(int_matmul(x, codes, scales), x @ fq, rtol=1e-5, atol=1e-5)


def test_jitted_export_equals_eager_fake_quant():
  cfg = QuantConfig(bits=6, mode="dynamic", per_channel=True)
  w = _normal(2, (64, 16))
  codes, scales = jax.jit(export_weights, static_argnums=1)(w, cfg)
  np.testing.assert_array_equal(dequantize(codes, scales), fake_quant(w, cfg))


def test_int_matmul_is_exact_for_power_of_two_scales():
  cfg = QuantConfig(bits=4, mode="dynamic", per_channel=True)
  grid = Grid(2.0**-jnp.arange(16.0), jnp.zeros(16))
  w = _normal(0, (64, 16))
  x = _normal(1, (8, 64))
  codes, scales = export_weights(w, cfg, grid)
  np.testing.assert_array_equal(int_matmul(x, codes, scales), x @ fake_quant(w, cfg, grid))


def test_export_of_a_learned_quantizer_uses_its_step():
  cfg = QuantConfig(bits=4, mode="learned", per_channel=True)
  w = _normal(0, (32, 8))
  v = Quantizer(cfg).init(jax.random.key(0), w)
  codes, scales = export_weights(w, cfg, stored_grid(cfg, v))
  np.testing.assert_array_equal(dequantize(codes, scales), Quantizer(cfg).apply(v, w))


def test_aihwkit_res_one_fourteenth_is_four_bits():
  assert QuantConfig.from_aihwkit(1 / 14, 1.0) == QuantConfig(bits=4, bound=1.0)
  assert QuantConfig.from_aihwkit(14, 2.0) == QuantConfig(bits=4, bound=2.0)  # res > 1: steps
  assert QuantConfig.from_aihwkit(1 / 254, 1.0).bits == 8  # aihwkit's default DAC: 7 bits
  assert QuantConfig.from_aihwkit(1 / (2**9 - 2), 12.0).bits == 9  # default ADC
  cfg = QuantConfig.from_aihwkit(1 / 14, 1.0)
  x = jnp.linspace(-2, 2, 40_001, dtype=jnp.float32)
  y = fake_quant(x, cfg)
  assert len(np.unique(np.asarray(y))) == cfg.levels == 15
  # aihwkit's own arithmetic: clamp(round(x/Δ)·Δ, ±bound) with Δ = res·2·bound.
  step = f32(1 / 14 * 2 * 1.0)
  ref = np.clip(np.round(np.asarray(x) / step) * step, -1, 1)
  np.testing.assert_allclose(y, ref, rtol=0, atol=1e-6)
  for res in (1 / 10, 0.0, -1.0):
    with pytest.raises(ValueError, match="aihwkit res"):
      QuantConfig.from_aihwkit(res, 1.0)


@pytest.mark.parametrize("kwargs,field", [
    (dict(bits=0, bound=1.0), "QuantConfig.bits"), (dict(bits=17, bound=1.0), "QuantConfig.bits"),
    (dict(bits=4.0, bound=1.0), "QuantConfig.bits"),
    (dict(bits=True, bound=1.0), "QuantConfig.bits"),
    (dict(mode="bad"), "QuantConfig.mode"), (dict(bound=-1.0), "QuantConfig.bound"),
    (dict(bound=0.0), "QuantConfig.bound"), (dict(bound=math.nan), "QuantConfig.bound"),
    (dict(mode="fixed"), "QuantConfig.bound"), (dict(bound=(-1.0, 1.0)), "QuantConfig.bound"),
    (dict(signed=False, bound=(0.5, 1.0)), "QuantConfig.bound"),
    (dict(mode="dynamic", bound=1.0), "QuantConfig.bound"),
    (dict(mode="learned", learned="pact"), "QuantConfig.bound"),
    (dict(mode="learned", learned="sgd"), "QuantConfig.learned"),
    (dict(mode="tracked", momentum=1.0), "QuantConfig.momentum"),
    (dict(bound=1.0, per_channel=True), "QuantConfig.per_channel"),
    (dict(mode="dynamic", per_channel="last"), "QuantConfig.per_channel"),
    (dict(bound=1.0, stochastic=1), "QuantConfig.stochastic"),
])
def test_invalid_configs_name_the_field(kwargs, field):
  with pytest.raises(ValueError, match=field):
    QuantConfig(**kwargs)


def test_stateful_modes_need_the_module_and_tracked_needs_train():
  with pytest.raises(ValueError, match="Quantizer"):
    stateless_quantizer(QuantConfig(mode="tracked"))
  with pytest.raises(ValueError, match="train"):
    Quantizer(QuantConfig(mode="tracked")).init(jax.random.key(0), jnp.ones(3))


def test_stateless_quantizer_as_the_dac_of_an_analog_layer():
  cfg = QuantConfig(bits=4, bound=1.0)
  layer = NoisyDense(3, input_quantizer=stateless_quantizer(cfg))
  x = _normal(0, (5, 4))
  v = layer.init(jax.random.key(1), x)
  np.testing.assert_array_equal(layer.apply(v, x), nn.Dense(3).apply(v, fake_quant(x, cfg)))


def test_grid_is_the_one_the_quantizer_uses_and_a_given_grid_updates_nothing():
  """`grid(x)` (what the ADC noise of analog_product is measured in) updates a tracked range once;
  a call with a given grid quantizes on it and updates nothing."""
  cfg = QuantConfig(bits=4, mode="tracked")
  q = Quantizer(cfg, train=True)
  x = _normal(0, (6, 5))
  v = q.init(jax.random.key(0), x)
  grid, upd = q.apply(v, x, method=Quantizer.grid, mutable=[COLLECTION])
  assert int(upd[COLLECTION]["count"]) == 1
  assert float(grid.step) == pytest.approx(float(jnp.max(jnp.abs(x))) / 7, rel=1e-6)
  y, upd = q.apply(v, 2 * x, grid=grid, mutable=[COLLECTION])
  assert int(upd[COLLECTION]["count"]) == 0
  np.testing.assert_array_equal(y, fake_quant(2 * x, cfg, grid))
  s = stateless_quantizer(QuantConfig(bits=4, mode="dynamic"))
  np.testing.assert_array_equal(s(2 * x, grid=s.grid(x)), fake_quant(2 * x, cfg, grid))


def test_tracked_quantizer_module_as_the_dac_of_an_analog_layer():
  cfg = QuantConfig(bits=4, mode="tracked")
  layer = NoisyDense(3, input_quantizer=Quantizer(cfg, train=True))
  x = _normal(0, (5, 4))
  v = layer.init(jax.random.key(1), x)
  y, upd = layer.apply(v, x, mutable=[COLLECTION])
  ranges = jax.tree_util.tree_leaves_with_path(upd[COLLECTION])
  absmax = [leaf for path, leaf in ranges if "absmax" in jax.tree_util.keystr(path)]
  assert len(absmax) == 1 and float(absmax[0]) == float(jnp.max(jnp.abs(x)))
  np.testing.assert_array_equal(y, nn.Dense(3).apply({"params": v["params"]},
                                                     fake_quant(x, QuantConfig(4, bound=float(
                                                         jnp.max(jnp.abs(x)))))))


@pytest.mark.parametrize("qtype,bits", [(jnp.int4, 4), (jnp.int8, 8), ("int3", 3)])
def test_matches_qwix_weight_fake_quant_where_conventions_coincide(qtype, bits):
  """Qwix (0.1.8) symmetric absmax: Δ = max|w| / (qmax + ½) (the top bucket full width) and
  two's-complement codes −2^(b−1) … qmax. Ours: Δ = max|w| / qmax, codes ±qmax. Given Qwix's
  Δ, the two agree exactly on every element Qwix does not map to −2^(b−1) (only a channel's
  −max|w| itself, whose x/Δ is −qmax − ½ rounded to even); we clip those to −qmax."""
  qwix = pytest.importorskip("qwix")
  w = _normal(0, (64, 16))
  qw = qwix.quantize(w, qtype, channelwise_axes=[1])
  theirs, qcodes = np.asarray(qwix.dequantize(qw)), np.asarray(qw.qvalue.astype(jnp.int16))
  cfg = QuantConfig(bits=bits, mode="dynamic", per_channel=True)
  grid = Grid(qw.scale.reshape(-1), jnp.zeros(16))
  ours = np.asarray(fake_quant(w, cfg, grid))
  codes = np.asarray(export_weights(w, cfg, grid)[0])
  extra = qcodes == -2**(bits - 1)
  np.testing.assert_array_equal(ours[~extra], theirs[~extra])
  np.testing.assert_array_equal(codes[~extra], qcodes[~extra])
  wn = np.asarray(w)
  channels = np.nonzero(extra)[1]
  np.testing.assert_array_equal(wn[extra], -np.max(np.abs(wn), 0)[channels])
  np.testing.assert_array_equal(codes[extra], -cfg.qmax)
