"""Training from JPEG DCT coefficients (`config.data.jpeg_coefficients`): bytes == file, the flip in
the coefficient domain, Grain batches that match the DCT of the decoded pixels, and the errors."""

from __future__ import annotations

import io
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from freqnoise.freq import dct

pytest.importorskip("jpeglib", reason="optional package jpeglib not installed")
from freqnoise import train as train_module  # noqa: E402
from freqnoise.data import load_splits  # noqa: E402
from freqnoise.data.augment import augment_coefficients, augment_images  # noqa: E402
from freqnoise.data.random_access import ImageFolderSource  # noqa: E402
from freqnoise.data.streaming import StreamingBatches  # noqa: E402
from freqnoise.freq.dct_flip import flip_coefficients  # noqa: E402
from freqnoise.freq.jpeg import read_jpeg_dct, read_jpeg_dct_bytes  # noqa: E402
from freqnoise.freq.transform import DCTCoefficientsTransform, DCTTransform  # noqa: E402

SIDE = 32


@pytest.fixture(scope="module")
def photos():
  from sklearn.datasets import load_sample_image
  return [load_sample_image(name) for name in ("china.jpg", "flower.jpg")]


def _jpeg_bytes(image: np.ndarray, quality: int = 95, subsampling: int = 2) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
  return buffer.getvalue()


def write_jpeg_folder(root, photos, per_class=(8, 4)) -> str:
  """`root/{train,val}/c{k}/i.jpg`: 32x32 crops of sample photo k (quality 95, 4:2:0); the second
  training image of class 0 is grayscale (Imagenette has 1.9% of those)."""
  for split, n in zip(("train", "val"), per_class):
    for k, photo in enumerate(photos):
      os.makedirs(os.path.join(root, split, f"c{k}"))
      for i in range(n):
        y, x = 37 * i + (split == "val") * 200, 53 * i + 100
        crop = photo[y:y + SIDE, x:x + SIDE]
        if split == "train" and k == 0 and i == 1:
          crop = crop[..., 1]
        with open(os.path.join(root, split, f"c{k}", f"{i}.jpg"), "wb") as f:
          f.write(_jpeg_bytes(crop))
  return str(root)


def test_bytes_give_the_file_s_coefficients_also_inside_a_tar(tmp_path, photos):
  data = _jpeg_bytes(photos[0][:48, :64])
  path = tmp_path / "a.jpg"
  path.write_bytes(data)
  from_file = read_jpeg_dct(str(path))
  assert from_file.shape == (6, 8, 192) and from_file.dtype == np.float32
  np.testing.assert_array_equal(read_jpeg_dct_bytes(data), from_file)
  os.makedirs(tmp_path / "tar")
  with tarfile.open(tmp_path / "tar" / "train.tar", "w") as tar:
    info = tarfile.TarInfo("train/c0/a.jpg")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
  source = ImageFolderSource(str(tmp_path / "tar"), "train", jpeg_coefficients=True)
  assert source.jpeg_size == (48, 64)
  np.testing.assert_array_equal(source[0]["image"], from_file)
  with pytest.raises(ValueError, match=r"b\.jpg: cannot read JPEG coefficients \(.*failed"):
    read_jpeg_dct_bytes(b"not a jpeg", name="b.jpg")


@pytest.mark.parametrize("chroma", ["444", "420"])
def test_flip_of_coefficients_is_the_dct_of_the_flipped_image(photos, chroma):
  image = photos[1][:64, :96].astype(np.float32)
  coeffs = np.asarray(dct.block_dct(image[None], chroma=chroma))
  flipped = np.asarray(dct.block_dct(image[None, :, ::-1], chroma=chroma))
  assert np.abs(flip_coefficients(coeffs) - flipped).max() < 1e-3
  assert np.abs(coeffs - flipped).max() > 100  # (the flip is not the identity)
  # The augmentation draws the pixel flip's coin per row of the global batch.
  batch = np.stack([image, image[::-1]])
  rng_args = dict(flip=True, rows=(2, 4))
  pixels = augment_images(np.random.default_rng(1), batch, **rng_args)
  assert [not np.array_equal(p, b) for p, b in zip(pixels, batch)] == [True, False]  # seed 1
  from_coeffs = augment_coefficients(np.random.default_rng(1),
                                     np.asarray(dct.block_dct(batch, chroma=chroma)), **rng_args)
  expected = np.asarray(dct.block_dct(pixels, chroma=chroma))
  assert np.abs(from_coeffs - expected).max() < 1e-3


def _data_config(root: str, jpeg: bool):
  from configs.common import base_config
  data = base_config().data
  data.source = f"imagefolder:{root}"
  data.test_split = "val"
  data.pipeline = "grain"
  data.cache_dir = ""
  data.jpeg_coefficients = jpeg
  return data


