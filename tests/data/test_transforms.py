"""Input transforms on letterboxed images (`size` = content height, width; zeros below and right):
statistics of the content only, against NumPy; padding normalised to exactly 0 (torchvision's
normalise-then-pad), for pixels and for the block DCT; the content mask of each grid."""

import re

import numpy as np
import pytest
from ml_collections import ConfigDict

from freqnoise.data.transform_registry import content_mask
from freqnoise.data.transforms import build_transform, check_image_size

# Two 16x16 images: 16 high x 5 wide, and 9 high x 16 wide (a row of a DCT block across the edge).
SIZE = np.array([[16, 5], [9, 16]], np.int32)


def letterboxed(seed: int = 0) -> np.ndarray:
  """uint8 [2, 16, 16, 3]: random content (100..255, unlike the padding) inside `SIZE`, zeros
  elsewhere, as the detection loaders pad."""
  images = np.random.default_rng(seed).integers(100, 256, (2, 16, 16, 3)).astype(np.uint8)
  for image, (h, w) in zip(images, SIZE):
    image[h:], image[:, w:] = 0, 0
  return images


def test_content_mask_of_pixels_and_of_dct_blocks():
  pixels = np.asarray(content_mask(SIZE, (16, 16)))
  expected = np.zeros((2, 16, 16), bool)
  expected[0, :, :5] = expected[1, :9, :] = True
  np.testing.assert_array_equal(pixels, expected)
  # 8x8 blocks of the 2x image (a 4x4 grid, 4 pixels a cell): a block touching the content counts
  blocks = np.asarray(content_mask(SIZE, (4, 4), scale=2, cell=8))
  np.testing.assert_array_equal(blocks[0], np.repeat([[1, 1, 0, 0]], 4, 0).astype(bool))  # w 5
  np.testing.assert_array_equal(blocks[1], np.repeat([[1], [1], [1], [0]], 4, 1).astype(bool))


def test_spatial_statistics_are_the_content_pixels_and_padding_is_zero():
  images = letterboxed()
  t = build_transform({"name": "spatial"})
  stats = t.fit(images, size=SIZE)
  content = np.concatenate([images[0, :, :5].reshape(-1, 3), images[1, :9].reshape(-1, 3)]) / 255.0
  assert len(content) == 16 * 5 + 9 * 16
  np.testing.assert_allclose(stats["mean"], content.mean(0), rtol=1e-6)
  np.testing.assert_allclose(stats["std"], content.std(0), rtol=1e-6)
  # (over the whole frame, the padding's zeros would pull the mean far down)
  assert np.all(t.fit(images)["mean"] < 0.6 * stats["mean"])
  out = np.asarray(t(stats, images, size=SIZE))
  keep = np.asarray(content_mask(SIZE, (16, 16)))
  assert np.all(out[~keep] == 0.0)
  np.testing.assert_allclose(out[keep], (images[keep] / 255.0 - stats["mean"]) / stats["std"],
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(t(stats, images), t(stats, images, size=np.full((2, 2), 16)))


def test_dct_statistics_are_the_content_blocks_and_padded_blocks_are_zero():
  images = letterboxed(1)
  t = build_transform({"name": "dct", "channels": 24, "upscale": 2})  # detection's DCT input
  stats = t.fit(images, size=SIZE, batch_size=1)  # two batches
  coeffs = np.asarray(t.coefficients(images), np.float64)  # [2, 4, 4, 24]: blocks of the 2x image
  # the blocks touching the content, by hand: image 0 is 5 wide (10 pixels of the 2x image: two
  # 8-pixel block columns), image 1 is 9 high (18 pixels: three of the four block rows)
  keep = np.zeros((2, 4, 4), bool)
  keep[0, :, :2] = keep[1, :3] = True
  np.testing.assert_array_equal(t.content(SIZE, (4, 4)), keep)
  np.testing.assert_allclose(stats["mean"], coeffs[keep].mean(0), rtol=1e-5, atol=1e-3)
  np.testing.assert_allclose(stats["std"], coeffs[keep].std(0), rtol=1e-5, atol=1e-3)
  # what is left out: blocks of padding, whose luma DC is 8 x (0 - 128) = -1024 (the rest 0)
  luma_dc = list(t.channels).index(0)
  np.testing.assert_allclose(coeffs[~keep][:, luma_dc], -1024, atol=1e-3)
  out = np.asarray(t(stats, images, size=SIZE))
  assert np.all(out[~keep] == 0.0)
  np.testing.assert_allclose(out[keep], (coeffs[keep] - stats["mean"]) / stats["std"],
                             rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("fields,size,message", [
    ({"channels": 24}, 100, "multiples of 8 for this chroma mode, got 100x100"),
    ({"channels": 24, "chroma": "420"}, 40, "multiples of 16 for this chroma mode, got 40x40"),
    ({"channels": 24, "upscale": 2}, 34, "multiples of 8 for this chroma mode, got 68x68"),
])
def test_a_dct_image_size_off_its_block_is_refused_by_check_config(tmp_path, fields, size,
                                                                  message):
  # Issue 25: a side that is not a multiple of 8 (16 for 4:2:0) surfaced in the DCT's fit, after
  # the whole training split (50k images) was decoded; now check_config refuses it, reading nothing.
  from configs import freq_cifar10
  from freqnoise.experiment import check_config
  c = freq_cifar10.get_config("variant=dct24,tiny")
  c.data.source = f"imagefolder:{tmp_path}"  # an empty folder: no image may be read
  c.data.image_size = size
  c.input.update(fields)
  with pytest.raises(ValueError, match=re.escape(
      f"config.data.image_size={size} does not fit config.input (dct, chroma "
      f"{fields.get('chroma', '444')!r}, upscale {fields.get('upscale', 1)}): image height and "
      f"width must be {message}; pass pad=True to replicate the border (config.input.pad=True), "
      "or pick another image_size")):
    check_config(c)


def test_dct_image_sizes_that_fit_or_pad_pass_and_other_inputs_are_not_checked():
  data = lambda size: ConfigDict({"image_size": size})
  for fields, size in (({}, 96), ({"chroma": "420"}, 32), ({"upscale": 2}, 36),
                       ({"pad": True}, 100), ({}, 0)):
    check_image_size(build_transform({"name": "dct", "channels": 24, **fields}), data(size))
  check_image_size(build_transform({"name": "spatial"}), data(100))
  check_image_size(build_transform({"name": "dct_coefficients", "channels": 24}), data(100))
