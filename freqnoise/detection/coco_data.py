"""Detection splits from YOLO-seg folders and COCO json, in `freqnoise.detection`'s batch layout.

Sources (`load_detection`):
  yolo-seg:DIR   `DIR/images/SPLIT/*.jpg` with `DIR/labels/SPLIT/STEM.txt` YOLO-seg labels (no
                 file = no instances) and optional `DIR/classes.txt` (class names, one a line);
                 YOLO class c -> class c + 1.
  cocojson:DIR   the COCO 2017 layout, `DIR/annotations/instances_SPLIT.json` and `DIR/SPLIT/*.jpg`;
                 COCO category ids (1..90, with gaps) -> contiguous 1..K in sorted id order.

Both give an `ArrayDataset` with image uint8 [B, S, S, 3], boxes float32 [B, N, 4], classes int32
[B, N], masks uint8 [B, N, M, M], size int32 [B, 2], scale float32 [B], orig_size int32 [B, 2],
image_id int32 [B]; and `coco_gt`, a pycocotools ground-truth dict at the ORIGINAL resolution whose
category ids are the contiguous classes 1..K (so a detection's class is its `category_id`). Crowd
annotations are not training targets but stay in `coco_gt` (COCO evaluation ignores matches to
them); `coco_gt` keeps every instance even when a training image keeps only `max_instances`.
Masks are rasterised at the original resolution and cropped with the original box (`crop_mask`).
"""

from __future__ import annotations

import json
import os
from typing import Any, NamedTuple

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from freqnoise.data.dataset import ArrayDataset
from freqnoise.detection.polygons import (crop_mask, decode_rle, parse_yolo_seg, polygon_box,
                                          polygons_to_rle)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
DETECTION_SOURCES = ("yolo-seg:DIR", "cocojson:DIR")


class Instance(NamedTuple):
  """One training target at the original resolution: class 1..K, box (x1, y1, x2, y2), mask RLE."""
  cls: int
  box: np.ndarray
  rle: dict
  area: float


def _check_sizes(image_size: int, max_instances: int, mask_size: int) -> None:
  if image_size <= 0 or image_size % 32:
    raise ValueError(f"image_size must be a positive multiple of 32 (FPN strides), "
                     f"got {image_size}")
  if max_instances < 1 or mask_size < 1:
    raise ValueError(f"need max_instances >= 1 and mask_size >= 1, got {max_instances}, "
                     f"{mask_size}")


def _read_image(path: str) -> np.ndarray:
  try:
    with Image.open(path) as img:
      return np.asarray(img.convert("RGB"), np.uint8)
  except OSError as e:
    raise ValueError(f"{path}: cannot decode image ({e})") from e


def resize_and_pad(image: np.ndarray, image_size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
  """(uint8 [S, S, 3] image resized so its longer side is S = `image_size` and padded with zeros
  at the bottom/right, scale = S / max(h, w), content (height, width) = round(scale * (h, w))).
  PIL's BILINEAR, which widens its kernel when shrinking (antialiased). EXIF orientation is not
  applied, as in COCO, whose annotations refer to the stored pixel order."""
  h, w = image.shape[:2]
  scale = image_size / max(h, w)
  nh, nw = max(1, min(image_size, round(h * scale))), max(1, min(image_size, round(w * scale)))
  if (nh, nw) != (h, w):
    image = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR), np.uint8)
  out = np.zeros((image_size, image_size, 3), np.uint8)
  out[:nh, :nw] = image
  return out, scale, (nh, nw)


def _allocate(count: int, image_size: int, max_instances: int, mask_size: int
              ) -> dict[str, np.ndarray]:
  return {"image": np.zeros((count, image_size, image_size, 3), np.uint8),
          "boxes": np.zeros((count, max_instances, 4), np.float32),
          "classes": np.zeros((count, max_instances), np.int32),
          "masks": np.zeros((count, max_instances, mask_size, mask_size), np.uint8),
          "size": np.zeros((count, 2), np.int32), "scale": np.zeros((count,), np.float32),
          "orig_size": np.zeros((count, 2), np.int32), "image_id": np.zeros((count,), np.int32)}


