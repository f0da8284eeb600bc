"""coco_eval against pycocotools on hand-built ground truth: perfect detections, a known case worked
out by hand, no detections, the resized -> original mapping, and the detection picture."""

from __future__ import annotations

import copy
import contextlib
import io
import math
import os

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from freqnoise.detection.coco_eval import coco_ap, detections_to_coco, draw_detections
from freqnoise.detection.paste import paste_masks

# pycocotools 2.0.11's mask.decode (used here, not by coco_eval) trips NumPy 2's __array__ check
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _rect(x, y, w, h):
  return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def _ann(i, image_id, cat, polygon):
  xs, ys = polygon[0][0::2], polygon[0][1::2]
  return {"id": i, "image_id": image_id, "category_id": cat, "segmentation": polygon,
          "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)], "iscrowd": 0}


def _gt() -> dict:
  """Three images, categories 1 and 3 (COCO ids with a gap), small / medium / large instances,
  rectangles, a triangle and an L-shape; `area` left for coco_ap to fill in."""
  triangle = [[20.0, 20.0, 60.0, 20.0, 20.0, 70.0]]
  l_shape = [[100.0, 10.0, 150.0, 10.0, 150.0, 30.0, 120.0, 30.0, 120.0, 90.0, 100.0, 90.0]]
  anns = [_ann(1, 11, 1, triangle), _ann(2, 11, 3, l_shape), _ann(3, 11, 1, _rect(5, 120, 20, 15)),
          _ann(4, 12, 3, _rect(10, 10, 110, 100)), _ann(5, 13, 1, _rect(30, 40, 40, 40))]
  return {"images": [{"id": 11, "height": 160, "width": 200},
                     {"id": 12, "height": 128, "width": 144},
                     {"id": 13, "height": 100, "width": 120}],
          "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
          "annotations": anns}


def _perfect_results(gt: dict) -> list[dict]:
  coco = COCO()
  coco.dataset = copy.deepcopy(gt)
  with contextlib.redirect_stdout(io.StringIO()):
    coco.createIndex()
  results = []
  for ann in gt["annotations"]:
    rle = mask_utils.encode(np.asfortranarray(coco.annToMask(ann)))
    rle["counts"] = rle["counts"].decode("ascii")
    results.append({"image_id": ann["image_id"], "category_id": ann["category_id"],
                    "bbox": list(ann["bbox"]), "score": 1.0, "segmentation": rle})
  return results


def test_perfect_detections_score_one_and_inputs_are_left_alone():
  gt = _gt()
  results = _perfect_results(gt)
  gt_before, results_before = copy.deepcopy(gt), copy.deepcopy(results)
  ap = coco_ap(gt, results)
  for prefix in ("box", "mask"):
    for name in ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"):
      # pycocotools' precision is tp / (tp + fp + eps): 1 up to a rounding (0.9999999999999998)
      assert ap[f"{prefix}_{name}"] == pytest.approx(1.0, abs=1e-12), (prefix, name, ap)
  assert gt == gt_before and results == results_before
  assert coco_ap(gt, results, iou_types=("bbox",)).keys() == {k for k in ap if k.startswith("box")}


def test_empty_results_score_zero():
  ap = coco_ap(_gt(), [])
  assert len(ap) == 24
  assert all(v == 0.0 for v in ap.values()), ap


def _known_case():
  """One category; GT A (40 x 40, image 1) and GT B (image 2). A false positive scores 0.9, a
  detection of A shifted by 9.8 px (IoU 30.2 / 49.8 = 0.606) scores 0.8, and B is missed."""
  gt = {"images": [{"id": 1, "height": 100, "width": 100}, {"id": 2, "height": 100, "width": 100}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [_ann(1, 1, 1, _rect(10, 10, 40, 40)), _ann(2, 2, 1, _rect(50, 50, 40, 40))]}
  gt["annotations"][0]["area"] = gt["annotations"][1]["area"] = 1600.0

  def result(box, score):
    mask = np.zeros((100, 100), np.uint8)
    x, y, w, h = (int(round(v)) for v in box)
    mask[y:y + h, x:x + w] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    rle["counts"] = rle["counts"].decode("ascii")
    return {"image_id": 1, "category_id": 1, "bbox": box, "score": score, "segmentation": rle}

  return gt, [result([55.0, 55.0, 40.0, 40.0], 0.9), result([19.8, 10.0, 40.0, 40.0], 0.8)]


def test_known_case_matches_pycocotools_and_the_hand_computed_values():
  gt, results = _known_case()
  ap = coco_ap(gt, results)
  for iou_type, prefix in (("bbox", "box"), ("segm", "mask")):
    coco = COCO()
    coco.dataset = copy.deepcopy(gt)
    with contextlib.redirect_stdout(io.StringIO()):
      coco.createIndex()
      evaluator = COCOeval(coco, coco.loadRes(copy.deepcopy(results)), iou_type)
      evaluator.evaluate()
      evaluator.accumulate()
      evaluator.summarize()
    for i, name in enumerate(("AP", "AP50", "AP75", "APs", "APm", "APl")):
      want = evaluator.stats[i]
      got = ap[f"{prefix}_{name}"]
      assert (math.isnan(got) and want == -1) or got == want, (prefix, name, got, want)
  # By hand, at IoU thresholds <= 0.6: ranked FP, TP -> precision 0, 1/2 at recall 0, 1/2 of the 2
  # GTs; interpolated precision 1/2 for the 51 recall points 0, 0.01, ..., 0.50 and 0 above:
  # AP = 51 * 0.5 / 101. Above IoU 0.606 (0.65 ... 0.95) nothing matches: AP 0.
  ap50 = 51 * 0.5 / 101
  assert ap["box_AP50"] == pytest.approx(ap50, abs=1e-12)
  assert ap["box_AP75"] == 0.0
  assert ap["box_AP"] == pytest.approx(3 * ap50 / 10, abs=1e-12)  # thresholds 0.5, 0.55, 0.6
  assert ap["mask_AP50"] == pytest.approx(ap50, abs=1e-12)  # mask IoU 30 / 50 = 0.6 (whole px)
  assert math.isnan(ap["box_APs"]) and math.isnan(ap["box_APl"])  # no small / large GT
  assert ap["box_APm"] == ap["box_AP"]
  # restricted to image 2: only the missed GT -> 0; to image 1: FP then TP over 1 GT -> AP50 1/2
  assert coco_ap(gt, results, iou_types=("bbox",), image_ids=[2])["box_AP50"] == 0.0
  assert coco_ap(gt, results, iou_types=("bbox",), image_ids=[1])["box_AP50"] == pytest.approx(0.5)


def test_detections_to_coco_maps_resized_boxes_to_the_original_image():
  gt = _gt()
  by_image = {i["id"]: [a for a in gt["annotations"] if a["image_id"] == i["id"]]
              for i in gt["images"]}
  ids = [11, 12, 13]
  d, scale = 4, 0.5
  boxes = np.zeros((3, d, 4), np.float32)
  classes = np.zeros((3, d), np.int32)
  valid = np.zeros((3, d), bool)
  for b, image_id in enumerate(ids):
    for j, ann in enumerate(by_image[image_id]):
      x, y, w, h = ann["bbox"]
      boxes[b, j] = np.array([x, y, x + w, y + h]) * scale  # in the resized input
      classes[b, j] = {1: 1, 3: 2}[ann["category_id"]]  # contiguous classes
      valid[b, j] = True
  boxes[2, 3] = [50, 40, 70, 60]  # beyond the original 100 x 120 at 1/scale: gets clipped
  classes[2, 3], valid[2, 3] = 1, True
  boxes[1, 2], classes[1, 2] = [1, 1, 5, 5], 2  # not valid: dropped
  orig = np.array([[i["height"], i["width"]] for i in gt["images"]])
  scores = np.linspace(1.0, 0.5, 3 * d).reshape(3, d)
  results = detections_to_coco(ids, boxes, scores, classes, valid, np.full(3, scale), orig,
                               category_ids=[1, 3])
  assert len(results) == 6
  for r, ann in zip(results, gt["annotations"]):
    assert r["image_id"] == ann["image_id"] and r["category_id"] == ann["category_id"]
    np.testing.assert_allclose(r["bbox"], ann["bbox"], atol=1e-4)
  assert results[-1]["bbox"] == pytest.approx([100.0, 80.0, 20.0, 20.0])  # x2, y2 clipped
  assert results[0]["score"] == pytest.approx(1.0) and "segmentation" not in results[0]
  ap = coco_ap(gt, results[:-1], iou_types=("bbox",))
  assert ap["box_AP"] == pytest.approx(1.0)


def test_detections_to_coco_masks_are_the_pasted_masks_at_the_original_size():
  rng = np.random.default_rng(0)
  probs = rng.random((2, 3, 14, 14)).astype(np.float32)
  boxes = rng.uniform(0, 30, (2, 3, 4)).astype(np.float32)
  boxes[..., 2:] = boxes[..., :2] + rng.uniform(5, 30, (2, 3, 2)).astype(np.float32)
  valid = np.array([[True, True, False], [True, False, False]])
  scale, orig = np.array([0.5, 2.0]), np.array([[120, 90], [30, 40]])
  results = detections_to_coco([7, 8], boxes, np.ones((2, 3)), np.ones((2, 3), int), valid, scale,
                               orig, probs)
  assert [r["image_id"] for r in results] == [7, 7, 8]
  for r, (b, d) in zip(results, [(0, 0), (0, 1), (1, 0)]):
    h, w = orig[b]
    box = np.clip(boxes[b, d] / np.float32(scale[b]), 0, [w, h, w, h])
    want = paste_masks(probs[b, d][None], box[None], h, w)[0]
    assert isinstance(r["segmentation"]["counts"], str) and r["segmentation"]["size"] == [h, w]
    rle = dict(r["segmentation"], counts=r["segmentation"]["counts"].encode("ascii"))
    np.testing.assert_array_equal(mask_utils.decode(rle).astype(bool), want)


def test_draw_detections_writes_a_png_of_the_grid_size(tmp_path):
  from PIL import Image
  rng = np.random.default_rng(0)
  images = rng.integers(0, 255, (5, 64, 96, 3), dtype=np.uint8)
  boxes = np.tile(np.array([[8, 8, 40, 30], [50, 20, 90, 60]], np.float32), (5, 1, 1))
  scores = np.tile(np.array([0.9, 0.3]), (5, 1))
  classes = np.tile(np.array([1, 2]), (5, 1))
  valid = np.ones((5, 2), bool)
  path = tmp_path / "detections.png"
  draw_detections(str(path), images, boxes, scores, classes, valid,
                  rng.random((5, 2, 28, 28)), class_names=["person", "car"])
  assert os.path.getsize(path) > 0 and os.listdir(tmp_path) == ["detections.png"]
  with Image.open(path) as png:
    assert png.size == (2 * 96, 2 * 64)  # 4 of 5 images on a 2 x 2 grid, each at full size
  draw_detections(str(path), images[:3], boxes[:3], scores[:3], classes[:3], valid[:3], None,
                  None, max_images=1)
  with Image.open(path) as png:
    assert png.size == (96, 64)
  assert os.listdir(tmp_path) == ["detections.png"]
