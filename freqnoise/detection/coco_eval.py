"""COCO evaluation of padded detections: results in COCO's json format, AP by pycocotools, pictures.

  * `detections_to_coco` turns a batch of the model's padded outputs (boxes in the resized input
    image, `valid` marking real detections) into COCO result dicts in ORIGINAL image pixels:
    boxes / scale clipped to the original image, masks pasted at the original size as detectron2
    does (`paste.paste_masks`: the aligned pixel model of the training targets) and run-length
    encoded;
  * `coco_ap` runs pycocotools' COCOeval on them, quietly, for boxes and masks, and returns its
    12 summary numbers per IoU type as fractions (`box_AP`, `box_AP50`, ..., `mask_ARl`);
  * `draw_detections` saves a grid of input images with boxes, labels and masks as a PNG.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
from typing import Any, Mapping, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from freqnoise.detection.paste import paste_mask_probs, paste_masks
from freqnoise.workdir import write_atomically

# COCOeval.stats[i] -> name, for i = 0..11 (pycocotools' summarize() order)
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
              "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
PREFIX = {"bbox": "box", "segm": "mask"}


def _category(k: int, category_ids: Sequence[int] | None) -> int:
  return int(k) if category_ids is None else int(category_ids[int(k) - 1])


def detections_to_coco(image_ids, boxes, scores, classes, valid, scale, orig_size,
                       mask_probs=None, *, category_ids: Sequence[int] | None = None,
                       mask_threshold: float = 0.5) -> list[dict[str, Any]]:
  """COCO result dicts for a batch of padded detections (NumPy or JAX arrays).

  Args:
    image_ids: [B] COCO image ids.
    boxes: [B, D, 4] (x1, y1, x2, y2) in pixels of the resized model input.
    scores: [B, D]; classes: [B, D] contiguous classes 1..K (0 = padding);
    valid: [B, D] bool, the real detections (others, and class 0, are dropped).
    scale: [B] resize factor (resized / original); orig_size: [B, 2] original (height, width).
    mask_probs: [B, D, m, m] mask probabilities over each box, or None for boxes only.
    category_ids: COCO category id of class k at index k - 1 (e.g. the sorted ids of the
      annotation file); None: class k is category k.
    mask_threshold: in (0, 1]; pasted probabilities at or above it are inside the instance.
  Returns:
    one dict per detection: image_id, category_id, bbox [x, y, w, h] in ORIGINAL pixels (clipped
    to the image), score, and with masks `segmentation`: a compressed RLE {"size": [h, w],
    "counts": str}, JSON-ready, of the mask pasted with the clipped box.
  """
  image_ids = np.asarray(image_ids).reshape(-1)
  boxes = np.asarray(boxes, np.float32)
  scores, classes = np.asarray(scores), np.asarray(classes)
  valid = np.asarray(valid, bool) & (classes > 0)
  scale = np.asarray(scale, np.float32).reshape(-1)
  orig_size = np.asarray(orig_size).reshape(-1, 2)
  mask_probs = None if mask_probs is None else np.asarray(mask_probs, np.float32)
  results = []
  for b in range(image_ids.shape[0]):
    keep = np.flatnonzero(valid[b])
    if keep.size == 0:
      continue
    height, width = int(orig_size[b, 0]), int(orig_size[b, 1])
    box = boxes[b, keep] / scale[b]
    box = np.clip(box, 0, np.array([width, height, width, height], np.float32))
    rles = None
    if mask_probs is not None:
      masks = paste_masks(mask_probs[b, keep], box, height, width, mask_threshold)
      rles = mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0).astype(np.uint8)))
    for i, d in enumerate(keep):
      x1, y1, x2, y2 = (float(v) for v in box[i])
      result = {"image_id": int(image_ids[b]),
                "category_id": _category(classes[b, d], category_ids),
                "bbox": [x1, y1, x2 - x1, y2 - y1], "score": float(scores[b, d])}
      if rles is not None:
        result["segmentation"] = {"size": [int(s) for s in rles[i]["size"]],
                                  "counts": rles[i]["counts"].decode("ascii")}
      results.append(result)
  return results


def _ground_truth(coco_gt: Mapping[str, Any] | COCO) -> COCO:
  """A COCO index over `coco_gt`. A dict is not modified: its annotations are copied shallowly
  (COCOeval writes into them) with `iscrowd` 0 and `area` (segmentation's, else the box's) where
  missing."""
  if isinstance(coco_gt, COCO):
    return coco_gt
  dataset = dict(coco_gt)
  images = {image["id"]: image for image in coco_gt.get("images", [])}
  annotations = []
  for ann in coco_gt.get("annotations", []):
    ann = dict(ann)
    ann.setdefault("iscrowd", 0)
    if "area" not in ann:
      ann["area"] = float(ann["bbox"][2] * ann["bbox"][3])
      if ann.get("segmentation"):
        rle = _to_rle(ann["segmentation"], images[ann["image_id"]])
        ann["area"] = float(mask_utils.area(rle))
    annotations.append(ann)
  dataset["annotations"] = annotations
  gt = COCO()
  gt.dataset = dataset
  with contextlib.redirect_stdout(io.StringIO()):
    gt.createIndex()
  return gt


def _to_rle(segmentation, image: Mapping[str, Any]):
  h, w = image["height"], image["width"]
  if isinstance(segmentation, list):  # polygons
    return mask_utils.merge(mask_utils.frPyObjects(segmentation, h, w))
  if isinstance(segmentation["counts"], list):  # uncompressed RLE
    return mask_utils.frPyObjects(segmentation, h, w)
  return segmentation


def _load_results(gt: COCO, results: list[dict[str, Any]], iou_type: str) -> COCO:
  """pycocotools' `loadRes` on copies (it writes ids and areas into them). For masks the boxes are
  dropped, so that mask area, not box area, sorts detections into small / medium / large (as
  detectron2 does). No results give an empty result set rather than loadRes' IndexError."""
  if iou_type == "segm":
    if any("segmentation" not in r for r in results):
      raise ValueError("mask AP needs a 'segmentation' in every result; use iou_types=('bbox',)")
    results = [{k: v for k, v in r.items() if k != "bbox"} for r in results]
  else:
    results = [dict(r) for r in results]
  if results:
    return gt.loadRes(results)
  res = COCO()
  res.dataset = {"images": list(gt.dataset["images"]), "annotations": [],
                 "categories": copy.deepcopy(gt.dataset.get("categories", []))}
  res.createIndex()
  return res


