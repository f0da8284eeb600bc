"""Random resized crop (spatial augmentation before the DCT): exact bilinear crops, ranges, errors."""

import numpy as np
import pytest

from freqnoise.data import augment


def test_full_box_is_identity_and_unit_scale_crop_too():
  images = np.random.default_rng(0).integers(0, 256, (3, 8, 12, 3), dtype=np.uint8)
  boxes = np.array([[0.0, 0.0, 8.0, 12.0]] * 3)
  np.testing.assert_array_equal(augment.crop_and_resize(images, boxes), images)
  same = augment.random_resized_crop(np.random.default_rng(1), images, 1.0, ratio=(1.5, 1.5))
  np.testing.assert_array_equal(same, images)  # area 1 at the image's own aspect 12/8


def test_bilinear_crop_of_a_ramp_is_the_ramp_restricted_to_the_box():
  # Bilinear interpolation reproduces a linear function exactly.
  h, w = 8, 8
  ramp = (np.arange(w)[None, :] * 10.0 + np.arange(h)[:, None] * 3.0).astype(np.float32)
  images = np.repeat(ramp[None, :, :, None], 2, axis=0)
  boxes = np.array([[2.0, 1.0, 4.0, 4.0], [0.0, 0.0, 8.0, 8.0]])  # top-left (2,1), 4x4 box -> 2x zoom
  out = augment.crop_and_resize(images, boxes)
  ys = 2.0 + (np.arange(h) + 0.5) * 0.5 - 0.5
  xs = 1.0 + (np.arange(w) + 0.5) * 0.5 - 0.5
  np.testing.assert_allclose(out[0, ..., 0], xs[None, :] * 10 + ys[:, None] * 3, atol=1e-4)
  np.testing.assert_allclose(out[1, ..., 0], ramp, atol=1e-5)


def test_random_resized_crop_is_deterministic_and_changes_images():
  images = np.random.default_rng(0).integers(0, 256, (16, 16, 16, 3), dtype=np.uint8)
  a = augment.random_resized_crop(np.random.default_rng(5), images, 0.08)
  b = augment.random_resized_crop(np.random.default_rng(5), images, 0.08)
  np.testing.assert_array_equal(a, b)
  assert a.shape == images.shape and a.dtype == np.uint8 and not np.array_equal(a, images)
  out = augment.augment_images(np.random.default_rng(5), images, resized_crop_min_scale=0.5, flip=True)
  assert out.shape == images.shape
  constant = np.full((4, 16, 16, 3), 77, np.uint8)
  cropped = augment.random_resized_crop(np.random.default_rng(2), constant, 0.1)
  np.testing.assert_array_equal(cropped, constant)


def test_bad_scale():
  with pytest.raises(ValueError, match="min_scale"):
    augment.random_resized_crop(np.random.default_rng(0), np.zeros((1, 8, 8, 3), np.uint8), 1.5)
