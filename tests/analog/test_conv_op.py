"""`conv_op`: depthwise convolutions as shifted slices equal lax's grouped convolution (values and
gradients), and every other convolution is lax's, bitwise."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from jax import lax

from freqnoise.analog import conv_op
from freqnoise.analog.layers import NoisyConv
from freqnoise.analog.noise import NoiseConfig

DN = ("NHWC", "HWIO", "NHWC")


def _lax_depthwise(x, w, strides, padding):
  return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=DN,
                                  feature_group_count=x.shape[-1],
                                  precision=lax.Precision.HIGHEST)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(3, 9), w=st.integers(3, 9), c=st.integers(2, 5), k=st.sampled_from([1, 3, 5]),
       sh=st.integers(1, 3), sw=st.integers(1, 3), pad=st.sampled_from(["SAME", "VALID", "explicit"]),
       seed=st.integers(0, 2**16))
def test_depthwise_equals_lax_grouped_conv(h, w, c, k, sh, sw, pad, seed):
  if pad == "VALID" and (h < k or w < k):
    return
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.normal(size=(2, h, w, c)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(k, k, 1, c)), jnp.float32)
  padding = ((1, 0), (0, 2)) if pad == "explicit" else pad
  expected = _lax_depthwise(x, kernel, (sh, sw), padding)
  out = conv_op.conv_general_dilated(x, kernel, (sh, sw), padding, dimension_numbers=DN,
                                     feature_group_count=c)
  assert out.shape == expected.shape and out.dtype == expected.dtype
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_an_input_smaller_than_the_kernel_gives_laxs_empty_output():
  # Found by hypothesis (h=3, k=5, explicit padding (1, 0)): the padded input is smaller than the
  # kernel, lax returns an empty output and the depthwise rewrite used to raise.
  x = jnp.ones((2, 3, 3, 2), jnp.float32)
  kernel = jnp.ones((5, 5, 1, 2), jnp.float32)
  padding = ((1, 0), (0, 2))
  expected = _lax_depthwise(x, kernel, (1, 1), padding)
  out = conv_op.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=DN,
                                     feature_group_count=2)
  assert expected.shape == (2, 0, 1, 2) and out.shape == expected.shape


def test_depthwise_gradients_equal_lax():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 7, 6, 4)), jnp.float32)
  kernel = jnp.asarray(rng.normal(size=(3, 3, 1, 4)), jnp.float32)
  cotangent = jnp.asarray(rng.normal(size=(2, 4, 3, 4)), jnp.float32)
  ours = jax.grad(lambda a, b: jnp.sum(cotangent * conv_op.conv_general_dilated(
      a, b, (2, 2), "SAME", dimension_numbers=DN, feature_group_count=4)), (0, 1))(x, kernel)
  ref = jax.grad(lambda a, b: jnp.sum(cotangent * _lax_depthwise(a, b, (2, 2), "SAME")),
                 (0, 1))(x, kernel)
  for a, b in zip(ours, ref):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_depthwise_matches_a_numpy_loop():
  x = np.arange(2 * 4 * 5 * 3, dtype=np.float32).reshape(2, 4, 5, 3) / 10
  kernel = np.linspace(-1, 1, 2 * 3 * 3, dtype=np.float32).reshape(2, 3, 1, 3)
  out = np.asarray(conv_op.depthwise_conv(jnp.asarray(x), jnp.asarray(kernel), (1, 2),
                                          ((0, 1), (1, 1))))
  padded = np.pad(x, ((0, 0), (0, 1), (1, 1), (0, 0)))
  ref = np.zeros((2, 4, 3, 3), np.float32)
  for a in range(4):
    for b in range(3):
      window = padded[:, a:a + 2, 2 * b:2 * b + 3, :]
      ref[:, a, b, :] = np.einsum("nijc,ijc->nc", window, kernel[:, :, 0, :])
  np.testing.assert_allclose(out, ref, rtol=1e-6, atol=1e-6)


def test_bfloat16_accumulates_in_float32():
  x = jnp.full((1, 5, 5, 2), 1.0 + 2**-7, jnp.bfloat16)
  kernel = jnp.full((3, 3, 1, 2), 1.0 + 2**-7, jnp.bfloat16)
  out = conv_op.depthwise_conv(x, kernel, (1, 1), ((0, 0), (0, 0)))
  assert out.dtype == jnp.bfloat16
  exact = 9 * (1 + 2**-7) ** 2
  assert float(out[0, 0, 0, 0]) == float(jnp.bfloat16(exact))


def test_other_convolutions_are_lax_bitwise():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(2, 6, 6, 4)), jnp.float32)
  for kernel, groups in ((rng.normal(size=(3, 3, 4, 8)), 1), (rng.normal(size=(3, 3, 2, 4)), 2),
                         (rng.normal(size=(3, 3, 1, 8)), 4)):  # dense, grouped, multiplier 2
    kernel = jnp.asarray(kernel, jnp.float32)
    out = conv_op.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=DN,
                                       feature_group_count=groups)
    ref = lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=DN,
                                   feature_group_count=groups)
    assert np.array_equal(out, ref)


def test_bad_operands_are_named():
  with pytest.raises(ValueError, match=r"kernel \[kh, kw, 1, C\]"):
    conv_op.depthwise_conv(jnp.ones((1, 4, 4, 3)), jnp.ones((3, 3, 1, 2)), (1, 1), ((1, 1), (1, 1)))
  with pytest.raises(ValueError, match="padding >= 0"):
    conv_op.depthwise_conv(jnp.ones((1, 4, 4, 3)), jnp.ones((3, 3, 1, 3)), (1, 1), ((-1, 0), (0, 0)))
  with pytest.raises(ValueError, match="smaller than the kernel"):
    conv_op.depthwise_conv(jnp.ones((1, 2, 2, 3)), jnp.ones((3, 3, 1, 3)), (1, 1), ((0, 0), (0, 0)))


@pytest.mark.parametrize("noise", [None, NoiseConfig(snr_db=10.0)])
def test_noisy_depthwise_conv_equals_the_grouped_nn_conv(noise):
  """A depthwise NoisyConv (the MobileNetV2 block) gives nn.Conv's output, noise included: the
  same weights and the same noise draws, only the depthwise sum's order differs."""
  x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 8, 8, 6)), jnp.float32)
  layer = NoisyConv(6, (3, 3), strides=2, feature_group_count=6, use_bias=False, noise=noise)
  params = layer.init(jax.random.key(0), x)
  rngs = {"noise": jax.random.key(5)}
  out = layer.apply(params, x, rngs=rngs)
  ref = layer.clone(conv_general_dilated=lax.conv_general_dilated).apply(params, x, rngs=rngs)
  plain = nn.Conv(6, (3, 3), strides=2, feature_group_count=6, use_bias=False).apply(params, x)
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
  if noise is None:
    np.testing.assert_allclose(out, plain, rtol=1e-5, atol=1e-5)
  else:
    assert float(jnp.max(jnp.abs(out - plain))) > 1e-3  # the noise is there
