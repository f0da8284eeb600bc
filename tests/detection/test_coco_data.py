"""Detection loaders (YOLO-seg folders, COCO json), their pycocotools ground truth, and flipping."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from freqnoise.data.augment import flip_detection_batch
from freqnoise.detection.coco_data import (load_coco_json, load_detection,
                                           load_yolo_seg)
from freqnoise.detection.polygons import polygon_area, rasterize

# pycocotools' Cython decode warns under NumPy 2; COCOeval and loadRes call it directly.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# Image A: 64 wide x 48 high, a rectangle (class 2) and a triangle (class 0), disjoint.
RECT_A = np.array([[8, 8], [24, 8], [24, 16], [8, 16]], np.float64)
TRI_A = np.array([[32, 0], [64, 0], [64, 48]], np.float64)
# Image B: 40 wide x 80 high (portrait), one rectangle (class 79).
RECT_B = np.array([[0, 0], [20, 0], [20, 40], [0, 40]], np.float64)


def _write_png(path, polygons, h, w):
  """Instances drawn white on black (pycocotools' rasterisation), so pixels show the masks."""
  mask = rasterize(polygons, h, w) if polygons else np.zeros((h, w), np.uint8)
  Image.fromarray(np.repeat(mask[..., None] * 255, 3, axis=-1)).save(path)


def _yolo_line(cls, poly, h, w):
  return " ".join([str(cls)] + [f"{v:.6f}" for v in (poly / [w, h]).ravel()])


@pytest.fixture
def yolo_dir(tmp_path):
  root = tmp_path / "yolo"
  (root / "images" / "train2017").mkdir(parents=True)
  (root / "labels" / "train2017").mkdir(parents=True)
  _write_png(root / "images/train2017/000000000007.png", [RECT_A, TRI_A], 48, 64)
  (root / "labels/train2017/000000000007.txt").write_text(
      f"{_yolo_line(2, RECT_A, 48, 64)}\n{_yolo_line(0, TRI_A, 48, 64)}\n")
  _write_png(root / "images/train2017/000000000012.png", [RECT_B], 80, 40)
  (root / "labels/train2017/000000000012.txt").write_text(_yolo_line(79, RECT_B, 80, 40) + "\n")
  _write_png(root / "images/train2017/000000000003.png", [], 32, 32)  # no label file
  (root / "classes.txt").write_text("".join(f"name{k}\n" for k in range(80)))
  return root


def test_yolo_seg_fields(yolo_dir):
  ds, gt = load_yolo_seg(str(yolo_dir), image_size=32, max_instances=4, mask_size=8)
  a = ds.arrays
  assert len(ds) == 3
  expected_shapes = {"image": (3, 32, 32, 3), "boxes": (3, 4, 4), "classes": (3, 4),
                     "masks": (3, 4, 8, 8), "size": (3, 2), "scale": (3,), "orig_size": (3, 2),
                     "image_id": (3,)}
  expected_dtypes = {"image": np.uint8, "boxes": np.float32, "classes": np.int32, "masks": np.uint8,
                     "size": np.int32, "scale": np.float32, "orig_size": np.int32,
                     "image_id": np.int32}
  assert {k: v.shape for k, v in a.items()} == expected_shapes
  assert {k: v.dtype for k, v in a.items()} == expected_dtypes
  np.testing.assert_array_equal(a["image_id"], [3, 7, 12])  # sorted by name
  np.testing.assert_array_equal(a["orig_size"], [[32, 32], [48, 64], [80, 40]])
  np.testing.assert_array_equal(a["size"], [[32, 32], [24, 32], [32, 16]])
  np.testing.assert_allclose(a["scale"], [1.0, 0.5, 0.4])
  np.testing.assert_array_equal(a["classes"], [[0, 0, 0, 0], [3, 1, 0, 0], [80, 0, 0, 0]])
  np.testing.assert_allclose(a["boxes"][1, :2], [[4, 4, 12, 8], [16, 0, 32, 24]], atol=1e-5)
  np.testing.assert_allclose(a["boxes"][2, 0], [0, 0, 8, 16], atol=1e-5)
  # padding: instances all zero, image zero outside its content
  valid = a["classes"] > 0
  assert not a["boxes"][~valid].any() and not a["masks"][~valid].any()
  assert not a["image"][1, 24:].any() and not a["image"][2, :, 16:].any()
  assert a["image"][1, 5:7, 5:11].min() > 200 and a["image"][1, 10:, :12].max() == 0  # rectangle
  # masks: rectangles fill their box; the triangle covers the upper-right half of its box
  np.testing.assert_array_equal(a["masks"][1, 0], 255)
  np.testing.assert_array_equal(a["masks"][2, 0], 255)
  tri = a["masks"][1, 1]
  assert tri[0, -1] == 255 and tri[-1, 0] == 0
  assert abs(tri.mean() / 255 - 0.5) < 0.05


def test_yolo_seg_coco_gt_evaluates_to_ap_one(yolo_dir):
  _, gt = load_yolo_seg(str(yolo_dir), image_size=32, max_instances=4, mask_size=8)
  gt = json.loads(json.dumps(gt))  # plain JSON, as a file would hold it
  assert [im["id"] for im in gt["images"]] == [3, 7, 12]
  assert gt["images"][1] == {"id": 7, "height": 48, "width": 64, "file_name": "000000000007.png"}
  assert [c["name"] for c in gt["categories"][:2]] == ["name0", "name1"]
  assert [c["id"] for c in gt["categories"]] == list(range(1, 81))
  anns = gt["annotations"]
  assert [(a["image_id"], a["category_id"]) for a in anns] == [(7, 3), (7, 1), (12, 80)]
  assert anns[0]["bbox"] == pytest.approx([8, 8, 16, 8], abs=1e-4)
  assert anns[1]["area"] == polygon_area([TRI_A], 48, 64) and anns[0]["area"] == 128
  assert all(a["iscrowd"] == 0 for a in anns) and len({a["id"] for a in anns}) == 3
  for iou_type in ("bbox", "segm"):
    assert _ap_of_gt_as_detections(gt, iou_type) == pytest.approx(1.0)


def _ap_of_gt_as_detections(gt: dict, iou_type: str) -> float:
  with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
    coco = COCO()
    coco.dataset = gt
    coco.createIndex()
    dets = []
    for a in gt["annotations"]:
      if a["iscrowd"]:
        continue
      rle = coco.annToRLE(a)  # polygons or RLE
      dets.append({"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
                   "segmentation": rle, "score": 1.0})
    if iou_type == "bbox":
      dets = [{k: v for k, v in d.items() if k != "segmentation"} for d in dets]
    ev = COCOeval(coco, coco.loadRes(dets), iou_type)
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
  return float(ev.stats[0])


def test_yolo_seg_limits_names_and_errors(yolo_dir, capsys):
  ds, gt = load_yolo_seg(str(yolo_dir), start=1, stop=2, image_size=32, max_instances=1,
                         mask_size=4)
  assert "000000000007.png: 2 instances, keeping the 1 largest" in capsys.readouterr().out
  np.testing.assert_array_equal(ds.arrays["classes"], [[1]])  # the triangle (768 px > 128 px)
  assert len(gt["annotations"]) == 2  # ground truth keeps every instance
  (yolo_dir / "classes.txt").unlink()
  _, gt, meta = load_detection(f"yolo-seg:{yolo_dir}", "train2017", start=1, stop=2,
                               image_size=32)
  assert meta["class_names"][:2] == ["class0", "class1"] and len(meta["class_names"]) == 80
  with pytest.raises(ValueError, match="multiple of 32"):
    load_yolo_seg(str(yolo_dir), image_size=48)
  with pytest.raises(ValueError, match="unknown detection source"):
    load_detection(f"coco:{yolo_dir}", "train2017")
  (yolo_dir / "labels/train2017/000000000012.txt").write_text("5 0.1 0.1 0.2\n")
  with pytest.raises(ValueError, match=r"000000000012\.txt, line 1: odd number"):
    load_yolo_seg(str(yolo_dir), image_size=32)


def test_flip_twice_is_identity_and_boxes_follow_pixels(yolo_dir):
  ds, _ = load_yolo_seg(str(yolo_dir), image_size=32, max_instances=4, mask_size=8)
  batch = ds.head(3)
  flip = np.array([False, True, True])
  once = flip_detection_batch(batch, flip)
  twice = flip_detection_batch(once, flip)
  for k in batch:
    np.testing.assert_array_equal(twice[k], batch[k], err_msg=k)
  np.testing.assert_allclose(batch["boxes"][1, 0], [4, 4, 12, 8], atol=1e-4)  # input unchanged
  np.testing.assert_allclose(once["boxes"][1, :2], [[20, 4, 28, 8], [0, 0, 16, 24]], atol=1e-4)
  np.testing.assert_allclose(once["boxes"][2, 0], [8, 0, 16, 16], atol=1e-4)  # content width 16
  valid = once["classes"] > 0
  assert not once["boxes"][~valid].any() and not once["masks"][~valid].any()
  assert not once["image"][1, 24:].any() and not once["image"][2, :, 16:].any()  # padding stays
  # each flipped mask, placed in its flipped box, matches the flipped image's bright pixels
  for i, j in zip(*np.nonzero(valid)):
    x1, y1, x2, y2 = once["boxes"][i, j]
    m = once["masks"][i, j].shape[0]
    t = (np.arange(m) + 0.5) / m
    ys, xs = (y1 + t * (y2 - y1)).astype(int), (x1 + t * (x2 - x1)).astype(int)
    pixels = once["image"][i][ys[:, None], xs[None, :], 0] > 127
    agree = (pixels == (once["masks"][i, j] > 127)).mean()
    assert agree > 0.85, (i, j, agree)
  # the triangle's mask now covers the upper-left half of its box
  assert once["masks"][1, 1][0, 0] == 255 and once["masks"][1, 1][-1, -1] == 0


def test_coco_json(tmp_path):
  root = tmp_path / "coco"
  (root / "annotations").mkdir(parents=True)
  (root / "val2017").mkdir()
  _write_png(root / "val2017/b.png", [RECT_A, TRI_A], 48, 64)  # id 5
  _write_png(root / "val2017/a.png", [RECT_B], 80, 40)  # id 9
  tri = rasterize([TRI_A], 48, 64)
  tri_rle = mask_utils.encode(np.asfortranarray(tri))  # compressed RLE, as JSON holds it
  tri_rle["counts"] = tri_rle["counts"].decode()
  crowd = np.zeros((48, 64), np.uint8)
  crowd[30:46, 2:20] = 1
  crowd_rle = {"size": [48, 64], "counts": _uncompressed_counts(crowd)}
  data = {
      "images": [{"id": 5, "file_name": "b.png", "height": 48, "width": 64},
                 {"id": 9, "file_name": "a.png", "height": 80, "width": 40}],
      "categories": [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"},
                     {"id": 18, "name": "dog"}],
      "annotations": [
          {"id": 11, "image_id": 5, "category_id": 18, "iscrowd": 0, "area": 128.0,
           "bbox": [8, 8, 16, 8], "segmentation": [RECT_A.ravel().tolist()]},
          {"id": 12, "image_id": 5, "category_id": 90, "iscrowd": 0, "area": float(tri.sum()),
           "bbox": [32, 0, 32, 48], "segmentation": tri_rle},
          {"id": 13, "image_id": 5, "category_id": 1, "iscrowd": 1, "area": float(crowd.sum()),
           "bbox": [2, 30, 18, 16], "segmentation": crowd_rle},
          {"id": 14, "image_id": 9, "category_id": 1, "iscrowd": 0, "area": 800.0,
           "bbox": [0, 0, 20, 40], "segmentation": [RECT_B.ravel().tolist()]}]}
  (root / "annotations/instances_val2017.json").write_text(json.dumps(data))
  ds, gt, meta = load_coco_json(str(root), "val2017", image_size=32, max_instances=3, mask_size=8)
  a = ds.arrays
  assert meta == {"category_ids": [1, 18, 90], "class_names": ["person", "dog", "toothbrush"]}
  np.testing.assert_array_equal(a["image_id"], [9, 5])  # a.png before b.png
  np.testing.assert_array_equal(a["classes"], [[1, 0, 0], [2, 3, 0]])  # the crowd is no target
  np.testing.assert_allclose(a["boxes"][1, :2], [[4, 4, 12, 8], [16, 0, 32, 24]], atol=1e-5)
  np.testing.assert_array_equal(a["masks"][1, 0], 255)  # polygon
  assert a["masks"][1, 1][0, -1] == 255 and a["masks"][1, 1][-1, 0] == 0  # compressed RLE
  assert [(x["id"], x["category_id"], x["iscrowd"]) for x in gt["annotations"]] == [
      (14, 1, 0), (11, 2, 0), (12, 3, 0), (13, 1, 1)]
  assert gt["categories"] == [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"},
                              {"id": 3, "name": "toothbrush"}]
  for iou_type in ("bbox", "segm"):
    assert _ap_of_gt_as_detections(gt, iou_type) == pytest.approx(1.0)
  _, _, meta2 = load_detection(f"cocojson:{root}", "val2017", stop=1, image_size=32)
  assert meta2 == meta
  with pytest.raises(FileNotFoundError, match="instances_train2017.json"):
    load_coco_json(str(root), "train2017")


def _uncompressed_counts(mask: np.ndarray) -> list[int]:
  """COCO's uncompressed RLE counts (column-major runs, starting with zeros), as crowds use."""
  flat = mask.ravel(order="F")
  changes = np.flatnonzero(np.diff(flat)) + 1
  bounds = np.concatenate([[0], changes, [flat.size]])
  counts = np.diff(bounds).tolist()
  return counts if flat[0] == 0 else [0] + counts


def test_real_coco128_first_images(shared_data):
  root = shared_data / "coco128-seg"
  if not root.is_dir():
    pytest.skip(f"{root} is absent")
  ds, gt = load_yolo_seg(str(root), stop=4, image_size=320, max_instances=64, mask_size=16)
  files = sorted(p for p in (root / "images/train2017").iterdir() if p.suffix == ".jpg")[:4]
  lines = []
  for f in files:
    label = root / "labels/train2017" / (f.stem + ".txt")
    lines.append(sum(1 for line in label.read_text().splitlines() if line.strip())
                 if label.is_file() else 0)
  np.testing.assert_array_equal((ds.arrays["classes"] > 0).sum(1), lines)
  np.testing.assert_array_equal(ds.arrays["image_id"], [int(f.stem) for f in files])
  assert len(gt["annotations"]) == sum(lines) and gt["categories"][0]["name"] == "person"
  assert ds.arrays["size"].max(1).tolist() == [320] * 4
  boxes, valid = ds.arrays["boxes"], ds.arrays["classes"] > 0
  assert (boxes[valid][:, 2:] >= boxes[valid][:, :2]).all()
  assert (boxes[valid][:, 2] <= ds.arrays["size"][:, 1, None].repeat(64, 1)[valid] + 1e-3).all()
  assert ds.arrays["masks"][valid].mean() > 60  # instances fill a good part of their boxes
