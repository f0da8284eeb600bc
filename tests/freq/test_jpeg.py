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


def test_grayscale_jpeg_has_the_zero_chroma_of_its_decoded_gray_image(tmp_path, photo):
  """A gray pixel decoded to RGB has Cb = Cr = 128: every chroma coefficient of `block_dct` is 0,
  and the file's luma matches up to quality 95's quantisation."""
  path = str(tmp_path / "grey.jpg")
  Image.fromarray(photo[..., 0]).save(path, quality=95)
  from_file = read_jpeg_dct(path)
  with Image.open(path) as img:
    decoded = np.asarray(img.convert("RGB"))
  ours = np.asarray(dct.block_dct(decoded[None]))[0]
  assert from_file.shape == ours.shape == (16, 24, 192)
  assert np.all(from_file[..., 64:] == 0) and np.abs(ours[..., 64:]).max() < 1e-3
  err = np.abs(from_file[..., :64] - ours[..., :64])
  assert err.mean() < 0.5 and err.max() < 4
  assert np.abs(from_file[..., :64]).max() > 500


def test_other_files_and_sizes_are_errors_naming_the_file(tmp_path, photo):
  path = tmp_path / "photo.png"
  Image.fromarray(photo).save(path)
  with pytest.raises(ValueError, match=r"photo\.png: cannot read JPEG coefficients"):
    read_jpeg_dct(str(path))
  odd = tmp_path / "odd.jpg"
  Image.fromarray(photo[:20, :24]).save(odd, quality=90, subsampling=0)
  with pytest.raises(ValueError, match=r"odd\.jpg: a 20x24 image; .* multiples of 8"):
    read_jpeg_dct(str(odd))
