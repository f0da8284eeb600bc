"""A training split read one example at a time (`LazySplit`, for `config.data.pipeline='grain'`):
the same examples, statistics, limits and training results as the in-memory split, without ever
decoding the whole training split."""

import jax
import numpy as np
import pytest
from ml_collections import ConfigDict
from PIL import Image

from configs import digits_mlp
from configs.common import brief_run
from freqnoise.data import ArrayDataset, LazySplit, load_splits, sample_indices
from freqnoise.data import sources as sources_module
from freqnoise.data.images import load_image_folder
from freqnoise.data.random_access import ImageFolderSource
from freqnoise.data.transforms import build_transform
from freqnoise.experiment import Experiment
from freqnoise.train import train_and_evaluate
from tests.conftest import write_image_folder


@pytest.fixture
def folder(tmp_path) -> str:
  """32 train / 16 val 16x16 RGB images in two classes, sorted by class."""
  return str(write_image_folder(tmp_path / "images", size=16, per_class=(16, 8), classes=2))


def data_config(folder: str, pipeline: str, **fields) -> ConfigDict:
  return ConfigDict({"source": f"imagefolder:{folder}", "test_split": "val", "cache_dir": "",
                     "pipeline": pipeline, **fields})


def test_lazy_examples_equal_the_decoded_split(folder):
  train, test, names = load_image_folder(folder, test_split="val", verbose=False)
  lazy = LazySplit(ImageFolderSource(folder, "train"))
  assert len(lazy) == 32 and lazy.fields() == ["image", "label"]
  for i in (0, 5, 31, -1):
    example = lazy[i]
    np.testing.assert_array_equal(example["image"], train["image"][i])
    assert example["label"] == train["label"][i]
  whole = lazy[np.arange(len(lazy))]  # pixels, labels and order of the whole split
  for k in ("image", "label"):
    assert whole[k].dtype == train[k].dtype, k
    np.testing.assert_array_equal(whole[k], train[k], err_msg=k)
  np.testing.assert_array_equal(lazy[3:7]["image"], train["image"][3:7])
  np.testing.assert_array_equal(lazy.head(3)["label"], train["label"][:3])
  assert lazy.head(0)["image"].shape == (0, 16, 16, 3)
  idx = sample_indices(32, 5, 7)
  np.testing.assert_array_equal(lazy.fit_sample(5, 7)["image"], train["image"][idx])
  np.testing.assert_array_equal(ArrayDataset(train).fit_sample(5, 7)["image"], train["image"][idx])
  # Through load_splits: a lazy train split, the test split in memory, the same classes.
  memory, grain = load_splits(data_config(folder, "memory")), load_splits(data_config(folder, "grain"))
  assert isinstance(grain.train, LazySplit) and isinstance(grain.test, ArrayDataset)
  assert isinstance(memory.train, ArrayDataset)
  assert grain.num_classes == memory.num_classes == 2 and grain.meta == memory.meta == {
      "class_names": names}
  assert grain.name == memory.name and grain.summary() == memory.summary()
  for k in ("image", "label"):
    assert grain.test.arrays[k].dtype == test[k].dtype
    np.testing.assert_array_equal(grain.test.arrays[k], test[k], err_msg=k)


@pytest.mark.parametrize("input_config", [{"name": "spatial", "max_fit_examples": 12},
                                          {"name": "dct", "channels": 6, "max_fit_examples": 12}])
def test_statistics_from_the_lazy_split_equal_those_in_memory_bitwise(folder, input_config):
  train, _, _ = load_image_folder(folder, test_split="val", verbose=False)
  transform = build_transform(input_config)
  today = transform.fit(train["image"], seed=3)  # the fit on the whole split in memory
  lazy = LazySplit(ImageFolderSource(folder, "train"))
  for split in (lazy, ArrayDataset(train)):
    fitted = transform.fit(split.fit_sample(transform.max_fit_examples, 3)["image"], seed=3)
    assert sorted(fitted) == sorted(today)
    for k in today:
      assert fitted[k].dtype == today[k].dtype and fitted[k].tobytes() == today[k].tobytes(), k
  # A prefix (the first class only) would give other statistics: the sample spans the split.
  prefix = transform.fit(train["image"][:12], seed=3)
  assert not np.array_equal(prefix["mean"], today["mean"])


