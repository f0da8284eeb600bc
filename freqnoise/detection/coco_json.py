"""Reading a COCO instances file (`annotations/instances_SPLIT.json`) and checking it whole before
any image is read, so that a bad file is one error naming the file and the annotation (or image,
or category) id, not a `KeyError: 'bbox'` deep in the loader or pycocotools.

Checked: valid UTF-8 JSON (a truncated file names the file and where it ends); the three lists;
each category an int `id` and a str `name`; each image an int `id`, a str `file_name` and positive
int `height` / `width`; each annotation an int `id`, an `image_id` and `category_id` that exist, a
`bbox` of 4 finite numbers, a number `area`, `iscrowd` 0 / 1 (optional) and a `segmentation` that
is polygons (lists of an even number >= 6 of coordinates) or an RLE dict whose `size` is its
image's [height, width]; ids unique per list. Coordinates are read as numbers where the annotation
is used (`annotations._compact`). Cost: one pass over the lists, about 3 s for COCO train2017's
size (860 k annotations, 118 k images) on this repository's 2-core CPU.
"""

from __future__ import annotations

import json
import math
from typing import Any

LISTS = ("images", "annotations", "categories")


_NUMBER = (int, float)  # (exact types: a bool is no number here)


def _is_int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def load_json(path: str) -> Any:
  """The JSON value of `path`; a file that is not UTF-8 JSON (truncated, say) is a ValueError
  naming it, the line and the column."""
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    cut = "" if text.rstrip().endswith(("}", "]")) else "; it does not end with } or ]: truncated?"
    raise ValueError(f"{path}: not valid JSON: {e.msg}: line {e.lineno} column {e.colno} (byte "
                     f"{e.pos} of {len(text.encode())}){cut}") from None


def _check_ids(path: str, what: str, items: list, fields: dict, fast=None, more=None) -> dict:
  """{id: item} of a list of dicts, each with `fields` (name -> (test, description)) and passing
  `more(where, item)`; `fast(item)` True skips those checks for an item that passes them all."""
  by_id: dict = {}
  for k, item in enumerate(items):
    if fast is not None and fast(item) and item["id"] not in by_id:
      by_id[item["id"]] = item
      continue
    if not isinstance(item, dict):
      raise ValueError(f"{path}: {what} #{k} is a {type(item).__name__}, not an object")
    where = f"{what} id {item['id']!r}" if "id" in item else f"{what} #{k} (no id)"
    for name, (test, description) in fields.items():
      if name not in item:
        raise ValueError(f"{path}: {where} has no {name!r}")
      if not test(item[name]):
        raise ValueError(f"{path}: {where}: {name} must be {description}, got {item[name]!r}")
    if item["id"] in by_id:
      raise ValueError(f"{path}: {what} id {item['id']!r} appears twice")
    if more is not None:
      more(where, item)
    by_id[item["id"]] = item
  return by_id


def _fast_annotation(ann: Any, images: dict, cats: dict) -> bool:
  """True when `ann` passes every annotation check of `read_instances` (False: let those checks
  name the problem; RLE segmentations always go to them): those take ~10 s for COCO train2017's
  860 k annotations here, this pre-filter ~3 s with the images' checks."""
  try:
    bbox, seg, area = ann["bbox"], ann["segmentation"], ann["area"]
    if not (type(ann["id"]) is int and type(ann["image_id"]) is int and ann["image_id"] in images
            and type(ann["category_id"]) is int and ann["category_id"] in cats
            and type(bbox) is list and len(bbox) == 4 and type(area) in _NUMBER
            and ann.get("iscrowd", 0) in (0, 1) and type(seg) is list and seg):
      return False
    x, y, w, h = bbox
    return (type(x) in _NUMBER and type(y) in _NUMBER and type(w) in _NUMBER
            and type(h) in _NUMBER and math.isfinite(x + y + w + h + area)
            and all(type(p) is list and len(p) >= 6 and not len(p) % 2 for p in seg))
  except (KeyError, TypeError):
    return False


def _check_annotation(path: str, where: str, ann: dict, image: dict) -> None:
  """iscrowd and segmentation of an annotation whose other fields passed."""
  where = f"{where} (image_id {ann['image_id']})"
  if ann.get("iscrowd", 0) not in (0, 1):
    raise ValueError(f"{path}: {where}: iscrowd must be 0 or 1, got {ann['iscrowd']!r}")
  seg = ann["segmentation"]
  if isinstance(seg, list):
    if not seg:
      raise ValueError(f"{path}: {where}: segmentation holds no polygon")
    for p in seg:
      if not isinstance(p, list) or len(p) < 6 or len(p) % 2:
        raise ValueError(f"{path}: {where}: segmentation polygons must be lists of an even number "
                         f">= 6 of coordinates (x1, y1, x2, y2, ...), got {str(p)[:60]}")
    return
  if not isinstance(seg, dict) or "counts" not in seg or "size" not in seg:
    raise ValueError(f"{path}: {where}: segmentation must be a list of polygons or an RLE dict "
                     f"with 'counts' and 'size', got {str(seg)[:60]}")
  if list(seg["size"]) != [image["height"], image["width"]]:
    raise ValueError(f"{path}: {where}: RLE size {seg['size']} is not its image's [height, width] "
                     f"= [{image['height']}, {image['width']}]")


def read_instances(path: str) -> dict:
  """The COCO instances file `path`, checked whole (see the module docstring): ValueError naming
  the file and the annotation / image / category id on the first problem."""
  data = load_json(path)
  if not isinstance(data, dict):
    raise ValueError(f"{path}: holds a JSON {type(data).__name__}, not a COCO instances object")
  for key in LISTS:
    if not isinstance(data.get(key), list):
      raise ValueError(f"{path}: no {key!r} list (not a COCO instances file)")
  positive = (lambda v: _is_int(v) and v > 0, "a positive integer")
  cats = _check_ids(path, "category", data["categories"], {
      "id": (_is_int, "an integer"), "name": (lambda v: isinstance(v, str), "a string")})
  images = _check_ids(path, "image", data["images"], {
      "id": (_is_int, "an integer"), "file_name": (lambda v: isinstance(v, str) and v, "a name"),
      "height": positive, "width": positive})
  anns = _check_ids(path, "annotation", data["annotations"], {
      "id": (_is_int, "an integer"),
      "image_id": (lambda v: _is_int(v) and v in images, "the id of an image in the file"),
      "category_id": (lambda v: _is_int(v) and v in cats, "the id of a category in the file"),
      "bbox": (lambda v: isinstance(v, list) and len(v) == 4 and all(map(_is_number, v)),
               "[x, y, width, height] (4 numbers)"),
      "area": (_is_number, "a number"), "segmentation": (lambda v: True, "")},
      fast=lambda ann: _fast_annotation(ann, images, cats),
      more=lambda where, ann: _check_annotation(path, where, ann, images[ann["image_id"]]))
  return data
