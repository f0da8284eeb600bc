"""Data sources: IDX, image folders/archives, digits, TFDS (mocked), with their error messages."""

import functools
import gzip
import io
import os
import tarfile

import numpy as np
import pytest
from ml_collections import ConfigDict
from PIL import Image

from freqnoise.data import ArrayDataset, Splits, check_source, load_splits
from freqnoise.data.idx import load_idx_dataset, read_idx
from freqnoise.data.images import load_image_folder


def write_idx(path, array: np.ndarray, compress=True):
  header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
  data = header + array.astype(np.uint8).tobytes()
  with (gzip.open if compress else open)(path, "wb") as f:
    f.write(data)


def make_mnist_dir(tmp_path, n_train=6, n_test=4):
  rng = np.random.default_rng(0)
  arrays = {}
  for prefix, n in (("train", n_train), ("t10k", n_test)):
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", labels, compress=False)  # plain works too
    arrays[prefix] = (images, labels)
  return arrays


def test_idx_round_trip(tmp_path):
  arrays = make_mnist_dir(tmp_path)
  d = load_idx_dataset(str(tmp_path))
  np.testing.assert_array_equal(d["train"]["image"][..., 0], arrays["train"][0])
  np.testing.assert_array_equal(d["test"]["label"], arrays["t10k"][1].astype(np.int32))
  assert d["train"]["image"].shape == (6, 28, 28, 1) and d["test"]["label"].dtype == np.int32


def test_truncated_idx_is_a_clear_error(tmp_path):
  make_mnist_dir(tmp_path)
  path = tmp_path / "train-images-idx3-ubyte.gz"
  raw = gzip.open(path).read()
  with gzip.open(path, "wb") as f:
    f.write(raw[:-100])
  with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: IDX body has .*truncated"):
    read_idx(str(path))
  with open(path, "wb") as f:  # a gzip stream cut in the middle
    f.write(gzip.compress(raw)[:50])
  with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz: cannot read IDX data"):
    read_idx(str(path))


def test_idx_bad_magic_and_missing_files(tmp_path):
  bad = tmp_path / "x-idx3-ubyte"
  bad.write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x00")
  with pytest.raises(ValueError, match="not an IDX file"):
    read_idx(str(bad))
  with pytest.raises(FileNotFoundError, match="IDX data folder not found: .*nowhere"):
    load_idx_dataset(str(tmp_path / "nowhere"))
  with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
    load_idx_dataset(str(tmp_path))


def test_digits_split_is_fixed():
  a = load_splits(ConfigDict({"source": "digits"}))
  b = load_splits(ConfigDict({"source": "digits"}))
  assert (len(a.train), len(a.test), a.num_classes) == (1348, 449, 10)
  np.testing.assert_array_equal(a.test.arrays["label"], b.test.arrays["label"])
  assert a.train.arrays["image"].dtype == np.uint8 and a.train.arrays["image"].max() == 255
  assert np.bincount(a.train.arrays["label"], minlength=10).min() > 100


def test_unknown_source_names_the_choices():
  """Every source is named, the sequence (seq:, ptb:, strokes:) and the registered detection
  sources included (freqnoise.detection.sources registers them when imported)."""
  import freqnoise.detection.sources  # noqa: F401
  with pytest.raises(ValueError) as e:
    load_splits(ConfigDict({"source": "mnist"}))
  assert str(e.value) == ("unknown data source 'mnist'; expected one of digits, tfds:NAME, "
                          "idx:DIR, imagefolder:DIR, seq:IMAGE_SOURCE, ptb:DIR, strokes:DIR, "
                          "yolo-seg:DIR, cocojson:DIR")


