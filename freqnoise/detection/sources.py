"""Detection sources for `config.data.source`, registered in `freqnoise.data.source_registry` when
this module is imported (`freqnoise.experiment` imports it), so `load_splits` and `check_source`
dispatch here without the data package importing detection:

  yolo-seg:DIR   `DIR/images/SPLIT/*.jpg` + `DIR/labels/SPLIT/*.txt` YOLO-seg polygons
                 (../shared/data/coco128-seg)
  cocojson:DIR   the COCO 2017 layout: `DIR/annotations/instances_SPLIT.json`, `DIR/SPLIT/*.jpg`

`config.data.train_split` / `test_split` name the splits (folders); `train_range` / `test_range`
= (start, stop) slice each split's images in file-name order (stop 0 = to the end; YOLO-seg
counts a label file whose image is missing as a place, so nothing shifts: annotations.py), so one
folder can give a train and a held-out part (coco128: (0, 96) and (96, 128)). A slice without a
single instance is an error. `image_size` (the padded
square side, a multiple of 64), `max_instances` and `mask_size` shape the batch
(`freqnoise.detection.coco_data`). `splits.meta` carries `coco_gt` per split (the pycocotools
ground truth at the original resolution), `class_names` and `category_ids`.

With `config.data.pipeline = 'grain'` the training split is a `LazySplit` over a
`lazy_source.DetectionSource`: the annotations are indexed up front, and each image is decoded and
its instances rasterised only when the Grain pipeline reads it (COCO train2017 at 1344² would be
~640 GB in memory). The test split is decoded into memory (COCO val2017 at 1344² is ~27 GB) unless
`config.data.lazy_test = True`, which makes it a `LazySplit` too: the detection evaluator reads it
batch by batch (`pipeline.eval_batches` indexes `split[rows]`, decoding those rows only). Either
way the examples and `coco_gt` are those of the in-memory loaders.
"""

from __future__ import annotations

import os

import ml_collections

from freqnoise.data.dataset import Splits
from freqnoise.data.lazy_split import LazySplit
from freqnoise.data.source_registry import register_source
from freqnoise.detection import coco_data
from freqnoise.detection.lazy_source import DetectionSource

KINDS = ("yolo-seg", "cocojson")
FORMS = ("yolo-seg:DIR", "cocojson:DIR")


def is_detection_source(source: str) -> bool:
  return source.partition(":")[0] in KINDS


def _range(cfg: ml_collections.ConfigDict, field: str) -> tuple[int, int | None]:
  value = cfg.get(field, (0, 0))
  if (not isinstance(value, (tuple, list)) or len(value) != 2
      or not all(isinstance(v, int) and v >= 0 for v in value)):
    raise ValueError(f"config.data.{field} must be (start, stop) non-negative integers (stop 0 = "
                     f"to the end), got {value!r}")
  start, stop = value
  if stop and stop <= start:
    raise ValueError(f"config.data.{field} = {tuple(value)} is empty (stop <= start)")
  return start, stop or None


def check(cfg: ml_collections.ConfigDict) -> None:
  """Names, folders and sizes, before any image is read."""
  kind, _, root = cfg.source.partition(":")
  if kind not in KINDS or not root:
    raise ValueError(f"unknown detection source {cfg.source!r}; expected one of {', '.join(FORMS)}")
  if not os.path.isdir(os.path.expanduser(root)):
    raise FileNotFoundError(f"config.data.source={cfg.source!r}: {root} is not a folder")
  size = cfg.get("image_size", 0)
  if not isinstance(size, int) or size <= 0 or size % 64:
    raise ValueError(f"config.data.image_size must be a positive multiple of 64 for detection (5 "
                     f"FPN levels), got {size!r}")
  _range(cfg, "train_range")
  _range(cfg, "test_range")
  if not isinstance(cfg.get("lazy_test", False), bool):
    raise ValueError(f"config.data.lazy_test must be True or False, got {cfg.lazy_test!r}")


def load(cfg: ml_collections.ConfigDict) -> Splits:
  """Both splits of a detection source, each in memory or lazy (see the module docstring)."""
  check(cfg)
  kind, _, root = cfg.source.partition(":")
  source = f"{kind}:{os.path.expanduser(root)}"
  sizes = dict(image_size=cfg.image_size, max_instances=cfg.get("max_instances", 100),
               mask_size=cfg.get("mask_size", 64))
  lazy = {"train": cfg.get("pipeline", "memory") == "grain", "test": cfg.get("lazy_test", False)}
  out, gts, meta = {}, {}, {}
  for name, split, field in (("train", cfg.get("train_split", "train2017"), "train_range"),
                             ("test", cfg.get("test_split", "val2017"), "test_range")):
    start, stop = _range(cfg, field)
    if lazy[name]:
      examples = DetectionSource(source, split, start=start, stop=stop, **sizes)
      out[name], gts[name], meta = LazySplit(examples), examples.coco_gt, examples.meta
    else:
      out[name], gts[name], meta = coco_data.load_detection(source, split, start=start, stop=stop,
                                                            **sizes)
  names = meta["class_names"]
  meta = {**meta, "coco_gt": gts, "category_ids": meta.get("category_ids")}
  return Splits(out["train"], out["test"], len(names),
                f"{kind}:{os.path.basename(os.path.normpath(root))}", meta)


def check_for_objective(data: ml_collections.ConfigDict, objective: str) -> None:
  """A detection source's own fields (`check`), and a detection source for the detection
  objective (config.loss='maskrcnn'), whose batches must hold its targets."""
  if is_detection_source(data.source):
    check(data)
  elif objective == "maskrcnn":
    raise ValueError(f"config.loss='maskrcnn' trains on detection batches (fields boxes, classes, "
                     f"masks, size), which config.data.source={data.source!r} does not give; use a "
                     f"detection source: {', '.join(FORMS)}")


for _kind, _form in zip(KINDS, FORMS):
  register_source(_kind, _form, load, check)
