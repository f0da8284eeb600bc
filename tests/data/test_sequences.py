"""Sequential MNIST and stroke-sequence loaders: exact values on small arrays and files written here."""

import os

import numpy as np
import pytest

from freqnoise.data import sequences, strokes


def _images(n=3, h=4, w=5):
  return np.arange(n * h * w, dtype=np.uint8).reshape(n, h, w)


def test_rows_are_image_rows_scaled():
  images = _images()
  x = sequences.images_to_sequences(images[..., None])
  assert x.shape == (3, 4, 5) and x.dtype == np.float32
  np.testing.assert_array_equal(x[1, 2], images[1, 2] / np.float32(255))


def test_pixel_by_pixel_is_raster_order():
  images = _images()
  x = sequences.images_to_sequences(images, pixel_by_pixel=True)
  assert x.shape == (3, 20, 1)
  np.testing.assert_array_equal(x[2, :, 0], images[2].reshape(-1) / np.float32(255))


def test_permutation_is_fixed_by_seed_and_shared_by_splits():
  images = _images()
  a = sequences.images_to_sequences(images, pixel_by_pixel=True, permutation_seed=7)
  b = sequences.images_to_sequences(images[::-1], pixel_by_pixel=True, permutation_seed=7)
  perm = sequences.pixel_permutation(20, 7)
  assert sorted(perm.tolist()) == list(range(20)) and perm.tolist() != list(range(20))
  np.testing.assert_array_equal(a[0, :, 0], images[0].reshape(-1)[perm] / np.float32(255))
  np.testing.assert_array_equal(a[::-1], b)
  c = sequences.images_to_sequences(images, pixel_by_pixel=True, permutation_seed=8)
  assert not np.array_equal(a, c)


def test_sequence_split_and_errors():
  out = sequences.sequence_split({"image": _images(), "label": np.array([3, 1, 2])})
  assert out["inputs"].shape == (3, 4, 5) and out["label"].dtype == np.int32
  with pytest.raises(ValueError, match="permutation_seed"):
    sequences.images_to_sequences(_images(), permutation_seed=1)
  with pytest.raises(ValueError, match="one channel"):
    sequences.images_to_sequences(np.zeros((2, 4, 4, 3), np.uint8))
  with pytest.raises(ValueError, match="'image' and 'label'"):
    sequences.sequence_split({"image": _images()})
  with pytest.raises(ValueError, match="labels"):
    sequences.sequence_split({"image": _images(), "label": np.zeros(2)})


def _write_digit(directory, split, i, points, label):
  stem = os.path.join(directory, f"{split}img-{i}")
  with open(stem + "-inputdata.txt", "w") as f:
    f.write("\n".join(" ".join(str(v) for v in row) for row in points) + "\n")
  with open(stem + "-targetdata.txt", "w") as f:
    for row in points:  # one-hot label then the next point, as in the published files
      f.write(" ".join(str(int(k == label)) for k in range(10)) + " " + " ".join(map(str, row)) + "\n")


def test_stroke_split_reads_published_format(tmp_path):
  d = str(tmp_path)
  digit0 = [[0, 0, 0, 0], [1, -1, 0, 0], [2, 0, 1, 0], [0, 3, 1, 1]]
  digit1 = [[5, 5, 0, 0], [-1, 2, 1, 1]]
  _write_digit(d, "train", 0, digit0, 7)
  _write_digit(d, "train", 1, digit1, 0)
  _write_digit(d, "test", 0, digit1, 4)
  out = strokes.load_stroke_split(d, "train")
  assert out["inputs"].shape == (2, 4, 4)
  np.testing.assert_array_equal(out["length"], [4, 2])
  np.testing.assert_array_equal(out["label"], [7, 0])
  np.testing.assert_array_equal(out["inputs"][0], digit0)
  # front padding keeps each digit's last point at the last step
  np.testing.assert_array_equal(out["inputs"][1], [[0] * 4, [0] * 4] + digit1)
  test = strokes.load_stroke_split(d, "test", max_length=3)
  assert test["inputs"].shape == (1, 3, 4) and test["label"].tolist() == [4]
  assert strokes.load_stroke_split(d, "train", limit=1)["inputs"].shape == (1, 4, 4)


def test_stroke_errors(tmp_path):
  d = str(tmp_path)
  with pytest.raises(FileNotFoundError, match="no trainimg"):
    strokes.load_stroke_split(d, "train")
  with pytest.raises(ValueError, match="split"):
    strokes.load_stroke_split(d, "valid")
  _write_digit(d, "train", 0, [[1, 1, 0, 0], [1, 1, 1, 1]], 3)
  _write_digit(d, "train", 2, [[1, 1, 1, 1]], 3)
  with pytest.raises(ValueError, match="numbered"):
    strokes.load_stroke_split(d, "train")
  with pytest.raises(ValueError, match="max_length"):
    strokes.load_stroke_split(d, "train", limit=1, max_length=1)
  bad = tmp_path / "bad-inputdata.txt"
  bad.write_text("1 2 3\n")
  with pytest.raises(ValueError, match="rows of 4"):
    strokes.read_stroke_points(str(bad))
  bad_label = tmp_path / "bad-targetdata.txt"
  bad_label.write_text("0 1 1 0 0 0 0 0 0 0\n")
  with pytest.raises(ValueError, match="one-hot"):
    strokes.read_stroke_label(str(bad_label))
  with pytest.raises(FileNotFoundError):
    strokes.load_stroke_split(str(tmp_path / "nope"))


def test_load_splits_dispatches_sequence_sources(tmp_path):
  from configs.common import base_config
  from freqnoise.data import load_splits
  from freqnoise.data.transforms import build_transform
  cfg = base_config().data
  cfg.source = "seq:digits"
  seq = load_splits(cfg)
  assert seq.name == "seq:digits" and seq.num_classes == 10
  assert seq.train.arrays["inputs"].shape[1:] == (8, 8) and len(seq.test) == 449
  cfg.pixel_by_pixel, cfg.permutation_seed = True, 3
  assert load_splits(cfg).train.arrays["inputs"].shape[1:] == (64, 1)
  _write_digit(str(tmp_path), "train", 0, [[1, 2, 0, 0], [0, 1, 1, 1]], 5)
  _write_digit(str(tmp_path), "test", 0, [[1, 2, 1, 1]], 6)
  strokes_cfg = base_config().data
  strokes_cfg.source = f"strokes:{tmp_path}"
  s = load_splits(strokes_cfg)
  assert s.train.arrays["inputs"].shape == (1, 2, 4) and s.test.arrays["inputs"].shape == (1, 2, 4)
  transform = build_transform({"name": "sequence"})
  assert transform.fit(seq.train.arrays["inputs"]) == {}
  tokens = np.array([[1, 2]], np.int32)
  assert transform({}, tokens).dtype == np.int32
  with pytest.raises(ValueError, match="needs an argument"):
    strokes_cfg.source = "ptb"
    load_splits(strokes_cfg)
