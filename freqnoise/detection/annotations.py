"""The annotation index of a detection split: one `Entry` per image and the pycocotools ground
truth, built from file names, image headers and annotation files without decoding any pixels.

Sources (`index_detection`):
  yolo-seg:DIR   `DIR/images/SPLIT/*.jpg` with `DIR/labels/SPLIT/STEM.txt` YOLO-seg labels (no
                 file = a background image, as in YOLO; no `labels/SPLIT` folder is an error; a
                 label file whose image is missing keeps its place in the order, with a warning)
                 and optional `DIR/classes.txt` (class names, one a line); YOLO class c -> class
                 c + 1; the image id is the file name's number.
  cocojson:DIR   the COCO 2017 layout, `DIR/annotations/instances_SPLIT.json` and `DIR/SPLIT/*.jpg`;
                 COCO category ids (1..90, with gaps) -> contiguous 1..K in sorted id order.

The COCO json file is checked whole before use (`coco_json.read_instances`: JSON, required keys
and types, ids that exist), so a bad file is an error naming it and the annotation id. Images are
sorted by file name (YOLO-seg: by stem, together with the label files' stems) and sliced
[start:stop]; `index_detection` refuses a slice without instances (it would train on nothing and
score AP nan). `coco_gt` is a pycocotools ground-truth dict at the ORIGINAL resolution whose
category ids are the contiguous classes 1..K (so a detection's class is its `category_id`). Crowd
annotations and empty boxes are no training targets but stay in `coco_gt` (COCO evaluation
ignores matches to crowds). An index is plain tuples, lists, arrays and RLE dicts (picklable, no
open files), so it travels into data-loading worker processes;
`coco_data.read_example` turns one `Entry` into one example.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from freqnoise.detection.coco_json import read_instances
from freqnoise.detection.polygons import parse_yolo_seg, polygon_box, polygons_to_rle

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
DETECTION_SOURCES = ("yolo-seg:DIR", "cocojson:DIR")


class Target(NamedTuple):
  """One training target of an image, at the original resolution and without pixels: class 1..K,
  box (x1, y1, x2, y2), segmentation (an RLE dict, or COCO polygons as a list of flat float64
  arrays), and area (`max_instances` keeps the largest)."""
  cls: int
  box: np.ndarray
  segmentation: Any
  area: float


class Entry(NamedTuple):
  """One image of an annotation index: its file, COCO id, stored size and training targets."""
  path: str
  image_id: int
  height: int
  width: int
  targets: tuple[Target, ...]


def _stored_size(path: str) -> tuple[int, int]:
  """(height, width) from the image file's header, decoding no pixels."""
  try:
    with Image.open(path) as img:
      w, h = img.size
  except OSError as e:
    raise ValueError(f"{path}: cannot decode image ({e})") from e
  return h, w


def _image_id(path: str) -> int:
  stem = os.path.splitext(os.path.basename(path))[0]
  try:
    return int(stem)
  except ValueError:
    raise ValueError(f"{path}: cannot derive a COCO image id from the file name (expected digits, "
                     f"e.g. 000000000009.jpg -> 9)") from None


def _class_names(root: str, count: int = 80) -> list[str]:
  path = os.path.join(root, "classes.txt")
  if not os.path.isfile(path):
    return [f"class{k}" for k in range(count)]
  with open(path) as f:
    names = [line.strip() for line in f if line.strip()]
  if not names:
    raise ValueError(f"{path}: holds no class names")
  return names