def test_a_registered_source_is_checked_and_loaded_by_its_own_functions(tmp_path, monkeypatch):
  """`source_registry`: a package above data adds a source kind; check_source and load_splits
  dispatch to it (limits applied as for any source), and the error for an unknown one names it."""
  from freqnoise.data import source_registry
  monkeypatch.setattr(source_registry, "_SOURCES", dict(source_registry._SOURCES))
  seen = []

  def load(cfg):
    seen.append(("load", cfg.source))
    rows = ArrayDataset({"image": np.arange(10, dtype=np.uint8), "label": np.zeros(10, np.int32)})
    return Splits(rows, rows, 1, "probe")

  source_registry.register_source("probe", "probe:ARG", load, lambda cfg: seen.append(("check",)))
  check_source(ConfigDict({"source": "probe:x"}))
  splits = load_splits(ConfigDict({"source": "probe:x", "limit_train": 3}), seed=1)
  assert seen == [("check",), ("load", "probe:x")]
  assert len(splits.train) == 3 and len(splits.test) == 10
  with pytest.raises(ValueError, match=r"expected one of .*strokes:DIR, .*probe:ARG"):
    check_source(ConfigDict({"source": "nothing:x"}))
  with pytest.raises(ValueError, match="registered twice"):
    source_registry.register_source("probe", "probe:ARG", load, lambda cfg: None)


def _png(value, size=4):
  buf = io.BytesIO()
  Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(buf, "PNG")
  return buf.getvalue()


def _add(tar, name, data):
  info = tarfile.TarInfo(name)
  info.size = len(data)
  tar.addfile(info, io.BytesIO(data))


def test_image_folder_from_archives_and_shards(tmp_path):
  # CIFAR-like: SPLIT/CLASS/N.png in train.tar.gz; test as a plain folder.
  with tarfile.open(tmp_path / "train-00000-of-00002.tar.gz", "w:gz") as tar:
    _add(tar, "train/cat/0.png", _png(10))
    _add(tar, "train/dog/0.png", _png(20))
  with tarfile.open(tmp_path / "train-00001-of-00002.tar.gz", "w:gz") as tar:
    _add(tar, "train/cat/1.png", _png(30))
  os.makedirs(tmp_path / "test" / "dog")
  (tmp_path / "test" / "dog" / "5.png").write_bytes(_png(40))
  train, test, names = load_image_folder(str(tmp_path), verbose=False)
  assert names == ["cat", "dog"]
  np.testing.assert_array_equal(train["label"], [0, 0, 1])  # sorted paths: cat/0, cat/1, dog/0
  np.testing.assert_array_equal(train["image"][:, 0, 0, 0], [10, 30, 20])
  assert test["image"].shape == (1, 4, 4, 3) and test["label"].tolist() == [1]


def test_tiny_imagenet_layout_with_val_annotations_and_cache(tmp_path):
  (tmp_path / "wnids.txt").write_text("n02\nn01\n")
  with tarfile.open(tmp_path / "train-00000-of-00004.tar.gz", "w:gz") as tar:
    _add(tar, "train/n01/images/n01_0.JPEG", _png(1))
    _add(tar, "train/n02/images/n02_0.JPEG", _png(2))
  with tarfile.open(tmp_path / "val.tar.gz", "w:gz") as tar:
    _add(tar, "val/images/val_0.JPEG", _png(3))
    _add(tar, "val/images/val_1.JPEG", _png(4))
    _add(tar, "val/val_annotations.txt", b"val_0.JPEG\tn01\t0\t0\t3\t3\nval_1.JPEG\tn02\t0\t0\t3\t3\n")
  cache = tmp_path / "cache"
  cfg = ConfigDict({"source": f"imagefolder:{tmp_path}", "test_split": "val", "cache_dir": str(cache),
                    "image_size": 8})
  s = load_splits(cfg)
  assert s.num_classes == 2 and s.meta["class_names"] == ["n02", "n01"]  # wnids.txt order
  np.testing.assert_array_equal(s.train.arrays["label"], [1, 0])
  np.testing.assert_array_equal(s.test.arrays["label"], [1, 0])
  assert s.test.arrays["image"].shape == (2, 8, 8, 3)
  assert len(list(cache.glob("*.npz"))) == 1 and not list(cache.glob("*.tmp"))
  again = load_splits(cfg)  # from the cache
  np.testing.assert_array_equal(again.test.arrays["image"], s.test.arrays["image"])


