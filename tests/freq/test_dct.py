"""Block DCT / colour: equality with scipy per block, exact inverse, 420 vs 444, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from freqnoise.freq import color, dct


def _scipy_block_dct(rgb: np.ndarray) -> np.ndarray:
  """Reference: float64 JFIF YCbCr, then scipy's orthonormal DCT-II of every 8x8 block, one by one."""
  ycc = rgb.astype(np.float64) @ color.RGB_TO_YCBCR.T + color.YCBCR_OFFSET - 128.0
  b, h, w, _ = ycc.shape
  out = np.empty((b, h // 8, w // 8, 3, 8, 8))
  for i in range(b):
    for by in range(h // 8):
      for bx in range(w // 8):
        block = ycc[i, 8 * by:8 * by + 8, 8 * bx:8 * bx + 8].transpose(2, 0, 1)
        out[i, by, bx] = scipy.fft.dctn(block, axes=(1, 2), norm="ortho")
  return out.reshape(b, h // 8, w // 8, 192)


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
  from sklearn.datasets import load_sample_images
  return np.stack([im[:424, :632] for im in load_sample_images().images])  # 2 real photos, uint8


def test_dct_matrix_is_scipy_dct_and_orthonormal():
  d = dct.dct_matrix()
  np.testing.assert_allclose(d, scipy.fft.dct(np.eye(8), axis=0, norm="ortho"), atol=1e-12)
  np.testing.assert_allclose(d @ d.T, np.eye(8), atol=1e-12)


def test_block_dct_equals_scipy_per_block_float64():
  rgb = np.random.default_rng(0).integers(0, 256, (2, 16, 24, 3)).astype(np.float64)
  with jax.enable_x64(True):
    ours = np.asarray(dct.block_dct(rgb))
  assert ours.dtype == np.float64
  np.testing.assert_allclose(ours, _scipy_block_dct(rgb), rtol=0, atol=1e-5)


def test_block_dct_equals_scipy_per_block_float32_on_photo(photos):
  crop = photos[:, 100:164, 200:280]
  ours = np.asarray(jax.jit(dct.block_dct)(crop))
  ref = _scipy_block_dct(crop)
  assert ours.shape == (2, 8, 10, 192) and ours.dtype == np.float32
  # float32: 1e-5 relative to the largest coefficient (DC terms reach ~1000).
  assert np.abs(ours - ref).max() <= 1e-5 * np.abs(ref).max()


def test_channel_layout_hand_computed():
  # A constant grey-level image: only DC terms, Y DC = 8 * (value - 128), chroma DC = 0.
  img = np.full((1, 8, 8, 3), 200, np.uint8)
  c = np.asarray(dct.block_dct(img))[0, 0, 0]
  expected = np.zeros(192)
  expected[0] = 8 * (200 - 128)
  np.testing.assert_allclose(c, expected, atol=1e-3)  # float32 on a 0..2040 coefficient scale
  # A horizontal cosine of frequency u=1 in the red channel lands on channel 64*plane + 1 only, with
  # amplitude 50 * sqrt(8) (the vertical DC basis is 1/sqrt(8) on 8 rows) times the colour weight.
  ramp = 128 + 50 * dct.dct_matrix()[1][None, :].repeat(8, 0)
  img = np.full((1, 8, 8, 3), 128.0)
  img[..., 0] = ramp
  c = np.asarray(dct.block_dct(img.astype(np.float32)))[0, 0, 0]
  for plane in range(3):
    np.testing.assert_allclose(c[64 * plane + 1], 50 * np.sqrt(8) * color.RGB_TO_YCBCR[plane, 0],
                               atol=1e-3)
  assert np.abs(np.delete(c, [1, 65, 129])).max() < 1e-3


def test_round_trip_444_on_real_photos(photos):
  coeffs = jax.jit(dct.block_dct)(photos)
  back = np.asarray(jax.jit(dct.block_idct)(coeffs))
  assert np.abs(back - photos).max() < 1e-3


def test_420_matches_subsampled_reference_and_round_trip_error(photos):
  crop = photos[:, :64, :96]
  c420 = np.asarray(dct.block_dct(crop, chroma="420"))
  c444 = np.asarray(dct.block_dct(crop))
  np.testing.assert_allclose(c420[..., :64], c444[..., :64], atol=1e-5 * np.abs(c444).max())  # same luma
  # Chroma: scipy DCT of the 2x2-averaged chroma plane, each block repeated on a 2x2 luma-block patch.
  ycc = crop.astype(np.float64) @ color.RGB_TO_YCBCR.T + color.YCBCR_OFFSET - 128.0
  half = ycc.reshape(2, 32, 2, 48, 2, 3).mean(axis=(2, 4))
  ref = scipy.fft.dctn(half.reshape(2, 4, 8, 6, 8, 3), axes=(2, 4), norm="ortho")
  ref = ref.transpose(0, 1, 3, 5, 2, 4)[..., 1:, :, :].reshape(2, 4, 6, 128)
  ref = ref.repeat(2, axis=1).repeat(2, axis=2)
  assert np.abs(c420[..., 64:] - ref).max() <= 1e-5 * np.abs(ref).max()
  # Inverse: exact luma; chroma only up to the 4:2:0 subsampling loss (documented, not exact).
  back = np.asarray(dct.block_idct(c420, chroma="420"))
  ycc_back = back.astype(np.float64) @ color.RGB_TO_YCBCR.T + color.YCBCR_OFFSET
  np.testing.assert_allclose(ycc_back[..., 0], ycc[..., 0] + 128, atol=1e-3)
  assert 0.1 < np.abs(back - crop).mean() < 10.0


def test_zigzag_order():
  z = dct.zigzag_order()
  np.testing.assert_array_equal(z[:10], [0, 1, 8, 16, 9, 2, 3, 10, 17, 24])
  assert z[-1] == 63 and sorted(z) == list(range(64))
  p = dct.zigzag_permutation()
  assert p.shape == (192,) and sorted(p) == list(range(192)) and p[64] == 64 and p[65] == 65


def test_pad_and_bad_inputs():
  img = np.zeros((1, 10, 12, 3), np.uint8)
  with pytest.raises(ValueError, match="multiples of 8"):
    dct.block_dct(img)
  assert dct.block_dct(img, pad=True).shape == (1, 2, 2, 192)
  with pytest.raises(ValueError, match="multiples of 16"):
    dct.block_dct(np.zeros((1, 8, 16, 3), np.uint8), chroma="420")
  assert dct.block_dct(np.zeros((1, 8, 16, 3), np.uint8), chroma="420", pad=True).shape == (1, 2, 2, 192)
  with pytest.raises(TypeError, match="dtype int32"):
    dct.block_dct(np.zeros((1, 8, 8, 3), np.int32))
  with pytest.raises(ValueError, match=r"\[batch, height, width, 3\]"):
    dct.block_dct(np.zeros((8, 8, 3), np.uint8))
  with pytest.raises(ValueError, match="3 channels"):
    dct.block_dct(np.zeros((1, 8, 8, 4), np.uint8))
  with pytest.raises(ValueError, match="chroma"):
    dct.block_dct(np.zeros((1, 8, 8, 3), np.uint8), chroma="422")
  with pytest.raises(TypeError, match="array"):
    dct.block_dct([[1, 2, 3]])
  with pytest.raises(ValueError, match="192"):
    dct.block_idct(np.zeros((1, 2, 2, 64)))


def test_padding_replicates_border():
  img = np.random.default_rng(1).integers(0, 256, (1, 10, 12, 3)).astype(np.uint8)
  padded = np.pad(img, ((0, 0), (0, 6), (0, 4), (0, 0)), mode="edge")
  np.testing.assert_array_equal(np.asarray(dct.block_dct(img, pad=True)), np.asarray(dct.block_dct(padded)))


def test_differentiable_and_linear_gradient():
  x = jnp.full((1, 8, 8, 3), 100.0)
  g = jax.grad(lambda im: dct.block_dct(im)[0, 0, 0, 0])(x)  # Y DC = sum(Y - 128) / 8
  np.testing.assert_allclose(np.asarray(g)[0, ..., 0], np.full((8, 8), 0.299 / 8), rtol=1e-6)


@settings(max_examples=20, deadline=None)
@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 3), st.sampled_from([8, 16]), st.sampled_from([8, 24]),
                                      st.just(3))))
def test_properties_round_trip_and_parseval(images):
  coeffs = np.asarray(dct.block_dct(images), np.float64)
  back = np.asarray(dct.block_idct(coeffs))
  assert np.abs(back - images).max() < 1e-3
  # Orthonormal DCT preserves energy per plane (Parseval): sum of squares of YCbCr - 128.
  ycc = images.astype(np.float64) @ color.RGB_TO_YCBCR.T + color.YCBCR_OFFSET - 128.0
  energy = (ycc ** 2).sum(axis=(1, 2))
  coeff_energy = (coeffs ** 2).reshape(*coeffs.shape[:3], 3, 64).sum(axis=(1, 2, 4))
  np.testing.assert_allclose(coeff_energy, energy, rtol=1e-5, atol=1e-2)


@settings(max_examples=10, deadline=None)
@given(hnp.arrays(np.float32, (2, 8, 8, 3), elements=st.floats(0, 255, width=32)))
def test_color_round_trip(rgb):
  back = np.asarray(color.ycbcr_to_rgb(color.rgb_to_ycbcr(rgb)))
  np.testing.assert_allclose(back, rgb, atol=1e-3)