def test_limit_train_keeps_a_seeded_sample_across_the_lazy_split(folder):
  memory = load_splits(data_config(folder, "memory", limit_train=8), seed=0)
  grain = load_splits(data_config(folder, "grain", limit_train=8), seed=0)
  assert isinstance(grain.train, LazySplit) and len(grain.train) == 8
  np.testing.assert_array_equal(grain.train.rows, sample_indices(32, 8, 0))
  assert set(grain.train[np.arange(8)]["label"].tolist()) == {0, 1}
  for k in ("image", "label"):
    np.testing.assert_array_equal(grain.train[np.arange(8)][k], memory.train.arrays[k], err_msg=k)
  sequential = load_splits(data_config(folder, "grain", limit_train=8, order="sequential"))
  np.testing.assert_array_equal(sequential.train.rows, np.arange(8))
  narrower = grain.train.sample(3, 1)  # a sample of a sample indexes the source rows
  np.testing.assert_array_equal(narrower.rows, grain.train.rows[sample_indices(8, 3, 1)])


def test_lazy_split_errors_name_what_is_wrong(tmp_path, folder):
  lazy = LazySplit(ImageFolderSource(folder, "train"))
  with pytest.raises(IndexError, match="index 32 out of range for a split of 32 examples"):
    lazy[32]
  with pytest.raises(TypeError, match="indexed by an int, a slice or a 1-D integer array"):
    lazy[np.array([0.5])]
  Image.new("RGB", (9, 9)).save(f"{folder}/train/c1/odd.png")  # one image of another size
  mixed = LazySplit(ImageFolderSource(folder, "train"))
  with pytest.raises(ValueError, match=r"field 'image' differs in shape .*image_size"):
    mixed[np.arange(len(mixed))]
  resized = LazySplit(ImageFolderSource(folder, "train", image_size=16))
  assert resized[np.arange(len(resized))]["image"].shape == (33, 16, 16, 3)


def tiny(folder: str, pipeline: str) -> ConfigDict:
  c = digits_mlp.get_config("tiny")
  c.num_devices = 1
  c.data.update(data_config(folder, pipeline))
  c.data.batch_size = c.data.eval_batch_size = 8
  c.data.augment = ConfigDict({"crop_padding": 1, "flip": True})
  c.input = ConfigDict({"name": "spatial", "max_fit_examples": 8})  # a quarter of the split
  brief_run(c, 6, logs=2, evals=2, checkpoints=2)  # 4 steps per epoch: crosses an epoch
  return c


def test_training_on_a_lazy_split_equals_training_from_memory(tmp_path, monkeypatch, folder):
  memory = train_and_evaluate(tiny(folder, "memory"), str(tmp_path / "memory"))

  def no_whole_split(*args, **kwargs):
    raise AssertionError("the grain pipeline decoded the whole split")

  stacked = []  # (split, rows) of every stacked read
  original_stack = LazySplit._stack

  def recorded_stack(self, indices):
    stacked.append((self.source.split, len(indices)))
    return original_stack(self, indices)

  monkeypatch.setattr(sources_module, "load_image_folder", no_whole_split)
  monkeypatch.setattr(LazySplit, "_stack", recorded_stack)
  grain = train_and_evaluate(tiny(folder, "grain"), str(tmp_path / "grain"))
  train_reads = [n for split, n in stacked if split == "train"]
  assert train_reads and max(train_reads) <= 8  # the fit's sample, one init row, one example
  assert ("val", 16) in stacked  # the test split is decoded into memory
  drop = ("train_seconds", "train_steps_per_sec")
  assert {k: v for k, v in grain.items() if k not in drop} == {
      k: v for k, v in memory.items() if k not in drop}
  monkeypatch.undo()
  a = Experiment(tiny(folder, "memory"), str(tmp_path / "memory"))
  b = Experiment(tiny(folder, "grain"), str(tmp_path / "grain"))
  assert isinstance(b.splits.train, LazySplit)
  for k in a.stats:
    assert a.stats[k].tobytes() == b.stats[k].tobytes(), k
  for x, y in zip(jax.tree.leaves(a.restore()), jax.tree.leaves(b.restore())):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