def _fill(arrays: dict[str, np.ndarray], i: int, path: str, image: np.ndarray, image_id: int,
          instances: list[Instance]) -> None:
  """Writes example `i`: the resized image and up to N instances (the largest by area if more)."""
  image_size, max_instances, mask_size = arrays["image"].shape[1], *arrays["masks"].shape[1:3]
  h, w = image.shape[:2]
  if len(instances) > max_instances:
    order = np.argsort([-inst.area for inst in instances], kind="stable")[:max_instances]
    print(f"warning: {path}: {len(instances)} instances, keeping the {max_instances} largest by "
          "area", flush=True)
    instances = [instances[k] for k in sorted(order)]
  arrays["image"][i], scale, (nh, nw) = resize_and_pad(image, image_size)
  arrays["size"][i], arrays["scale"][i], arrays["orig_size"][i] = (nh, nw), scale, (h, w)
  arrays["image_id"][i] = image_id
  for j, inst in enumerate(instances):
    arrays["classes"][i, j] = inst.cls
    box = np.asarray(inst.box, np.float64) * scale
    arrays["boxes"][i, j] = np.clip(box, 0.0, [nw, nh, nw, nh])
    arrays["masks"][i, j] = crop_mask(decode_rle(inst.rle), inst.box, mask_size)


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


def load_yolo_seg(root: str, split: str = "train2017", start: int = 0, stop: int | None = None,
                  image_size: int = 512, max_instances: int = 100, mask_size: int = 64
                  ) -> tuple[ArrayDataset, dict]:
  """Images `root/images/split/*` sorted by name, sliced [start:stop], with YOLO-seg labels from
  `root/labels/split/STEM.txt`: (ArrayDataset, coco_gt), see the module docstring."""
  _check_sizes(image_size, max_instances, mask_size)
  image_dir, label_dir = os.path.join(root, "images", split), os.path.join(root, "labels", split)
  if not os.path.isdir(image_dir):
    raise FileNotFoundError(f"{root}: no image folder {image_dir} for split {split!r}")
  files = sorted(f for f in os.listdir(image_dir) if f.lower().endswith(IMAGE_EXTENSIONS))
  files = files[start:stop]
  if not files:
    raise ValueError(f"{image_dir}: no images in the slice [{start}:{stop}]")
  names = _class_names(root)
  arrays = _allocate(len(files), image_size, max_instances, mask_size)
  gt_images, gt_anns = [], []
  for i, name in enumerate(files):
    path = os.path.join(image_dir, name)
    image, image_id = _read_image(path), _image_id(path)
    h, w = image.shape[:2]
    label = os.path.join(label_dir, os.path.splitext(name)[0] + ".txt")
    classes, polygons = (parse_yolo_seg(label, w, h, len(names)) if os.path.isfile(label)
                         else (np.zeros(0, np.int32), []))
    instances = []
    for cls, poly in zip(classes, polygons):
      rle, box = polygons_to_rle([poly], h, w), polygon_box([poly])
      area = float(mask_utils.area(rle))
      instances.append(Instance(int(cls) + 1, box, rle, area))
      gt_anns.append({"id": len(gt_anns) + 1, "image_id": image_id, "category_id": int(cls) + 1,
                      "segmentation": [poly.ravel().tolist()], "area": area, "iscrowd": 0,
                      "bbox": [float(v) for v in (*box[:2], *(box[2:] - box[:2]))]})
    gt_images.append({"id": image_id, "height": h, "width": w, "file_name": name})
    _fill(arrays, i, path, image, image_id, instances)
  categories = [{"id": k + 1, "name": n} for k, n in enumerate(names)]
  coco_gt = {"images": gt_images, "annotations": gt_anns, "categories": categories}
  return ArrayDataset(arrays), coco_gt


def _ann_rle(segmentation: Any, h: int, w: int) -> dict:
  """The RLE of a COCO annotation's segmentation, as `COCO.annToRLE` makes it (from polygons,
  uncompressed or compressed RLE); `decode_rle` of it is `COCO.annToMask`."""
  if isinstance(segmentation, list):
    return mask_utils.merge(mask_utils.frPyObjects(segmentation, h, w))
  if isinstance(segmentation.get("counts"), list):
    return mask_utils.frPyObjects(segmentation, h, w)
  return segmentation