def _slice_images(image_dir: str, label_dir: str, start: int, stop: int | None) -> list[str]:
  """The image file names of the slice [start:stop] of a split's positions: the file stems of its
  images and of its label files together, sorted. A label file whose image is missing keeps its
  place, so a deleted image never moves another image across a slice boundary (into the training
  range, say); a printed warning names every such label file in the slice (its instances cannot be
  used). Upstream coco128-seg has two (000000000656.txt, 000000000659.txt), after all 128 images."""
  images: dict[str, str] = {}
  for name in sorted(f for f in os.listdir(image_dir) if f.lower().endswith(IMAGE_EXTENSIONS)):
    stem = os.path.splitext(name)[0]
    if stem in images:
      raise ValueError(f"{image_dir}: {images[stem]} and {name} share the label file "
                       f"{os.path.join(label_dir, stem + '.txt')}; keep one of them")
    images[stem] = name
  labels = {os.path.splitext(f)[0] for f in os.listdir(label_dir) if f.endswith(".txt")}
  stems = sorted(set(images) | labels)[start:stop]
  orphans = [f"{s}.txt" for s in stems if s not in images]
  if orphans:
    shown = ", ".join(orphans[:5]) + (f" and {len(orphans) - 5} more" if len(orphans) > 5 else "")
    print(f"warning: {label_dir}: {len(orphans)} label file(s) in the slice [{start}:"
          f"{'' if stop is None else stop}] have no image in {image_dir} (their instances are "
          f"not used; the other images keep their places): {shown}", flush=True)
  return [images[s] for s in stems if s in images]


def index_yolo_seg(root: str, split: str = "train2017", start: int = 0, stop: int | None = None
                   ) -> tuple[list[Entry], dict]:
  """(index, coco_gt) of the images `root/images/split/*` with YOLO-seg labels from
  `root/labels/split/STEM.txt`, sliced [start:stop] over the images' and label files' stems
  sorted together (`_slice_images`); reads image headers, no pixels."""
  image_dir, label_dir = os.path.join(root, "images", split), os.path.join(root, "labels", split)
  if not os.path.isdir(image_dir):
    raise FileNotFoundError(f"{root}: no image folder {image_dir} for split {split!r}")
  if not os.path.isdir(label_dir):  # every image would be background: zero instances, AP nan
    raise FileNotFoundError(f"{root}: no label folder {label_dir} for split {split!r} (YOLO-seg "
                            f"keeps the instances of images/{split}/NAME.jpg in labels/{split}/"
                            "NAME.txt)")
  files = _slice_images(image_dir, label_dir, start, stop)
  if not files:
    raise ValueError(f"{image_dir}: no images in the slice [{start}:{stop}]")
  names = _class_names(root)
  entries, gt_images, gt_anns = [], [], []
  for name in files:
    path = os.path.join(image_dir, name)
    image_id, (h, w) = _image_id(path), _stored_size(path)
    label = os.path.join(label_dir, os.path.splitext(name)[0] + ".txt")
    classes, polygons = (parse_yolo_seg(label, w, h, len(names)) if os.path.isfile(label)
                         else (np.zeros(0, np.int32), []))
    targets = []
    for cls, poly in zip(classes, polygons):
      rle, box = polygons_to_rle([poly], h, w), polygon_box([poly])
      area = float(mask_utils.area(rle))
      targets.append(Target(int(cls) + 1, box, rle, area))
      gt_anns.append({"id": len(gt_anns) + 1, "image_id": image_id, "category_id": int(cls) + 1,
                      "segmentation": [poly.ravel().tolist()], "area": area, "iscrowd": 0,
                      "bbox": [float(v) for v in (*box[:2], *(box[2:] - box[:2]))]})
    gt_images.append({"id": image_id, "height": h, "width": w, "file_name": name})
    entries.append(Entry(path, image_id, h, w, tuple(targets)))
  categories = [{"id": k + 1, "name": n} for k, n in enumerate(names)]
  return entries, {"images": gt_images, "annotations": gt_anns, "categories": categories}


def _compact(segmentation: Any, path: str, ann_id: int) -> Any:
  """Polygons as flat float64 arrays (what `frPyObjects` converts them to; an index of COCO train
  then holds ~8 bytes a coordinate, not a Python float's ~32); an RLE as it is. A coordinate that
  is no number is an error naming the file and the annotation id."""
  if not isinstance(segmentation, list):
    return segmentation
  try:
    polygons = [np.asarray(p, np.float64) for p in segmentation]
  except (TypeError, ValueError):
    polygons = []
  if not all(p.ndim == 1 and np.isfinite(p).all() for p in polygons) or not polygons:
    raise ValueError(f"{path}: annotation id {ann_id}: segmentation polygons must hold finite "
                     f"numbers, got {str(segmentation)[:60]}")
  return polygons


