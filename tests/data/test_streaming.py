"""The Grain training-input path: the same batches as the in-memory one, resumable, per-process
slices, image-folder / tar sources that decode one example at a time, and the trainer's switch."""

import io
import json
import os
import tarfile

import jax
import numpy as np
import pytest
from PIL import Image

from configs import digits_mlp
from freqnoise import experiment as experiment_module, train as train_module
from freqnoise.data import ArrayDataset
from freqnoise.data.images import load_image_folder
from freqnoise.data.pipeline import TrainBatches
from freqnoise.data.random_access import ArraySource, ImageFolderSource
from freqnoise.data.streaming import StreamingBatches
from freqnoise.experiment import Experiment
from freqnoise.train import train_and_evaluate
from tests.conftest import write_image_folder

AUGMENT = dict(crop_padding=2, flip=True)
ALTERNATING = dict(crop_padding=2, crop_reflect=True, alternating_flip=True)  # airbench's


def dataset(n: int = 50) -> ArrayDataset:
  """uint8 images, labels and a float field: every key must come through bitwise."""
  rng = np.random.default_rng(0)
  return ArrayDataset({"image": rng.integers(0, 256, (n, 6, 6, 3), dtype=np.uint8),
                       "label": (np.arange(n) % 7).astype(np.int32),
                       "weight": rng.random(n).astype(np.float32)})


def assert_same_batch(a: dict, b: dict) -> None:
  assert sorted(a) == sorted(b)
  for k in a:
    assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("order", ["shuffled", "sequential"])
@pytest.mark.parametrize("augment", [None, AUGMENT, ALTERNATING],
                         ids=["plain", "augmented", "alternating"])
@pytest.mark.parametrize("seed", [0, 3])
def test_streaming_equals_in_memory_batches_across_epochs(seed, augment, order):
  ds = dataset()  # 50 rows, batch 8: 6 steps per epoch, 2 rows dropped; steps 0-13 = 3 epochs
  memory = TrainBatches(ds, 8, seed, augment=augment, order=order)
  streaming = StreamingBatches(ds, 8, seed, augment=augment, order=order)
  it = streaming.iterator(0)
  for step in range(14):
    assert_same_batch(next(it), memory[step])
  it.close()
  for step in (13, 2, 3):  # `batches[step]` also takes any step, as TrainBatches does
    assert_same_batch(streaming[step], memory[step])
  streaming.close()


def test_resume_mid_epoch_from_saved_state_is_bitwise_the_same():
  ds = dataset()
  straight = StreamingBatches(ds, 8, 3, augment=AUGMENT).iterator(0)
  expected = [next(straight) for _ in range(12)]
  first = StreamingBatches(ds, 8, 3, augment=AUGMENT).iterator(0)
  for _ in range(4):  # stop at step 4 of a 6-step epoch
    next(first)
  state = json.loads(json.dumps(first.get_state()))  # what a checkpoint would hold
  assert state["next_step"] == 4
  first.close()
  resumed = StreamingBatches(dataset(), 8, 3, augment=AUGMENT).iterator(0)
  resumed.set_state(state)
  for step in range(4, 12):
    assert_same_batch(next(resumed), expected[step])
  assert resumed.get_state()["next_step"] == 12
  other_seed = StreamingBatches(ds, 8, 4).iterator(0)
  with pytest.raises(ValueError, match="seed=3 but these batches have seed=4"):
    other_seed.set_state(state)


def test_process_slices_are_disjoint_and_cover_each_epoch():
  ds = dataset()
  whole = StreamingBatches(ds, 8, 0)
  parts = [StreamingBatches(ds, 8, 0, process_index=p, process_count=2) for p in range(2)]
  for epoch in range(2):
    seen = []
    for step in range(epoch * 6, (epoch + 1) * 6):
      rows = [p.rows(step) for p in parts]
      assert len(rows[0]) == len(rows[1]) == 4 and not set(rows[0]) & set(rows[1])
      np.testing.assert_array_equal(np.sort(np.concatenate(rows)), whole.rows(step))
      batches = [p[step] for p in parts]
      np.testing.assert_array_equal(np.sort(np.concatenate([b["label"] for b in batches])),
                                    np.sort(whole[step]["label"]))
      for b, r in zip(batches, rows):
        assert_same_batch(b, ds[r])
      seen.extend(np.concatenate(rows))
    assert len(seen) == len(set(seen)) == 48  # B * steps_per_epoch distinct rows
    perm = np.random.default_rng([0, epoch]).permutation(50)
    assert set(seen) == set(perm[:48])


def _tar_folder(root, name: str, split: str = "train", mode: str = "w") -> str:
  """Writes every file under root/split into root/../archives/name (members `split/...`)."""
  out = os.path.join(os.path.dirname(root), "archives")
  os.makedirs(out, exist_ok=True)
  with tarfile.open(os.path.join(out, name), mode) as tar:
    tar.add(os.path.join(root, split), arcname=split)
  return out


def assert_source_matches(source, images, labels) -> None:
  assert len(source) == len(images)
  for i in range(len(source)):
    example = source[i]
    np.testing.assert_array_equal(example["image"], images[i])
    assert example["label"] == labels[i] and example["label"].dtype == np.int32


