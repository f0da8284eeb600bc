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


def test_alternating_flip_mirrors_each_image_once_in_any_two_consecutive_epochs():
  ids = np.arange(10_000)
  coin = augment.example_coin(5, ids)
  assert 0.48 < coin.mean() < 0.52  # a fair coin per example ...
  np.testing.assert_array_equal(augment.example_coin(5, ids[::-1]), coin[::-1])  # ... of its row
  assert 0.4 < (coin != augment.example_coin(6, ids)).mean() < 0.6  # another seed, other coins
  flips = [augment.alternating_flips(5, ids, e) for e in range(3)]
  np.testing.assert_array_equal(flips[0], coin)
  assert (flips[0] != flips[1]).all() and (flips[0] == flips[2]).all()
  images = np.arange(4 * 2 * 3 * 1).reshape(4, 2, 3, 1)
  out = augment.augment_images(np.random.default_rng(0), images, alternating_flip=True,
                               examples=(5, ids[:4], 1))
  for i in range(4):
    np.testing.assert_array_equal(out[i], images[i, :, ::-1] if flips[1][i] else images[i])
  with pytest.raises(ValueError, match="set flip .* or alternating_flip, not both"):
    augment.augment_images(np.random.default_rng(0), images, flip=True, alternating_flip=True)


def test_reflected_translation_is_a_crop_of_the_reflected_image():
  images = np.random.default_rng(1).integers(0, 256, (6, 5, 7, 3), dtype=np.uint8)
  out = augment.random_crop_with_padding(np.random.default_rng(2), images, 2, reflect=True)
  draw = np.random.default_rng(2)
  dy, dx = draw.integers(0, 5, 6), draw.integers(0, 5, 6)
  padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
  for i in range(6):
    np.testing.assert_array_equal(out[i], padded[i, dy[i]:dy[i] + 5, dx[i]:dx[i] + 7])
  assert padded[0, 0, 2, 0] == images[0, 2, 0, 0]  # the edge row is not repeated
