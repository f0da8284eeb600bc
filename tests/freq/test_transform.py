"""The "dct" input transform: registry, statistics, selection, normalisation, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from freqnoise.data.transforms import build_transform
from freqnoise.freq import dct, selection


def _images(n=12, size=16, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_registered_and_fit_matches_numpy():
  t = build_transform({"name": "dct", "channels": 24})
  images = _images()
  stats = t.fit(images, batch_size=5)  # several batches, one partial
  coeffs = np.asarray(dct.block_dct(images), np.float64)[..., selection.preset_channels(24)]
  np.testing.assert_allclose(stats["mean"], coeffs.mean(axis=(0, 1, 2)), rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(stats["std"], coeffs.std(axis=(0, 1, 2)), rtol=1e-4)
  np.testing.assert_array_equal(stats["channels"], selection.preset_channels(24))
  out = jax.jit(t)(jax.tree.map(jnp.asarray, stats), images)
  assert out.shape == (12, 2, 2, 24) and out.dtype == jnp.float32
  # Normalised over the training split: zero mean, unit std per channel.
  np.testing.assert_allclose(np.asarray(out).mean(axis=(0, 1, 2)), 0, atol=1e-4)
  np.testing.assert_allclose(np.asarray(out).std(axis=(0, 1, 2)), 1, atol=1e-3)


def test_explicit_channels_all_channels_and_no_normalisation():
  images = _images(4)
  t = build_transform({"name": "dct", "channels": [129, 0, 64], "normalize": False})
  stats = t.fit(images)
  out = np.asarray(t(stats, images))
  np.testing.assert_allclose(out, np.asarray(dct.block_dct(images))[..., [0, 64, 129]], atol=1e-4)
  t192 = build_transform({"name": "dct"})
  assert t192.num_channels == 192 and t192(t192.fit(images), images).shape == (4, 2, 2, 192)


def test_420_and_pad_options():
  images = _images(3, size=24)
  t = build_transform({"name": "dct", "channels": 6, "chroma": "420", "pad": True})
  assert t(t.fit(images), images).shape == (3, 4, 4, 6)
  with pytest.raises(ValueError, match="multiples of 16"):
    build_transform({"name": "dct", "chroma": "420"}).fit(images)


def test_errors():
  with pytest.raises(ValueError, match="no published channel preset with 7"):
    build_transform({"name": "dct", "channels": 7})
  with pytest.raises(ValueError, match="chroma"):
    build_transform({"name": "dct", "chroma": "411"})
  with pytest.raises(ValueError, match="RGB NHWC"):
    build_transform({"name": "dct"}).fit(np.zeros((2, 8, 8, 1), np.uint8))
  with pytest.raises(ValueError, match="rejected its config fields"):
    build_transform({"name": "dct", "chanels": 24})
