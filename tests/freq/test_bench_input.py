"""experiments/benchmarks/bench_input.py: its pipelines build the same model input, on synthetic JPEGs."""

import importlib.util
import io
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("jpeglib", reason="optional package jpeglib not installed")

SCRIPT = os.path.join(os.path.dirname(__file__), "..", "..", "experiments", "benchmarks", "bench_input.py")


@pytest.fixture(scope="module")
def bench():
  spec = importlib.util.spec_from_file_location("bench_input", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _photo(seed: int, size: int = 224) -> np.ndarray:
  """Smooth colour gradients and waves plus a little noise: photo-like, with energy in low frequencies."""
  rng = np.random.default_rng(seed)
  y, x = np.mgrid[0:size, 0:size] / size
  planes = []
  for c in range(3):
    f = rng.uniform(1, 6, 2)
    planes.append(128 + 60 * np.sin(2 * np.pi * (f[0] * x + f[1] * y) + c) + 40 * (x - y) * (c - 1))
  img = np.stack(planes, -1) + rng.normal(0, 4, (size, size, 3))
  return np.clip(img, 0, 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory):
  folder = tmp_path_factory.mktemp("jpegs")
  paths = []
  for i in range(2):
    path = str(folder / f"{i}.jpg")
    Image.fromarray(_photo(i)).save(path, quality=75, subsampling=2)  # as Imagenette: q75, 4:2:0
    paths.append(path)
  return paths


@pytest.mark.parametrize("channels", [24, 192])
def test_pipelines_agree_on_the_model_input(bench, jpegs, channels):
  a = np.asarray(bench.make_pixel_pipeline(channels, "420")(jpegs))
  b = np.asarray(bench.make_coefficient_pipeline(channels)(jpegs))
  c_pipe = bench.make_dctnet_pipeline(channels, 448)
  c_224 = bench.make_dctnet_pipeline(channels, 224)
  try:
    c, c2 = np.asarray(c_pipe(jpegs)), np.asarray(c_224(jpegs))
  finally:
    os.remove(c_pipe.scratch)
    os.remove(c_224.scratch)
  assert a.shape == b.shape == c2.shape == (2, 28, 28, channels)
  assert c.shape == (2, 56, 56, channels)
  assert a.dtype == b.dtype == c.dtype == np.float32

  sel = bench.selection.preset_channels(channels)
  steps = np.mean([bench.quant_steps(p) for p in jpegs], axis=0)
  # (a) (DCT of the decoded pixels) vs (b) (the stored coefficients): they differ by pixel rounding,
  # libjpeg's integer IDCT and PIL's chroma upsampling, far less than the quantisation step (q75).
  ab = bench.agreement(a, b, steps, sel)
  assert ab["rel_to_mean_quant_step"] < 0.1
  assert np.abs(a[..., 0] - b[..., 0]).mean() < 1.0  # luma DC, 0..2040 scale
  assert np.abs(a[..., 0]).mean() > 50  # and it is not all zeros
  # (c') re-encodes the same pixels at q95: close to (a).
  assert bench.agreement(c2, a, steps, sel)["rel_to_mean_quant_step"] < 0.1
  # (c) at 448: each 8x8 block covers 4x4 original pixels, so the mean luma DC over its 2x2 blocks
  # is close to (a)'s DC of the 8x8 block (bilinear upscaling nearly keeps block means; measured
  # 1.1% of the mean |DC|, from the filter's smoothing across blocks and the q95 re-encode).
  pooled = c[..., 0].reshape(2, 28, 2, 28, 2).mean(axis=(2, 4))
  assert np.abs(pooled - a[..., 0]).mean() < 0.02 * np.abs(a[..., 0]).mean()


def test_agreement_check_flags_different_inputs(bench, jpegs):
  b = np.asarray(bench.make_coefficient_pipeline(24)(jpegs))
  steps = bench.quant_steps(jpegs[0])
  sel = bench.selection.preset_channels(24)
  assert bench.agreement(b, b, steps, sel)["mean_abs_diff"] == 0.0
  shuffled = bench.agreement(b[::-1], b, steps, sel)  # the other image: not the same input
  assert shuffled["rel_to_mean_quant_step"] > bench.CHECK_TOLERANCE
  luma = bench.agreement(b, b + np.where(sel >= 64, 100.0, 0.0), steps, sel, luma_only=True)
  assert luma["channels_compared"] == 16 and luma["mean_abs_diff"] == 0.0


def test_extract_images_skips_grayscale_and_spreads_the_choice(bench, tmp_path):
  tar_path = str(tmp_path / "val.tar.gz")
  with tarfile.open(tar_path, "w:gz") as tar:
    for i in range(6):
      img = Image.fromarray(_photo(i, 32)[..., 0] if i == 1 else _photo(i, 32))
      buf = io.BytesIO()
      img.save(buf, format="JPEG", quality=75)
      info = tarfile.TarInfo(f"val/n0{i % 2}/img_{i}.JPEG")
      info.size = len(buf.getvalue())
      tar.addfile(info, io.BytesIO(buf.getvalue()))
  dest = tmp_path / "out"
  dest.mkdir()
  paths, counts = bench.extract_images(tar_path, 3, str(dest), size=32)
  assert counts == {"members": 6, "grayscale_or_other_mode": 1, "other_size": 0}
  # sorted names: n00/img_0, n00/img_2, n00/img_4, n01/img_3, n01/img_5 -> evenly spaced 0, 2, 4
  assert [os.path.basename(p).split("_", 1)[1] for p in paths] == ["img_0.JPEG", "img_4.JPEG", "img_5.JPEG"]
  for p in paths:
    with Image.open(p) as img:
      assert img.size == (32, 32)
  with pytest.raises(ValueError, match="only 5"):
    bench.extract_images(tar_path, 6, str(dest), size=32)
