"""Data: sources (TFDS, local files in original formats, sklearn digits), batching, augmentation."""

from __future__ import annotations

import ml_collections

from freqnoise.data.dataset import ArrayDataset, Splits, sample_indices
from freqnoise.data.lazy_split import LazySplit
from freqnoise.data.sequences import SEQUENCE_SOURCES, load_sequence_splits
from freqnoise.data.source_registry import register_source, registered_source
from freqnoise.data.sources import check_source, load_image_splits


def load_splits(cfg: ml_collections.ConfigDict, seed: int = 0) -> Splits:
  """Loads `cfg.source`, then keeps `cfg.limit_train` / `cfg.limit_test` examples (0 = all).

  A limit keeps a sample drawn with `seed` across the whole split (image folders are sorted by
  class: a prefix would keep whole classes), in split order. With `cfg.order == 'sequential'`
  (rows that continue each other, e.g. carried BPTT rows) it keeps the first rows instead.

  With `cfg.pipeline == 'grain'` an image folder's training split is a `LazySplit`: the Grain
  pipeline reads it one example at a time, so it is never decoded whole (nor cached). Sources
  registered by other packages (`source_registry`: detection's yolo-seg:DIR, cocojson:DIR) load
  through their own `load`.
  """
  kind = cfg.source.partition(":")[0]
  lazy_train = cfg.get("pipeline", "memory") == "grain"
  registered = registered_source(kind)
  if registered is not None:
    splits = registered.load(cfg)
  elif kind in SEQUENCE_SOURCES:  # seq:..., ptb:DIR, strokes:DIR
    splits = load_sequence_splits(cfg)
  else:
    splits = load_image_splits(cfg, lazy_train)
  limit_train, limit_test = cfg.get("limit_train", 0), cfg.get("limit_test", 0)
  if limit_train or limit_test:
    ordered = cfg.get("order", "shuffled") == "sequential"
    keep = lambda ds, n, s: ds if not n else ds.take(n) if ordered else ds.sample(n, s)
    splits = Splits(keep(splits.train, limit_train, seed), keep(splits.test, limit_test, seed + 1),
                    splits.num_classes, splits.name, splits.meta)
  return splits


__all__ = ["ArrayDataset", "LazySplit", "Splits", "check_source", "load_splits", "register_source",
           "sample_indices"]