def test_image_folder_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="image data folder not found"):
    load_image_folder(str(tmp_path / "missing"))
  with pytest.raises(FileNotFoundError, match="no folder or archive for split 'train'"):
    load_image_folder(str(tmp_path))
  (tmp_path / "train.tar.gz").write_bytes(b"not a tar")
  with pytest.raises(ValueError, match=r"train\.tar\.gz: cannot read archive"):
    load_image_folder(str(tmp_path))


def test_tfds_source_under_mock_data():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=12):
    s = load_splits(ConfigDict({"source": "tfds:mnist"}))
  assert s.num_classes == 10 and len(s.train) == 12
  assert s.train.arrays["image"].shape == (12, 28, 28, 1)
  assert s.train.arrays["label"].dtype == np.int32


@functools.cache  # a builder class registers its name with TFDS once, when it is defined
def _tiny_tfds_builder():
  import tensorflow_datasets as tfds

  class FreqnoiseTinyTfds(tfds.core.GeneratorBasedBuilder):
    """6 train / 4 test 8x8x1 uint8 images (every pixel 10·i + 100·(split is test)), label i % 3;
    ArrayRecord and tensor features, so that preparing and reading need no TensorFlow."""
    VERSION = tfds.core.Version("1.0.0")

    def __init__(self, **kwargs):
      super().__init__(**{"file_format": "array_record", **kwargs})

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
          "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8),
          "label": tfds.features.ClassLabel(num_classes=3)}))

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples(6, 0), "test": self._generate_examples(4, 100)}

    def _generate_examples(self, n, offset):
      for i in range(n):
        yield i, {"image": np.full((8, 8, 1), 10 * i + offset, np.uint8), "label": i % 3}

  return FreqnoiseTinyTfds


def test_tfds_source_prepares_and_reads_array_record(tmp_path):
  """The real `tfds:` path, offline and unmocked: `tfds.data_source` prepares a registered builder
  (TFDS's DatasetBuilder.code_path then imports importlib_resources, which TFDS does not declare:
  without our dependency on it this failed with "No module named 'importlib_resources'"), and
  reads the ArrayRecord files back; the second load reads the prepared dataset."""
  name = _tiny_tfds_builder().name
  cfg = ConfigDict({"source": f"tfds:{name}", "data_dir": str(tmp_path)})
  for _ in range(2):
    s = load_splits(cfg)
    assert (s.name, s.num_classes, len(s.train), len(s.test)) == (f"tfds:{name}", 3, 6, 4)
    for split, offset in ((s.train, 0), (s.test, 100)):
      image, label = split.arrays["image"], split.arrays["label"]
      assert image.shape == (len(split), 8, 8, 1) and image.dtype == np.uint8
      assert label.dtype == np.int32
      i = (image[:, 0, 0, 0].astype(int) - offset) // 10  # TFDS shuffles: index from the pixel
      assert sorted(i.tolist()) == list(range(len(split)))
      np.testing.assert_array_equal(label, i % 3)
      np.testing.assert_array_equal(image, np.broadcast_to(image[:, :1, :1], image.shape))
  assert sorted(os.listdir(tmp_path / name / "1.0.0")) == [
      "dataset_info.json", "features.json", f"{name}-test.array_record-00000-of-00001",
      f"{name}-train.array_record-00000-of-00001"]


def test_real_mnist_idx(shared_data):
  d = load_idx_dataset(str(shared_data / "mnist"))
  assert d["train"]["image"].shape == (60000, 28, 28, 1)
  assert d["test"]["label"][:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
