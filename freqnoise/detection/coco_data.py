"""Detection splits from YOLO-seg folders and COCO json, in `freqnoise.detection`'s batch layout.

Sources (`load_detection`): `yolo-seg:DIR` and `cocojson:DIR`, indexed by
`freqnoise.detection.annotations` (layouts, class numbering, image order and `coco_gt` there).

Both give an `ArrayDataset` with image uint8 [B, S, S, 3], boxes float32 [B, N, 4], classes int32
[B, N], masks uint8 [B, N, M, M], size int32 [B, 2], scale float32 [B], orig_size int32 [B, 2],
image_id int32 [B]; and `coco_gt`, the pycocotools ground truth at the ORIGINAL resolution, which
keeps every instance (crowds too) even when a training image keeps only the `max_instances` largest.
Masks are rasterised at the original resolution and cropped with the original box (`crop_mask`).

Loading is two steps: the index (one `annotations.Entry` per image, no pixels), then
`read_example(entry, ...)`, which decodes one image and rasterises its targets. The in-memory
loaders run it on every entry (`load_entries`); `lazy_source.DetectionSource` runs it per
`source[i]`, so both give the same examples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from freqnoise.data.dataset import ArrayDataset
from freqnoise.detection.annotations import (Entry, index_coco_json, index_detection,
                                             index_yolo_seg)
from freqnoise.detection.polygons import crop_mask, decode_rle

def check_sizes(image_size: int, max_instances: int, mask_size: int) -> None:
  """Raises ValueError unless the batch layout's sizes are usable (S a multiple of 32)."""
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


def limit_instances(entries: list[Entry], max_instances: int) -> list[Entry]:
  """`entries` with each image's targets cut to the `max_instances` largest by area (kept in
  their order), with a warning per image cut; run once on an index, before `read_example`."""
  out = []
  for entry in entries:
    if len(entry.targets) > max_instances:
      order = np.argsort([-t.area for t in entry.targets], kind="stable")[:max_instances]
      print(f"warning: {entry.path}: {len(entry.targets)} instances, keeping the {max_instances} "
            "largest by area", flush=True)
      entry = entry._replace(targets=tuple(entry.targets[k] for k in sorted(order)))
    out.append(entry)
  return out


def _ann_rle(segmentation: Any, h: int, w: int) -> dict:
  """The RLE of a COCO annotation's segmentation, as `COCO.annToRLE` makes it (from polygons,
  uncompressed or compressed RLE); `decode_rle` of it is `COCO.annToMask`."""
  if isinstance(segmentation, list):
    return mask_utils.merge(mask_utils.frPyObjects(segmentation, h, w))
  if isinstance(segmentation.get("counts"), list):
    return mask_utils.frPyObjects(segmentation, h, w)
  return segmentation


def read_example(entry: Entry, image_size: int, max_instances: int, mask_size: int
                 ) -> dict[str, np.ndarray]:
  """One example in the batch layout (see the module docstring, without the leading batch axis):
  decodes `entry`'s image, resizes it and rasterises its targets (at most `max_instances`: cut
  them with `limit_instances` first). The one implementation both the in-memory loaders and
  `lazy_source.DetectionSource` read examples with."""
  if len(entry.targets) > max_instances:
    raise ValueError(f"{entry.path}: {len(entry.targets)} targets exceed max_instances = "
                     f"{max_instances}; cut the index with limit_instances first")
  image = _read_image(entry.path)
  h, w = image.shape[:2]
  if (h, w) != (entry.height, entry.width):
    raise ValueError(f"{entry.path}: decoded size {h}x{w} differs from the annotation's "
                     f"{entry.height}x{entry.width}")
  padded, scale, (nh, nw) = resize_and_pad(image, image_size)
  boxes = np.zeros((max_instances, 4), np.float32)
  classes = np.zeros((max_instances,), np.int32)
  masks = np.zeros((max_instances, mask_size, mask_size), np.uint8)
  for j, target in enumerate(entry.targets):
    classes[j] = target.cls
    box = np.asarray(target.box, np.float64) * scale
    boxes[j] = np.clip(box, 0.0, [nw, nh, nw, nh])
    masks[j] = crop_mask(decode_rle(_ann_rle(target.segmentation, h, w)), target.box, mask_size)
  return {"image": padded, "boxes": boxes, "classes": classes, "masks": masks,
          "size": np.array([nh, nw], np.int32), "scale": np.float32(scale),
          "orig_size": np.array([h, w], np.int32), "image_id": np.int32(entry.image_id)}


def load_entries(entries: list[Entry], image_size: int, max_instances: int, mask_size: int
                 ) -> ArrayDataset:
  """Every example of an index decoded into one `ArrayDataset` (`read_example` row by row)."""
  check_sizes(image_size, max_instances, mask_size)
  entries = limit_instances(entries, max_instances)
  arrays: dict[str, np.ndarray] = {}
  for i, entry in enumerate(entries):
    example = read_example(entry, image_size, max_instances, mask_size)
    if not arrays:  # preallocated from the first example's fields: one copy of the split in memory
      arrays = {k: np.zeros((len(entries),) + np.shape(v), np.asarray(v).dtype)
                for k, v in example.items()}
    for k, v in example.items():
      arrays[k][i] = v
  return ArrayDataset(arrays)


def load_yolo_seg(root: str, split: str = "train2017", start: int = 0, stop: int | None = None,
                  image_size: int = 512, max_instances: int = 100, mask_size: int = 64
                  ) -> tuple[ArrayDataset, dict]:
  """Images `root/images/split/*` sorted by name, sliced [start:stop], with YOLO-seg labels from
  `root/labels/split/STEM.txt`: (ArrayDataset, coco_gt), see the module docstring."""
  check_sizes(image_size, max_instances, mask_size)
  entries, coco_gt = index_yolo_seg(root, split, start, stop)
  return load_entries(entries, image_size, max_instances, mask_size), coco_gt


def load_coco_json(root: str, split: str = "val2017", start: int = 0, stop: int | None = None,
                   image_size: int = 512, max_instances: int = 100, mask_size: int = 64
                   ) -> tuple[ArrayDataset, dict, dict]:
  """COCO 2017 layout: images of `root/annotations/instances_{split}.json` sorted by file name,
  sliced [start:stop], read from `root/split/`. Returns (ArrayDataset, coco_gt, meta) with
  meta = {"category_ids": COCO id of class k at index k - 1, "class_names": [...]}."""
  check_sizes(image_size, max_instances, mask_size)
  entries, coco_gt, meta = index_coco_json(root, split, start, stop)
  return load_entries(entries, image_size, max_instances, mask_size), coco_gt, meta


def load_detection(source: str, split: str, start: int = 0, stop: int | None = None,
                   image_size: int = 512, max_instances: int = 100, mask_size: int = 64
                   ) -> tuple[ArrayDataset, dict, dict]:
  """`yolo-seg:DIR` or `cocojson:DIR` (see the module docstring) decoded whole: (ArrayDataset,
  coco_gt, meta), meta as `index_detection` gives it."""
  check_sizes(image_size, max_instances, mask_size)
  entries, coco_gt, meta = index_detection(source, split, start, stop)
  return load_entries(entries, image_size, max_instances, mask_size), coco_gt, meta