@pytest.mark.parametrize("layout", ["folder", "tar", "tar.gz", "shards"])
def test_image_folder_source_decodes_what_load_image_folder_decodes(tmp_path, layout):
  root = str(write_image_folder(tmp_path / "images", size=10, per_class=(5, 3), classes=3))
  if layout == "folder":
    data = root
  elif layout in ("tar", "tar.gz"):
    data = _tar_folder(root, f"train.{layout}", mode="w:gz" if layout == "tar.gz" else "w")
    _tar_folder(root, f"val.{layout}", split="val", mode="w:gz" if layout == "tar.gz" else "w")
  else:  # two shards, one plain and one gzipped, splitting the classes between them
    data = str(tmp_path / "shards")
    os.makedirs(data)
    for k, (classes, mode, ext) in enumerate((((0, 1), "w", "tar"), ((2,), "w:gz", "tar.gz"))):
      with tarfile.open(os.path.join(data, f"train-0000{k}-of-00002.{ext}"), mode) as tar:
        for c in classes:
          tar.add(os.path.join(root, "train", f"c{c}"), arcname=f"train/c{c}")
    os.symlink(os.path.join(root, "val"), os.path.join(data, "val"))
  for image_size in (None, 8):
    train, test, names = load_image_folder(data, test_split="val", image_size=image_size,
                                           verbose=False)
    source = ImageFolderSource(data, "train", image_size=image_size)
    assert source.class_names == names == ["c0", "c1", "c2"]
    assert_source_matches(source, train["image"], train["label"])
    val = ImageFolderSource(data, "val", image_size=image_size, class_names=source.class_names)
    assert_source_matches(val, test["image"], test["label"])


def _jpeg(value: int) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(buffer, format="JPEG")
  return buffer.getvalue()


def test_corrupt_jpeg_in_a_tar_names_the_archive_and_the_member(tmp_path):
  path = tmp_path / "train.tar"
  with tarfile.open(path, "w") as tar:
    for name, data in (("train/a/0.jpg", _jpeg(50)), ("train/a/1.jpg", _jpeg(90)[:40]),
                       ("train/b/0.jpg", b"not an image at all")):
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  source = ImageFolderSource(str(tmp_path), "train")  # indexing decodes nothing
  assert len(source) == 3 and source[0]["image"].shape == (4, 4, 3)
  for i, member in ((1, "train/a/1.jpg"), (2, "train/b/0.jpg")):
    with pytest.raises(ValueError, match="cannot decode image") as error:
      source[i]
    assert str(path) in str(error.value) and member in str(error.value)
  with pytest.raises(ValueError, match=r"train\.tar: train/a/1\.jpg"):  # also through Grain
    next(StreamingBatches(source, 3, 0, order="sequential").iterator(0))


def test_workers_and_threads_give_the_same_batches_as_in_process_reading(tmp_path):
  root = str(write_image_folder(tmp_path / "images", size=6, per_class=(6, 1), classes=2))
  data = _tar_folder(root, "train.tar")
  source = ImageFolderSource(data, "train")  # open archive handles must not travel to workers
  in_process = StreamingBatches(source, 4, 1, augment=AUGMENT).iterator(2)
  expected = [next(in_process) for _ in range(5)]
  threads = StreamingBatches(source, 4, 1, augment=AUGMENT, read_threads=3).iterator(2)
  for batch in expected:  # reading threads keep the order too
    assert_same_batch(next(threads), batch)
  workers = StreamingBatches(source, 4, 1, augment=AUGMENT, num_workers=2).iterator(2)
  try:
    for batch in expected:
      assert_same_batch(next(workers), batch)
  finally:
    workers.close()


def tiny(pipeline: str):
  c = digits_mlp.get_config("tiny")
  c.num_devices = 1
  c.num_steps = 25  # 21 steps per epoch: crosses an epoch boundary
  c.data.augment.crop_padding = 1
  c.data.pipeline = pipeline
  return c


def test_training_through_grain_equals_training_from_memory(tmp_path, monkeypatch):
  served = []

  class Recorded(StreamingBatches):
    def __getitem__(self, step):
      served.append(step)
      return super().__getitem__(step)

  monkeypatch.setattr(train_module, "StreamingBatches", Recorded)
  memory = train_and_evaluate(tiny("memory"), str(tmp_path / "memory"))
  assert not served
  grain = train_and_evaluate(tiny("grain"), str(tmp_path / "grain"))
  assert served == list(range(25))  # every batch came through Grain
  drop = ("train_seconds", "train_steps_per_sec")
  assert {k: v for k, v in grain.items() if k not in drop} == {
      k: v for k, v in memory.items() if k not in drop}
  a = Experiment(tiny("memory"), str(tmp_path / "memory")).restore()
  b = Experiment(tiny("grain"), str(tmp_path / "grain")).restore()
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_unknown_pipeline_fails_before_any_data_is_read(tmp_path, monkeypatch):
  def no_data(*args, **kwargs):
    raise AssertionError("data was read")

  monkeypatch.setattr(experiment_module, "load_splits", no_data)
  with pytest.raises(ValueError, match=r"unknown config\.data\.pipeline 'tfdata'; expected one "
                                       r"of memory, grain"):
    train_and_evaluate(tiny("tfdata"), str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run")


def test_array_source_and_argument_errors():
  ds = dataset(10)
  assert len(ArraySource(ds)) == 10 and ArraySource(ds.arrays)[3]["label"] == 3
  with pytest.raises(ValueError, match="larger than the training split"):
    StreamingBatches(ds, 16, 0)
  with pytest.raises(ValueError, match="unknown batch order"):
    StreamingBatches(ds, 4, 0, order="random")
  with pytest.raises(ValueError, match="num_workers must be a non-negative integer"):
    StreamingBatches(ds, 4, 0, num_workers=-1)
