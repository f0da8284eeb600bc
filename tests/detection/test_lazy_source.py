"""Lazy detection sources: `source[i]` equals the in-memory loader's row i, through Grain too."""

from __future__ import annotations

import json
import pickle

import ml_collections
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from freqnoise.data.dataset import ArrayDataset
from freqnoise.data.lazy_split import LazySplit
from freqnoise.data.pipeline import TrainBatches, eval_batches
from freqnoise.data.streaming import StreamingBatches
from freqnoise.detection import sources
from freqnoise.detection.coco_data import load_detection, load_yolo_seg
from freqnoise.detection.lazy_source import DetectionSource
from freqnoise.detection.polygons import rasterize

# pycocotools' Cython decode warns under NumPy 2.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SIZES = dict(image_size=32, max_instances=3, mask_size=8)
FIELDS = {"image": ((32, 32, 3), np.uint8), "boxes": ((3, 4), np.float32),
          "classes": ((3,), np.int32), "masks": ((3, 8, 8), np.uint8), "size": ((2,), np.int32),
          "scale": ((), np.float32), "orig_size": ((2,), np.int32), "image_id": ((), np.int32)}


def _rect(x1, y1, x2, y2):
  return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], np.float64)


def _tri(x1, y1, x2, y2):
  return np.array([[x1, y1], [x2, y1], [x2, y2]], np.float64)


# (height, width, [(class, polygon)]): three image sizes, rectangles and triangles, one image with
# more instances than max_instances and one without a label file (None).
IMAGES = [(48, 64, [(2, _rect(8, 8, 24, 16)), (0, _tri(32, 0, 64, 48))]),
          (80, 40, [(1, _rect(0, 0, 20, 40))]),
          (30, 30, None),
          (48, 64, [(0, _rect(2, 2, 10, 10)), (1, _tri(20, 5, 60, 45)), (2, _rect(40, 30, 62, 46)),
                    (1, _tri(0, 20, 16, 47))]),
          (80, 40, [(2, _tri(5, 10, 35, 70)), (0, _rect(1, 60, 12, 79))]),
          (30, 30, [(1, _rect(3, 3, 27, 20))])]


def _write_jpeg(path, polygons, h, w, seed):
  """Noise plus the instances drawn bright, saved as JPEG (lossy: both readers decode the same)."""
  mask = rasterize(polygons, h, w) if polygons else np.zeros((h, w), np.uint8)
  noise = np.random.default_rng(seed).integers(0, 80, (h, w, 3))
  Image.fromarray((noise + mask[..., None] * 170).astype(np.uint8)).save(path, quality=90)


@pytest.fixture
def yolo_dir(tmp_path):
  root = tmp_path / "yolo"
  (root / "images/train2017").mkdir(parents=True)
  (root / "labels/train2017").mkdir(parents=True)
  for k, (h, w, instances) in enumerate(IMAGES):
    stem = f"{100 + 7 * k:012d}"
    _write_jpeg(root / f"images/train2017/{stem}.jpg", [p for _, p in instances or []], h, w, k)
    if instances is not None:
      lines = [" ".join([str(c)] + [f"{v:.6f}" for v in (p / [w, h]).ravel()])
               for c, p in instances]
      (root / f"labels/train2017/{stem}.txt").write_text("\n".join(lines) + "\n")
  (root / "classes.txt").write_text("cat\ndog\nbird\n")
  return root


@pytest.fixture
def coco_dir(tmp_path):
  """COCO layout: polygons, a compressed RLE, an uncompressed-RLE crowd, category ids with gaps."""
  root = tmp_path / "coco"
  (root / "annotations").mkdir(parents=True)
  (root / "val2017").mkdir()
  images, annotations, categories = [], [], [{"id": 90, "name": "toothbrush"},
                                             {"id": 1, "name": "person"}, {"id": 18, "name": "dog"}]
  for k, (h, w, instances) in enumerate(IMAGES):
    name = f"im{5 - k}.jpg"  # file-name order is the reverse of the id order
    _write_jpeg(root / "val2017" / name, [p for _, p in instances or []], h, w, k)
    images.append({"id": 40 + k, "file_name": name, "height": h, "width": w})
    for j, (c, poly) in enumerate(instances or []):
      box = [*poly.min(0), *(poly.max(0) - poly.min(0))]
      seg = [poly.ravel().tolist()]
      if j == 1:  # compressed RLE, as JSON holds it
        seg = mask_utils.encode(np.asfortranarray(rasterize([poly], h, w)))
        seg["counts"] = seg["counts"].decode()
      annotations.append({"id": len(annotations) + 1, "image_id": 40 + k, "iscrowd": 0,
                          "category_id": categories[c]["id"], "bbox": [float(v) for v in box],
                          "area": float(rasterize([poly], h, w).sum()), "segmentation": seg})
  crowd = np.zeros((48, 64), np.uint8, order="F")
  crowd[30:46, 2:20] = 1
  flat = crowd.ravel(order="F")
  counts = np.diff(np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])).tolist()
  annotations.append({"id": 99, "image_id": 40, "category_id": 1, "iscrowd": 1, "area": 288.0,
                      "bbox": [2, 30, 18, 16], "segmentation": {"size": [48, 64],
                                                                "counts": counts}})
  (root / "annotations/instances_val2017.json").write_text(json.dumps(
      {"images": images, "annotations": annotations, "categories": categories}))
  return root


