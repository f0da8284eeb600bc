"""Data: sources (TFDS, local files in original formats, sklearn digits), batching, augmentation."""

from __future__ import annotations

import ml_collections

from freqnoise.data.dataset import ArrayDataset, Splits
from freqnoise.data.sequences import SEQUENCE_SOURCES, load_sequence_splits
from freqnoise.data.sources import load_image_splits


def load_splits(cfg: ml_collections.ConfigDict) -> Splits:
  """Loads `cfg.source`, then keeps the first `cfg.limit_train` / `cfg.limit_test` examples (0 = all)."""
  is_sequence = cfg.source.partition(":")[0] in SEQUENCE_SOURCES  # seq:..., ptb:DIR, strokes:DIR
  splits = load_sequence_splits(cfg) if is_sequence else load_image_splits(cfg)
  limit_train, limit_test = cfg.get("limit_train", 0), cfg.get("limit_test", 0)
  if limit_train or limit_test:
    splits = Splits(splits.train.take(limit_train or len(splits.train)),
                    splits.test.take(limit_test or len(splits.test)),
                    splits.num_classes, splits.name, splits.meta)
  return splits


__all__ = ["ArrayDataset", "Splits", "load_splits"]
