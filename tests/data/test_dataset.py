"""Statistics and split limits come from a seeded sample across the whole split, never a prefix
(image folders are sorted by class: CIFAR-10's first 10k images are two classes)."""

import numpy as np
from ml_collections import ConfigDict

from freqnoise.data import ArrayDataset, Splits, load_splits, sample_indices
from freqnoise.data.transforms import build_transform
from tests.conftest import write_image_folder


def test_sample_indices_is_seeded_sorted_and_without_replacement():
  a = sample_indices(100, 10, seed=3)
  np.testing.assert_array_equal(a, sample_indices(100, 10, seed=3))
  assert len(set(a.tolist())) == 10 and np.all(np.diff(a) > 0) and a.max() < 100
  assert not np.array_equal(a, sample_indices(100, 10, seed=4))
  np.testing.assert_array_equal(sample_indices(5, 10, seed=0), np.arange(5))


def test_statistics_on_a_class_sorted_split_see_every_class():
  images = np.concatenate([np.full((50, 8, 8, 3), 10, np.uint8), np.full((50, 8, 8, 3), 200, np.uint8)])
  for name in ("spatial", "dct"):
    t = build_transform({"name": name, "max_fit_examples": 20} if name == "spatial" else
                        {"name": name, "channels": 6, "max_fit_examples": 20})
    sample = images[sample_indices(len(images), 20, seed=0)]
    assert 0 < (sample[:, 0, 0, 0] == 200).sum() < 20  # both classes in the sample
    np.testing.assert_allclose(t.fit(images, seed=0)["mean"], t.fit(sample, seed=0)["mean"],
                               rtol=1e-6)
  # Exactly the NumPy moments of the sample (the old prefix would have been all 10s).
  mean = build_transform({"name": "spatial", "max_fit_examples": 20}).fit(images, seed=0)["mean"]
  np.testing.assert_allclose(mean, sample[..., 0].mean() / 255.0, rtol=1e-6)
  assert mean[0] > 20 / 255.0


def test_split_limits_keep_every_class(tmp_path):
  folder = write_image_folder(tmp_path / "data", size=8, per_class=(16, 8))
  cfg = ConfigDict({"source": f"imagefolder:{folder}", "test_split": "val", "cache_dir": "",
                    "limit_train": 8, "limit_test": 4})
  splits = load_splits(cfg, seed=0)
  assert len(splits.train) == 8 and len(splits.test) == 4
  assert set(splits.train.arrays["label"].tolist()) == {0, 1}
  assert set(splits.test.arrays["label"].tolist()) == {0, 1}
  full = load_splits(ConfigDict({"source": f"imagefolder:{folder}", "test_split": "val",
                                 "cache_dir": ""}))
  idx = sample_indices(len(full.train), 8, seed=0)
  np.testing.assert_array_equal(splits.train.arrays["image"], full.train.arrays["image"][idx])
  # Rows that continue each other (carried BPTT state) keep their order: a prefix.
  cfg.order = "sequential"
  np.testing.assert_array_equal(load_splits(cfg).train.arrays["label"], full.train.arrays["label"][:8])


def test_the_summary_counts_the_instances_of_detection_splits_only():
  detection = ArrayDataset({"image": np.zeros((3, 4, 4, 3), np.uint8),
                            "classes": np.array([[1, 2, 0], [0, 0, 0], [3, 0, 0]], np.int32)})
  assert Splits(detection, detection.take(1), 3, "toy").summary() == (
      "toy: 3 train / 1 test (3 / 2 instances), 3 classes; image (4, 4, 3) uint8, classes (3,) "
      "int32")
  labels = ArrayDataset({"image": np.zeros((3, 4, 4, 1), np.uint8), "label": np.zeros(3, np.int32)})
  assert Splits(labels, labels, 10, "toy").summary() == (
      "toy: 3 train / 3 test, 10 classes; image (4, 4, 1) uint8, label () int32")