@pytest.fixture(params=["yolo-seg", "cocojson"])
def folder(request) -> tuple[str, str]:
  """(`kind:DIR`, split) of each synthetic folder."""
  if request.param == "yolo-seg":
    return f"yolo-seg:{request.getfixturevalue('yolo_dir')}", "train2017"
  return f"cocojson:{request.getfixturevalue('coco_dir')}", "val2017"


def assert_same_example(lazy: dict, row: dict) -> None:
  assert set(lazy) == set(row) == set(FIELDS)
  for k, (shape, dtype) in FIELDS.items():
    value = np.asarray(lazy[k])
    assert (value.shape, value.dtype) == (shape, dtype), k
    np.testing.assert_array_equal(value, row[k], err_msg=k)


def assert_same_example_fields(lazy: dict, row: dict) -> None:
  """Equal fields at any image size (FIELDS fixes S = 32)."""
  assert set(lazy) == set(row)
  for k in row:
    assert np.asarray(lazy[k]).dtype == row[k].dtype, k
    np.testing.assert_array_equal(lazy[k], row[k], err_msg=k)


def test_every_row_equals_the_in_memory_row_and_coco_gt_is_the_same(folder, capsys):
  source, split = folder
  ds, gt, meta = load_detection(source, split, **SIZES)
  assert "4 instances, keeping the 3 largest" in capsys.readouterr().out
  lazy = DetectionSource(source, split, **SIZES)
  assert "4 instances, keeping the 3 largest" in capsys.readouterr().out  # once, when indexed
  assert len(lazy) == len(ds) == 6
  for i in range(len(ds)):
    assert_same_example(lazy[i], ds[i])
  assert lazy.coco_gt == gt and lazy.meta == meta
  np.testing.assert_array_equal(lazy.image_ids, ds.arrays["image_id"])
  assert_same_example(lazy[-1], ds[5])
  # the rows hold what was drawn: three sizes, classes, the image without labels
  np.testing.assert_array_equal(np.unique(ds.arrays["orig_size"], axis=0),
                                [[30, 30], [48, 64], [80, 40]])
  assert (ds.arrays["classes"] > 0).sum() == 9 and ds.arrays["masks"].max() == 255
  with pytest.raises(IndexError, match="index 6 out of range for 6 examples"):
    lazy[6]
  # a slice of the split: the same rows as the in-memory slice, and its ground truth
  part, part_gt, _ = load_detection(source, split, start=2, stop=5, **SIZES)
  sliced = DetectionSource(source, split, start=2, stop=5, **SIZES)
  assert len(sliced) == 3 and sliced.coco_gt == part_gt
  for i in range(3):
    assert_same_example(sliced[i], part[i])
    assert_same_example(sliced[i], ds[i + 2])


def test_the_source_pickles_without_its_ground_truth_and_reads_the_same(folder):
  source, split = folder
  lazy = DetectionSource(source, split, **SIZES)
  copy = pickle.loads(pickle.dumps(lazy))
  assert copy.coco_gt is None and lazy.coco_gt is not None  # the ground truth stays here
  assert len(copy) == len(lazy) and copy.meta == lazy.meta
  np.testing.assert_array_equal(copy.image_ids, lazy.image_ids)
  for i in (0, 3, 5):
    assert_same_example(copy[i], lazy[i])


def test_streaming_batches_equal_in_memory_train_batches_with_flips(folder):
  source, split = folder
  ds, _, _ = load_detection(source, split, **SIZES)
  lazy = LazySplit(DetectionSource(source, split, **SIZES))
  augment = {"flip": True}
  memory = TrainBatches(ds, 2, 5, augment=augment)
  streaming = StreamingBatches(lazy, 2, 5, augment=augment)
  flipped = 0
  try:
    for step in range(5):  # 3 steps an epoch: crosses an epoch boundary
      expected = memory[step]
      batch = streaming[step]
      assert set(batch) == set(expected)
      for k in expected:
        np.testing.assert_array_equal(batch[k], expected[k], err_msg=f"step {step}: {k}")
      plain = TrainBatches(ds, 2, 5)[step]  # the same rows, not augmented
      flipped += int((batch["image"] != plain["image"]).any(axis=(1, 2, 3)).sum())
  finally:
    streaming.close()
  assert flipped > 0  # the flip augmentation was applied (to images, boxes and masks alike)