def index_coco_json(root: str, split: str = "val2017", start: int = 0, stop: int | None = None
                    ) -> tuple[list[Entry], dict, dict]:
  """(index, coco_gt, meta) of `root/annotations/instances_{split}.json`'s images sorted by file
  name, sliced [start:stop], in `root/split/`; meta = {"category_ids": COCO id of class k at index
  k - 1, "class_names": [...]}. Crowds and empty boxes are no targets (they stay in coco_gt)."""
  ann_path = os.path.join(root, "annotations", f"instances_{split}.json")
  if not os.path.isfile(ann_path):
    raise FileNotFoundError(f"{root}: no annotation file {ann_path} for split {split!r}")
  data = read_instances(ann_path)  # checked whole: errors name the file and the annotation id
  cats = sorted(data["categories"], key=lambda c: c["id"])
  contiguous = {c["id"]: k + 1 for k, c in enumerate(cats)}
  images = sorted(data["images"], key=lambda im: im["file_name"])[start:stop]
  if not images:
    raise ValueError(f"{ann_path}: no images in the slice [{start}:{stop}]")
  by_image: dict[int, list[dict]] = {im["id"]: [] for im in images}
  for ann in data["annotations"]:
    if ann["image_id"] in by_image:
      by_image[ann["image_id"]].append(dict(ann, category_id=contiguous[ann["category_id"]]))
  entries = []
  for im in images:
    targets = []
    for ann in by_image[im["id"]]:
      x, y, bw, bh = ann["bbox"]
      if ann.get("iscrowd", 0) or bw <= 0 or bh <= 0:
        continue  # crowd regions and empty boxes are no training targets (kept in coco_gt)
      targets.append(Target(ann["category_id"], np.array([x, y, x + bw, y + bh], np.float64),
                            _compact(ann["segmentation"], ann_path, ann["id"]),
                            float(ann["area"])))
    entries.append(Entry(os.path.join(root, split, im["file_name"]), int(im["id"]),
                         int(im["height"]), int(im["width"]), tuple(targets)))
  image_keys = ("id", "height", "width", "file_name")
  coco_gt = {"images": [{k: im[k] for k in image_keys} for im in images],
             "annotations": [a for im in images for a in by_image[im["id"]]],
             "categories": [{"id": k + 1, "name": c["name"]} for k, c in enumerate(cats)]}
  meta = {"category_ids": [c["id"] for c in cats], "class_names": [c["name"] for c in cats]}
  return entries, coco_gt, meta


def index_detection(source: str, split: str, start: int = 0, stop: int | None = None
                    ) -> tuple[list[Entry], dict, dict]:
  """(index, coco_gt, meta) of `yolo-seg:DIR` or `cocojson:DIR` (see the module docstring), where
  meta holds `class_names` (and, for COCO json, `category_ids`). Decodes no image. A slice without
  a single training target is a ValueError: it would train on nothing and score AP nan."""
  kind, _, root = source.partition(":")
  if kind == "yolo-seg" and root:
    entries, coco_gt = index_yolo_seg(root, split, start, stop)
    meta = {"class_names": [c["name"] for c in coco_gt["categories"]]}
  elif kind == "cocojson" and root:
    entries, coco_gt, meta = index_coco_json(root, split, start, stop)
  else:
    raise ValueError(f"unknown detection source {source!r}; expected one of "
                     f"{', '.join(DETECTION_SOURCES)}")
  if not any(e.targets for e in entries):
    why = ("every label file of the slice is missing or empty" if kind == "yolo-seg" else
           "the file has no annotation of them that is a training target (not a crowd, a box "
           "with an area)")
    raise ValueError(f"{source} split {split!r} [{start}:{'' if stop is None else stop}]: no "
                     f"instances in its {len(entries)} images ({why})")
  return entries, coco_gt, meta
