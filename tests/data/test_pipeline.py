"""Batching, shuffling, per-process slices and augmentation are deterministic and exact."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from freqnoise.data import ArrayDataset
from freqnoise.data.augment import augment_images, random_crop_with_padding, random_flip
from freqnoise.data.pipeline import TrainBatches, eval_batches, prefetch


def dataset(n=10):
  return ArrayDataset({"x": np.arange(n), "label": np.arange(n) % 3})


def test_each_epoch_visits_every_example_once_and_depends_only_on_seed_and_step():
  b = TrainBatches(dataset(12), 4, seed=7)
  epoch0 = np.concatenate([b[s]["x"] for s in range(3)])
  assert sorted(epoch0) == list(range(12))
  epoch1 = np.concatenate([b[s]["x"] for s in range(3, 6)])
  assert sorted(epoch1) == list(range(12)) and not np.array_equal(epoch0, epoch1)
  fresh = TrainBatches(dataset(12), 4, seed=7)
  np.testing.assert_array_equal(fresh[4]["x"], b[4]["x"])  # random access == sequential
  assert not np.array_equal(TrainBatches(dataset(12), 4, seed=8)[0]["x"], b[0]["x"])


@given(st.integers(1, 4), st.integers(0, 20))
@settings(max_examples=25, deadline=None)
def test_process_slices_partition_the_global_batch(processes, step):
  ds = dataset(40)
  whole = TrainBatches(ds, 8, seed=1)[step]["x"]
  if 8 % processes:
    with pytest.raises(ValueError, match="divisible"):
      TrainBatches(ds, 8, seed=1, process_count=processes)
    return
  parts = [TrainBatches(ds, 8, seed=1, process_index=i, process_count=processes)[step]["x"]
           for i in range(processes)]
  # in order, not only the same set: row j of a global batch (and with it its augmentation and
  # dropout mask) is the same example on any process layout
  np.testing.assert_array_equal(np.concatenate(parts), whole)


@pytest.mark.parametrize("pipeline", ["memory", "grain"])
def test_process_slices_are_augmented_as_in_the_whole_batch(pipeline):
  from freqnoise.data.streaming import StreamingBatches
  images = np.random.default_rng(0).integers(0, 255, (24, 6, 6, 3)).astype(np.uint8)
  ds = ArrayDataset({"image": images, "label": np.arange(24)})
  settings = dict(crop_padding=2, flip=True, resized_crop_min_scale=0.5)
  make = TrainBatches if pipeline == "memory" else StreamingBatches
  for step in (0, 3):
    whole = make(ds, 8, seed=2, augment=settings)[step]
    parts = [make(ds, 8, seed=2, augment=settings, process_index=i, process_count=2)[step]
             for i in range(2)]
    for k in ("image", "label"):
      np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), whole[k])


def test_eval_batches_pad_and_mask():
  batches = list(eval_batches(dataset(10), 4))
  assert [b["x"].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 9, 9]]
  assert batches[-1]["mask"].tolist() == [1, 1, 0, 0]
  two = [list(eval_batches(dataset(10), 4, process_index=i, process_count=2)) for i in range(2)]
  assert two[0][2]["x"].tolist() == [8, 9] and two[1][2]["mask"].tolist() == [0, 0]


def test_batch_larger_than_split_is_an_error():
  with pytest.raises(ValueError, match="larger than the training split"):
    TrainBatches(dataset(3), 4, seed=0)


def test_crop_with_padding_is_a_shift_of_the_zero_padded_image():
  img = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1) + 1
  rng = np.random.default_rng(3)
  out = random_crop_with_padding(rng, img, 2)
  rng2 = np.random.default_rng(3)
  dy, dx = rng2.integers(0, 5, 1)[0], rng2.integers(0, 5, 1)[0]
  padded = np.pad(img[0, :, :, 0], 2)
  np.testing.assert_array_equal(out[0, :, :, 0], padded[dy:dy + 4, dx:dx + 4])


def test_flip_mirrors_about_half_and_keeps_the_rest():
  imgs = np.random.default_rng(0).integers(0, 255, (200, 3, 5, 1), dtype=np.uint8)
  out = random_flip(np.random.default_rng(1), imgs)
  flipped = np.array([np.array_equal(o, i[:, ::-1]) and not np.array_equal(o, i)
                      for o, i in zip(out, imgs)])
  kept = np.array([np.array_equal(o, i) for o, i in zip(out, imgs)])
  assert np.all(flipped | kept) and 70 < flipped.sum() < 130
  with pytest.raises(ValueError, match="NHWC"):
    augment_images(np.random.default_rng(0), imgs[0], flip=True)


def test_prefetch_yields_in_order_and_reraises():
  assert list(prefetch(lambda i: i * i, 2, 6)) == [4, 9, 16, 25]

  def boom(i):
    if i == 3:
      raise RuntimeError("bad batch 3")
    return i

  with pytest.raises(RuntimeError, match="bad batch 3"):
    list(prefetch(boom, 0, 10))


def test_train_batches_apply_the_configured_augmentation_per_step():
  images = np.random.default_rng(0).integers(0, 255, (12, 8, 8, 3), dtype=np.uint8)
  ds = ArrayDataset({"image": images, "label": np.arange(12)})
  settings = {"crop_padding": 2, "flip": True, "resized_crop_min_scale": 0.5}
  batches = TrainBatches(ds, 4, seed=3, augment=settings)
  plain = TrainBatches(ds, 4, seed=3, augment={"crop_padding": 0, "flip": False})[5]
  expected = augment_images(np.random.default_rng([3, 5, 1]), plain["image"], **settings)
  np.testing.assert_array_equal(batches[5]["image"], expected)
  np.testing.assert_array_equal(batches[5]["label"], plain["label"])
  assert not np.array_equal(expected, plain["image"])


def test_sequential_order_takes_row_blocks_in_order_every_epoch():
  ds = ArrayDataset({"x": np.arange(10)})
  batches = TrainBatches(ds, 4, seed=0, order="sequential")
  assert [batches[s]["x"].tolist() for s in range(5)] == [
      [0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 2, 3], [4, 5, 6, 7], [0, 1, 2, 3]]
  second = TrainBatches(ds, 4, seed=0, order="sequential", process_index=1, process_count=2)
  assert second[1]["x"].tolist() == [6, 7]
  with pytest.raises(ValueError, match="unknown batch order 'random'; expected one of shuffled, sequential"):
    TrainBatches(ds, 4, seed=0, order="random")