def coco_ap(coco_gt: Mapping[str, Any] | COCO, results: list[dict[str, Any]],
            iou_types: Sequence[str] = ("bbox", "segm"), image_ids: Sequence[int] | None = None,
            verbose: bool = False) -> dict[str, float]:
  """COCO AP/AR of `results` against `coco_gt` (a COCO-format dict, or a pycocotools COCO).

  Returns {"box_AP", "box_AP50", "box_AP75", "box_APs", "box_APm", "box_APl", "box_AR1",
  "box_AR10", "box_AR100", "box_ARs", "box_ARm", "box_ARl"} for "bbox" and the same with "mask_"
  for "segm": COCOeval.stats[0..11], fractions in [0, 1]; NaN where pycocotools reports -1 (no
  ground truth in that area range). Empty `results` score 0. `image_ids` restricts the evaluation
  to those images (default: every image of `coco_gt`); pycocotools' prints appear only when
  `verbose`.
  """
  out: dict[str, float] = {}
  gt = _ground_truth(coco_gt)
  quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
  with quiet:
    for iou_type in iou_types:
      if iou_type not in PREFIX:
        raise ValueError(f"unknown iou_type {iou_type!r}; expected 'bbox' or 'segm'")
      evaluator = COCOeval(gt, _load_results(gt, results, iou_type), iou_type)
      evaluator.params.imgIds = sorted(gt.getImgIds() if image_ids is None else
                                       (int(i) for i in image_ids))
      evaluator.evaluate()
      evaluator.accumulate()
      evaluator.summarize()
      for name, value in zip(STAT_NAMES, evaluator.stats):
        out[f"{PREFIX[iou_type]}_{name}"] = float(value) if value >= 0 else math.nan
  return out


def draw_detections(path: str, images, boxes, scores, classes, valid, mask_probs=None,
                    class_names: Sequence[str] | None = None, score_threshold: float = 0.5,
                    max_images: int = 4) -> None:
  """Saves a PNG grid of the first `max_images` input images with their detections of score >=
  `score_threshold`: box outlines, "name score" labels and semi-transparent masks, one color per
  class. Each image is drawn at its own resolution, so the PNG is rows*H x cols*W pixels for a
  grid of cols = ceil(sqrt(n)) columns. Written atomically (temporary file, then rename).

  Args:
    images: [B, H, W, 3] uint8 model inputs (resized and padded).
    boxes, scores, classes, valid: [B, D, 4], [B, D], [B, D], [B, D] as the model returns them,
      boxes in pixels of `images`.
    mask_probs: [B, D, m, m] or None; pasted at the input image's resolution.
    class_names: name of class k at index k - 1; None: the class number.
  """
  import matplotlib
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  from matplotlib.patches import Rectangle

  images = np.asarray(images)
  boxes, scores = np.asarray(boxes, np.float32), np.asarray(scores, np.float32)
  classes, valid = np.asarray(classes), np.asarray(valid, bool)
  n = min(images.shape[0], max_images)
  if n < 1:
    raise ValueError("no images to draw")
  height, width = images.shape[1:3]
  cols = math.ceil(math.sqrt(n))
  rows = math.ceil(n / cols)
  dpi = 64  # a power of two: (pixels / dpi) * dpi is exact, so the canvas has exactly that size
  fig = Figure(figsize=(cols * width / dpi, rows * height / dpi), dpi=dpi, facecolor="black")
  FigureCanvasAgg(fig)
  palette = matplotlib.colormaps["tab20"]
  for b in range(n):
    r, c = divmod(b, cols)
    ax = fig.add_axes((c / cols, 1 - (r + 1) / rows, 1 / cols, 1 / rows))
    ax.imshow(images[b], extent=(0, width, height, 0), interpolation="nearest")
    keep = np.flatnonzero(valid[b] & (classes[b] > 0) & (scores[b] >= score_threshold))
    if mask_probs is not None and keep.size:
      masks = paste_mask_probs(np.asarray(mask_probs[b])[keep], boxes[b, keep], height, width)
      overlay = np.zeros((height, width, 4), np.float32)
      for i, d in enumerate(keep):
        overlay[masks[i] >= 0.5] = (*palette(int(classes[b, d]) % 20)[:3], 0.45)
      ax.imshow(overlay, extent=(0, width, height, 0), interpolation="nearest")
    for d in keep:
      k = int(classes[b, d])
      color = palette(k % 20)
      x1, y1, x2, y2 = boxes[b, d]
      ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, lw=1.5))
      name = class_names[k - 1] if class_names is not None else str(k)
      ax.text(x1, y1, f"{name} {scores[b, d]:.2f}", color="white", fontsize=7, va="bottom",
              clip_on=True, bbox={"facecolor": color, "alpha": 0.7, "pad": 1, "edgecolor": "none"})
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.axis("off")
  write_atomically(path, lambda f: fig.savefig(f, format="png", dpi=dpi, facecolor="black"))