def _assert_near_dct_of_pixels(coeffs: np.ndarray, pixels: np.ndarray) -> None:
  """JPEG coefficients vs `block_dct` of the decoded pixels, on the 0..2040 scale: they differ by
  quality 95's quantisation and the decoder's rounding (about 0.3 on average in luma), and in
  chroma also by the decoder's smooth 4:2:0 upsampling and its clipping of saturated colours to
  0..255, which our 2x2 average cannot undo (0.5-0.7 on average, up to 15 on the flower's reds)."""
  assert coeffs.shape == pixels.shape[:1] + (SIDE // 8, SIDE // 8, 192)
  err = np.abs(coeffs - np.asarray(dct.block_dct(pixels, chroma="420")))
  luma, chroma = err[..., :64], err[..., 64:]
  assert luma.mean() < 0.5 and luma.max() < 8, (luma.mean(), luma.max())
  assert chroma.mean() < 1.0 and chroma.max() < 24, (chroma.mean(), chroma.max())


def test_grain_coefficient_batches_are_the_dct_of_the_pixel_batches(tmp_path, photos):
  root = write_jpeg_folder(tmp_path / "data", photos)
  pixels, coeffs = (load_splits(_data_config(root, jpeg)) for jpeg in (False, True))
  assert coeffs.test.arrays["image"].shape == (8, 4, 4, 192)  # the test split: in memory
  _assert_near_dct_of_pixels(coeffs.test.arrays["image"], pixels.test.arrays["image"])
  gray = coeffs.train[1]["image"]  # train/c0/1.jpg: no chroma
  assert np.all(gray[..., 64:] == 0) and np.abs(gray[..., :64]).max() > 100
  augment = {"flip": True}
  by_pixels = StreamingBatches(pixels.train, 4, 7, augment=augment)
  by_coeffs = StreamingBatches(coeffs.train, 4, 7, augment=augment, coefficients=True)
  flipped = 0
  try:
    for step in (0, 1, 5):  # 5: the second epoch
      a, b = by_pixels[step], by_coeffs[step]
      np.testing.assert_array_equal(a["label"], b["label"])
      assert b["image"].dtype == np.float32
      _assert_near_dct_of_pixels(b["image"], a["image"])
      raw = pixels.train[by_pixels.rows(step)]["image"]
      flipped += sum(not np.array_equal(x, y) for x, y in zip(a["image"], raw))
  finally:
    by_coeffs.close()
  assert 0 < flipped < 12  # the flips were drawn alike in both


def tiny_config(root: str):
  """A minimal frequency run on the JPEG folder: Imagenette's dct24 input (here read from the
  JPEGs' coefficients) into a one-conv LeNet, 4 steps of 8."""
  import ml_collections

  from configs import freq_imagenette
  c = freq_imagenette.get_config("variant=dct24,tiny")
  c.data.source = f"imagefolder:{root}"
  c.data.image_size = SIDE
  c.data.limit_test = 0
  c.data.pipeline = "grain"
  c.data.jpeg_coefficients = True
  c.data.augment.resized_crop_min_scale = 0.0  # (flip stays on)
  c.input.name = "dct_coefficients"
  c.model = ml_collections.ConfigDict({"name": "lenet", "conv_features": (4,), "kernel_size": 3,
                                       "dense_features": ()})
  c.num_devices = 1
  return c


def test_tiny_training_from_coefficients_sees_the_dct_of_the_pixel_batches(tmp_path, photos,
                                                                           monkeypatch):
  from freqnoise.train import train_and_evaluate
  root = write_jpeg_folder(tmp_path / "data", photos)
  served = []

  class Recorded(StreamingBatches):
    def __getitem__(self, step):
      batch = super().__getitem__(step)
      served.append((step, batch))
      return batch

  monkeypatch.setattr(train_module, "StreamingBatches", Recorded)
  c = tiny_config(root)
  result = train_and_evaluate(c, str(tmp_path / "run"))
  assert result["steps"] == 4 and 0.0 <= result["test_accuracy"] <= 1.0
  assert [s for s, _ in served] == [0, 1, 2, 3]
  with np.load(tmp_path / "run" / "input_stats.npz") as z:
    stats = {k: z[k] for k in z.files}
  # The same seed and steps read as pixels: the trainer's batches are their DCT (before the
  # normalisation, which runs in the step), and the statistics are those of the pixels' DCT.
  pixel_splits = load_splits(_data_config(root, False))
  pixel_batches = StreamingBatches(pixel_splits.train, c.data.batch_size, c.seed,
                                   augment=dict(c.data.augment))
  for step, batch in served:
    _assert_near_dct_of_pixels(batch["image"], pixel_batches[step]["image"])
  from_pixels = DCTTransform(channels=24, chroma="420").fit(pixel_splits.train.head(16)["image"])
  np.testing.assert_array_equal(stats["channels"], from_pixels["channels"])
  assert stats["mean"].shape == (24,)
  np.testing.assert_allclose(stats["mean"], from_pixels["mean"], atol=1.0)
  np.testing.assert_allclose(stats["std"], from_pixels["std"], rtol=0.02, atol=1.0)


@pytest.mark.parametrize("field, value, message", [
    ("data.augment.resized_crop_min_scale", 0.25,
     r"config\.data\.augment\.resized_crop_min_scale=0\.25: crops need decoded pixels"),
    ("input.name", "dct", r"config\.input\.name must be 'dct_coefficients', not 'dct'"),
    ("data.pipeline", "memory", r"jpeg_coefficients needs config\.data\.pipeline='grain'"),
    ("data.source", "digits", r"JPEG files of an imagefolder:DIR source, not of .*'digits'"),
])
def test_config_errors_come_before_any_data_is_read(tmp_path, field, value, message):
  from freqnoise.train import train_and_evaluate
  c = tiny_config(str(tmp_path))  # an empty folder: a check that read data would fail otherwise
  c.update_from_flattened_dict({field: value})
  with pytest.raises(ValueError, match=message):
    train_and_evaluate(c, str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run")


def test_crop_padding_is_rejected_by_the_batches(tmp_path, photos):
  root = write_jpeg_folder(tmp_path / "data", photos, per_class=(2, 1))
  train = load_splits(_data_config(root, True)).train
  with pytest.raises(ValueError, match=r"config\.data\.augment\.crop_padding=4: crops need"):
    StreamingBatches(train, 2, 0, augment={"crop_padding": 4, "flip": True}, coefficients=True)
  with pytest.raises(ValueError, match="resized_crop_min_scale=0.5"):
    augment_coefficients(np.random.default_rng(0), train[np.arange(2)]["image"],
                         resized_crop_min_scale=0.5)


def test_an_image_of_another_size_is_named(tmp_path, photos):
  root = write_jpeg_folder(tmp_path / "data", photos, per_class=(2, 1))
  odd = os.path.join(root, "train", "c1", "9.jpg")
  with open(odd, "wb") as f:
    f.write(_jpeg_bytes(photos[1][:48, :SIDE]))
  source = ImageFolderSource(root, "train", jpeg_coefficients=True)  # size: the first file's
  assert source.jpeg_size == (SIDE, SIDE) and source[0]["image"].shape == (4, 4, 192)
  with pytest.raises(ValueError, match=r"train/c1/9\.jpg: a 48x32 image, but the split's first "
                                       r"image, 32x32: .* cannot be resized"):
    source[len(source) - 1]
  configured = ImageFolderSource(root, "train", image_size=SIDE, jpeg_coefficients=True)
  with pytest.raises(ValueError, match=r"9\.jpg: a 48x32 image, but config\.data\.image_size=32"):
    configured[len(configured) - 1]
  with pytest.raises(ValueError, match=r"0\.jpg: a 32x32 image, but config\.data\.image_size=64"):
    ImageFolderSource(root, "train", image_size=64, jpeg_coefficients=True)[0]
  with pytest.raises(ValueError, match=r"a 36x32 image; .* multiples of 16"):
    read_jpeg_dct_bytes(_jpeg_bytes(photos[0][:36, :SIDE]))


def test_coefficient_transform_selects_and_normalises_like_the_dct_transform(photos):
  images = np.stack([photos[0][:32, :32], photos[1][:32, :32], photos[0][40:72, 8:40]])
  coeffs = np.asarray(dct.block_dct(images, chroma="420"))
  pixel_t, coeff_t = DCTTransform(channels=24, chroma="420"), DCTCoefficientsTransform(channels=24)
  stats_p, stats_c = pixel_t.fit(images), coeff_t.fit(coeffs)
  for k in ("mean", "std", "channels"):
    np.testing.assert_allclose(stats_c[k], stats_p[k], rtol=1e-5, atol=1e-3)
  np.testing.assert_allclose(np.asarray(coeff_t(stats_c, coeffs)),
                             np.asarray(pixel_t(stats_p, images)), atol=1e-3)
  with pytest.raises(ValueError, match=r"expects block-DCT coefficients \[N, h, w, 192\].*"
                                       r"\(3, 32, 32, 3\)"):
    coeff_t.fit(images)
  with pytest.raises(ValueError, match="cannot upscale coefficients"):
    DCTCoefficientsTransform(upscale=2)