def load_coco_json(root: str, split: str = "val2017", start: int = 0, stop: int | None = None,
                   image_size: int = 512, max_instances: int = 100, mask_size: int = 64
                   ) -> tuple[ArrayDataset, dict, dict]:
  """COCO 2017 layout: images of `root/annotations/instances_{split}.json` sorted by file name,
  sliced [start:stop], read from `root/split/`. Returns (ArrayDataset, coco_gt, meta) with
  meta = {"category_ids": COCO id of class k at index k - 1, "class_names": [...]}."""
  _check_sizes(image_size, max_instances, mask_size)
  ann_path = os.path.join(root, "annotations", f"instances_{split}.json")
  if not os.path.isfile(ann_path):
    raise FileNotFoundError(f"{root}: no annotation file {ann_path} for split {split!r}")
  with open(ann_path) as f:
    data = json.load(f)
  for key in ("images", "annotations", "categories"):
    if key not in data:
      raise ValueError(f"{ann_path}: no {key!r} list (not a COCO instances file)")
  cats = sorted(data["categories"], key=lambda c: c["id"])
  contiguous = {c["id"]: k + 1 for k, c in enumerate(cats)}
  images = sorted(data["images"], key=lambda im: im["file_name"])[start:stop]
  if not images:
    raise ValueError(f"{ann_path}: no images in the slice [{start}:{stop}]")
  by_image: dict[int, list[dict]] = {im["id"]: [] for im in images}
  for ann in data["annotations"]:
    if ann["image_id"] in by_image:
      if ann["category_id"] not in contiguous:
        raise ValueError(f"{ann_path}: annotation {ann.get('id')} has category_id "
                         f"{ann['category_id']}, not among the categories")
      by_image[ann["image_id"]].append(dict(ann, category_id=contiguous[ann["category_id"]]))
  arrays = _allocate(len(images), image_size, max_instances, mask_size)
  for i, im in enumerate(images):
    path = os.path.join(root, split, im["file_name"])
    image = _read_image(path)
    h, w = image.shape[:2]
    if (h, w) != (im["height"], im["width"]):
      raise ValueError(f"{path}: decoded size {h}x{w} differs from the annotation's "
                       f"{im['height']}x{im['width']} ({ann_path})")
    instances = []
    for ann in by_image[im["id"]]:
      x, y, bw, bh = ann["bbox"]
      if ann.get("iscrowd", 0) or bw <= 0 or bh <= 0:
        continue  # crowd regions and empty boxes are no training targets (kept in coco_gt)
      instances.append(Instance(ann["category_id"], np.array([x, y, x + bw, y + bh], np.float64),
                                _ann_rle(ann["segmentation"], h, w), float(ann["area"])))
    _fill(arrays, i, path, image, int(im["id"]), instances)
  image_keys = ("id", "height", "width", "file_name")
  coco_gt = {"images": [{k: im[k] for k in image_keys} for im in images],
             "annotations": [a for im in images for a in by_image[im["id"]]],
             "categories": [{"id": k + 1, "name": c["name"]} for k, c in enumerate(cats)]}
  meta = {"category_ids": [c["id"] for c in cats], "class_names": [c["name"] for c in cats]}
  return ArrayDataset(arrays), coco_gt, meta


def load_detection(source: str, split: str, **kwargs) -> tuple[ArrayDataset, dict, dict]:
  """`yolo-seg:DIR` or `cocojson:DIR` (see the module docstring): (ArrayDataset, coco_gt, meta), where
  meta holds `class_names` (and, for COCO json, `category_ids`). kwargs go to the loader."""
  kind, _, root = source.partition(":")
  if kind == "yolo-seg" and root:
    dataset, coco_gt = load_yolo_seg(root, split, **kwargs)
    return dataset, coco_gt, {"class_names": [c["name"] for c in coco_gt["categories"]]}
  if kind == "cocojson" and root:
    return load_coco_json(root, split, **kwargs)
  raise ValueError(f"unknown detection source {source!r}; expected one of "
                   f"{', '.join(DETECTION_SOURCES)}")


def flip_detection_batch(batch: dict[str, np.ndarray], flip: np.ndarray) -> dict[str, np.ndarray]:
  """A copy of `batch` with the examples where `flip` [B] is true mirrored left-right: the image's
  content region (`size`; the zero padding stays at the right), boxes (x -> width - x, x1/x2
  swapped) and each instance's M x M mask. Padding instances (class 0) stay all zeros."""
  flip = np.asarray(flip, bool)
  if flip.shape != batch["classes"].shape[:1]:
    raise ValueError(f"flip must be bool [B] with B = {len(batch['classes'])}, got shape "
                     f"{flip.shape}")
  out = dict(batch)
  image, boxes = batch["image"].copy(), batch["boxes"].copy()
  masks = batch["masks"].copy() if "masks" in batch else None
  for i in np.flatnonzero(flip):
    w = int(batch["size"][i, 1])
    image[i, :, :w] = image[i, :, :w][:, ::-1]
    valid = batch["classes"][i] > 0
    b = boxes[i, valid]
    boxes[i, valid] = np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], axis=-1)
    if masks is not None:
      masks[i, valid] = masks[i, valid][:, :, ::-1]
  out["image"], out["boxes"] = image, boxes
  if masks is not None:
    out["masks"] = masks
  return out
