"""A detection split read one example at a time, for the streaming (Grain) input pipeline.

`DetectionSource("yolo-seg:DIR" | "cocojson:DIR", split, ...)` builds the split's annotation index
once (`freqnoise.detection.annotations`: file names, image headers, polygons or COCO annotations,
and `coco_gt`; no pixels) and then decodes ONE image and rasterises its instances per `source[i]`,
with `coco_data.read_example`, the function the in-memory loaders fill their arrays with: row i of
`coco_data.load_detection(...)` and `source[i]` are equal field by field. Wrapped in a
`freqnoise.data.LazySplit` it is a training split that never sits in memory whole (COCO train2017
at 1344² would be ~640 GB).

The source is pickled into Grain's worker processes: it holds plain tuples, arrays and RLE dicts, no
open files and no pycocotools `COCO` object. `coco_gt` stays in the process that built it (it is
not pickled: workers only read examples, and the evaluator reads it from `splits.meta`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from freqnoise.detection.annotations import index_detection
from freqnoise.detection.coco_data import check_sizes, limit_instances, read_example


class DetectionSource:
  """Random access to one split of a detection source: `len(src)`, `src[i] -> dict` of one example.

  Args:
    source: `yolo-seg:DIR` or `cocojson:DIR`.
    split: the split's folder / annotation file name (`train2017`, `val2017`, ...).
    start, stop: the slice of the split's images, in file-name order (as `load_detection`).
    image_size, max_instances, mask_size: the batch layout (S, N, M; see `freqnoise.detection`).

  Attributes:
    coco_gt: the pycocotools ground truth of the slice (None after unpickling).
    meta: `class_names` (and, for COCO json, `category_ids`).
    image_ids: int32 [len] COCO image ids in row order (no image decoded).
    instance_counts: int32 [len] training targets of each row (after the max_instances cut).
  """

  def __init__(self, source: str, split: str, *, start: int = 0, stop: int | None = None,
               image_size: int = 512, max_instances: int = 100, mask_size: int = 64):
    check_sizes(image_size, max_instances, mask_size)
    entries, self.coco_gt, self.meta = index_detection(source, split, start, stop)
    self.entries = limit_instances(entries, max_instances)
    self.source, self.split = source, split
    self.image_size, self.max_instances, self.mask_size = image_size, max_instances, mask_size
    self.image_ids = np.array([e.image_id for e in self.entries], np.int32)
    self.instance_counts = np.array([len(e.targets) for e in self.entries], np.int32)

  def __len__(self) -> int:
    return len(self.entries)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    i = int(index)
    if not -len(self) <= i < len(self):
      raise IndexError(f"index {i} out of range for {len(self)} examples of {self.source} "
                       f"split {self.split!r}")
    return read_example(self.entries[i], self.image_size, self.max_instances, self.mask_size)

  def __getstate__(self) -> dict[str, Any]:
    return {**self.__dict__, "coco_gt": None}  # the ground truth stays where it was built

  def __repr__(self) -> str:
    return (f"DetectionSource({self.source!r}, {self.split!r}: {len(self)} images, "
            f"S={self.image_size}, N={self.max_instances}, M={self.mask_size})")
