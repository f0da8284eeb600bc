"""COCO box and mask AP of a detector over a split: the trainer's periodic eval for
`config.loss = 'maskrcnn'`, and the `coco` evaluator type for `config.evals`.

Batches of the split go through `experiment.forward` in evaluation mode (with each image's content
`size`, so boxes are clipped to it); detections are mapped back to the original images (`scale`,
`orig_size`), masks pasted and RLE-encoded, and pycocotools scores them against the split's COCO
ground truth (`splits.meta['coco_gt'][split]`, built by the data source from the original
annotations). A split may be in memory or a `LazySplit` (`config.data.lazy_test`, or the training
split with `config.data.pipeline = 'grain'`), then decoded batch by batch. The `coco` evaluator
also saves a picture of the first images' detections.

Keys (freqnoise.rng), as in the split evaluator: a pass with `key` (the trainer's eval:
`experiment.key('eval')`; a `coco` evaluator: its own `experiment.key(name)`) runs batch b with
`fold_in(key, b)` (read noise: fresh per batch) and one chip for the whole pass,
`named_key(key, 'program')` (programming weight noise, DESIGN.md).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from freqnoise import rng, sharding
from freqnoise.data.lazy_split import LazySplit
from freqnoise.data.pipeline import eval_batches
from freqnoise.detection import coco_eval
from freqnoise.evaluators.registry import output_file, register


class DetectionEvaluator:
  """`DetectionEvaluator(experiment)(state, split='test', key=None) -> {'box_AP', 'box_AP50', ...,
  'mask_AP', ...}` (fractions 0..1, pycocotools' stats); `key` None: the trainer's eval key. One
  jitted batch step (the key is its argument) serves the trainer's eval and every `coco` block."""

  def __init__(self, experiment):
    self.experiment = experiment
    self.key = experiment.key("eval")
    mesh = experiment.mesh
    self.step = jax.jit(self._predict, out_shardings=sharding.batch_sharding(mesh))

  def _predict(self, variables: dict, batch: dict, index: jax.Array, key: jax.Array) -> dict:
    """Detections of batch `index` of a pass with `key` (see the module docstring)."""
    e = self.experiment
    return e.predict(variables, batch[e.input_key], noise=e.eval_noise,
                     key=jax.random.fold_in(key, index), program_key=rng.named_key(key, "program"),
                     size=batch["size"])

  def detections(self, state, split: str = "test", key: jax.Array | None = None
                 ) -> tuple[list[dict], dict]:
    """(COCO results of every real image of `split`, the first batch's inputs and detections),
    from one pass with `key` (default: the trainer's eval key)."""
    e = self.experiment
    ds = getattr(e.splits, split, None)
    if ds is None:
      raise ValueError(f"no split {split!r}; expected 'train' or 'test'")
    key = self.key if key is None else key
    variables = e.variables(state)
    results, first = [], None
    for index, batch in enumerate(eval_batches(ds, e.eval_batch_size,
                                               process_index=jax.process_index(),
                                               process_count=jax.process_count())):
      dets = self.step(variables, sharding.shard_batch(batch, e.mesh), jnp.int32(index), key)
      if jax.process_count() > 1:  # every process scores the whole split
        dets = multihost_utils.process_allgather(dets, tiled=True)
        batch = multihost_utils.process_allgather(batch, tiled=True)
      dets = jax.device_get(dets)
      real = np.asarray(batch["mask"]) > 0
      pick = lambda a: np.asarray(a)[real]
      results += coco_eval.detections_to_coco(
          pick(batch["image_id"]), pick(dets["boxes"]), pick(dets["scores"]),
          pick(dets["classes"]), pick(dets["valid"]), pick(batch["scale"]),
          pick(batch["orig_size"]), pick(dets["mask_probs"]))  # coco_gt's ids are classes 1..K
      if first is None:
        first = {"batch": {k: pick(v) for k, v in batch.items()},
                 "dets": {k: pick(v) for k, v in dets.items()}}
    return results, first

  def __call__(self, state, split: str = "test", key: jax.Array | None = None) -> dict[str, float]:
    results, _ = self.detections(state, split, key)
    return score(self.experiment, split, results)


def evaluator_of(experiment) -> DetectionEvaluator:
  """The experiment's one DetectionEvaluator: the trainer's periodic eval and the `coco` evaluator
  share it, so its jitted inference compiles once per run."""
  cached = experiment.__dict__.get("_detection_evaluator")
  if cached is None:
    cached = experiment._detection_evaluator = DetectionEvaluator(experiment)
  return cached


def split_image_ids(ds) -> list[int]:
  """The COCO image ids of a split's examples, in order, decoding no image: an in-memory split's
  `image_id` column, or a `LazySplit`'s rows of its source's `image_ids` (`DetectionSource`)."""
  if isinstance(ds, LazySplit):
    if not hasattr(ds.source, "image_ids"):
      raise TypeError(f"{ds!r}: its source has no `image_ids`; a lazy detection split needs a "
                      "freqnoise.detection.lazy_source.DetectionSource")
    return [int(i) for i in np.asarray(ds.source.image_ids)[ds.rows]]
  return [int(i) for i in ds.arrays["image_id"]]


def score(experiment, split: str, results: list[dict]) -> dict[str, float]:
  """pycocotools' AP of `results` on the images of `split` (its ground truth may hold more)."""
  ids = split_image_ids(getattr(experiment.splits, split))
  return coco_eval.coco_ap(experiment.splits.meta["coco_gt"][split], results, image_ids=ids)


def draw_first(experiment, first: dict, path: str, max_images: int = 4) -> None:
  """The picture of the first evaluation batch's detections (boxes, classes, masks)."""
  b, d = first["batch"], first["dets"]
  coco_eval.draw_detections(path, b[experiment.input_key], d["boxes"], d["scores"], d["classes"],
                            d["valid"], d["mask_probs"], experiment.splits.meta["class_names"],
                            max_images=max_images)


def _check(config, s: dict) -> None:
  if s["split"] not in ("train", "test"):
    raise ValueError(f"split must be 'train' or 'test', got {s['split']!r}")
  if not isinstance(s["picture_images"], int) or s["picture_images"] < 0:
    raise ValueError(f"picture_images must be a non-negative integer, got {s['picture_images']!r}")
  if not isinstance(s["output"], str):
    raise ValueError(f"output must be a file name (or ''), got {s['output']!r}")


COCO_DEFAULTS = {
    "split": "test",         # which split to score: train | test
    "picture_images": 4,     # images in the picture of the first batch's detections (0 = none)
    "output": "detections_{split}.png",  # the picture's file in the workdir ("" = none)
}


@register("coco", COCO_DEFAULTS, check=_check)
def coco(experiment, state, key, s: dict) -> dict[str, float]:
  """COCO AP of `split` (`DetectionEvaluator`, one pass with this evaluator's own `key`), and the
  picture `output` (default `detections_<split>.png`) in the workdir of the first `picture_images`
  images' detections."""
  results, first = evaluator_of(experiment).detections(state, s["split"], key)
  scores = score(experiment, s["split"], results)
  picture = output_file(s)
  if s["picture_images"] and picture and jax.process_index() == 0 and first is not None:
    draw_first(experiment, first, os.path.join(experiment.workdir, picture), s["picture_images"])
  return scores
