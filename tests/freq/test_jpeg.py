"""DCT read from JPEG files (optional jpeglib) vs our transform of the pixels."""

import numpy as np
import pytest
from PIL import Image

from freqnoise.freq import dct

jpeglib = pytest.importorskip("jpeglib", reason="optional package jpeglib not installed")
from freqnoise.freq.jpeg import read_jpeg_dct  # noqa: E402


@pytest.fixture(scope="module")
def photo():
  from sklearn.datasets import load_sample_image
  return load_sample_image("china.jpg")[:128, :192]


@pytest.mark.parametrize("subsampling, chroma", [(0, "444"), (2, "420")])
def test_quality_100_file_matches_our_dct_of_the_pixels(tmp_path, photo, subsampling, chroma):
  path = str(tmp_path / "q100.jpg")
  Image.fromarray(photo).save(path, quality=100, subsampling=subsampling)  # PIL: 0 = 4:4:4, 2 = 4:2:0
  from_file = read_jpeg_dct(path)
  ours = np.asarray(dct.block_dct(photo[None], chroma=chroma))[0]
  assert from_file.shape == ours.shape == (16, 24, 192)
  err = np.abs(from_file - ours)
  # Rounding to integers (quality 100: all quantisation steps 1) plus libjpeg's fixed-point colour
  # conversion and integer DCT; chroma 4:2:0 also differs in how libjpeg downsamples.
  assert err[..., :64].mean() < 0.6 and err[..., :64].max() < 6
  assert err[..., 64:].mean() < 1.0


def test_grayscale_jpeg_is_rejected(tmp_path, photo):
  path = str(tmp_path / "grey.jpg")
  Image.fromarray(photo[..., 0]).save(path, quality=90)
  with pytest.raises(ValueError, match="3-component"):
    read_jpeg_dct(path)