def test_a_grain_worker_process_reads_the_same_batch(yolo_dir):
  source = f"yolo-seg:{yolo_dir}"
  ds, _ = load_yolo_seg(str(yolo_dir), **SIZES)
  workers = StreamingBatches(LazySplit(DetectionSource(source, "train2017", **SIZES)), 3, 1,
                             augment={"flip": True}, num_workers=1)
  try:
    batch = workers[1]
  finally:
    workers.close()
  expected = TrainBatches(ds, 3, 1, augment={"flip": True})[1]
  for k in expected:
    np.testing.assert_array_equal(batch[k], expected[k], err_msg=k)


def _cfg(root, **overrides) -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict(dict(source=f"yolo-seg:{root}", train_split="train2017",
                                       test_split="train2017", train_range=(0, 4),
                                       test_range=(4, 0), image_size=64, max_instances=3,
                                       mask_size=8))
  cfg.update(overrides)
  return cfg


def test_load_with_grain_gives_a_lazy_train_split_and_lazy_test_reads_lazily(yolo_dir):
  from freqnoise.evaluators.detection import split_image_ids  # imports JAX: only here
  memory = sources.load(_cfg(yolo_dir))
  assert isinstance(memory.train, ArrayDataset) and isinstance(memory.test, ArrayDataset)
  grain = sources.load(_cfg(yolo_dir, pipeline="grain"))
  assert isinstance(grain.train, LazySplit) and isinstance(grain.train.source, DetectionSource)
  assert isinstance(grain.test, ArrayDataset)
  assert grain.meta == memory.meta and grain.num_classes == memory.num_classes == 3
  assert [im["id"] for im in grain.meta["coco_gt"]["train"]["images"]] == [100, 107, 114, 121]
  assert len(grain.train) == 4
  for i in range(4):
    assert_same_example_fields(grain.train[i], memory.train[i])
  for k, v in grain.test.arrays.items():
    np.testing.assert_array_equal(v, memory.test.arrays[k], err_msg=k)

  lazy = sources.load(_cfg(yolo_dir, pipeline="grain", lazy_test=True))
  assert isinstance(lazy.test, LazySplit) and lazy.meta == memory.meta
  # the summary line counts each split's instances (after the max_instances = 3 cut: 2 + 1 + 0
  # + 3 and 2 + 1), a lazy split without decoding (issue 25)
  assert "yolo-seg:yolo: 4 train / 2 test (6 / 3 instances), 3 classes;" in memory.summary()
  assert lazy.summary() == grain.summary() == memory.summary()
  # what the detection evaluator reads: padded eval batches and the split's image ids
  for got, want in zip(eval_batches(lazy.test, 4), eval_batches(memory.test, 4), strict=True):
    for k in want:
      np.testing.assert_array_equal(got[k], want[k], err_msg=k)
  assert split_image_ids(lazy.test) == split_image_ids(memory.test) == [128, 135]
  assert split_image_ids(lazy.train.sample(2, 0)) == split_image_ids(memory.train.sample(2, 0))
  with pytest.raises(ValueError, match="lazy_test must be True or False"):
    sources.check(_cfg(yolo_dir, lazy_test="yes"))


def test_an_image_is_read_only_when_asked_for_and_a_wrong_size_names_it(coco_dir):
  ann = coco_dir / "annotations/instances_val2017.json"
  data = json.loads(ann.read_text())
  data["images"][1]["height"] = 81  # im4.jpg is 80 high
  ann.write_text(json.dumps(data))
  lazy = DetectionSource(f"cocojson:{coco_dir}", "val2017", **SIZES)  # indexing decodes nothing
  assert lazy[0]["image_id"] == 45
  with pytest.raises(ValueError, match=r"im4\.jpg: decoded size 80x40 differs from the "
                                       r"annotation's 81x40"):
    lazy[4]
  with pytest.raises(ValueError, match="unknown detection source"):
    DetectionSource(f"coco:{coco_dir}", "val2017")
  with pytest.raises(ValueError, match="multiple of 32"):
    DetectionSource(f"cocojson:{coco_dir}", "val2017", image_size=48)


def test_real_coco128_row_5_equals_the_in_memory_row(shared_data):
  root = shared_data / "coco128-seg"
  if not root.is_dir():
    pytest.skip(f"{root} is absent")
  sizes = dict(image_size=640, max_instances=100, mask_size=28)
  ds, gt = load_yolo_seg(str(root), stop=6, **sizes)
  lazy = DetectionSource(f"yolo-seg:{root}", "train2017", stop=6, **sizes)
  row = lazy[5]
  assert_same_example_fields(row, ds[5])
  assert (row["classes"] > 0).sum() > 0 and row["size"].max() == 640
  assert lazy.coco_gt == gt
