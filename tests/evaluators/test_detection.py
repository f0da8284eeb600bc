"""The detection evaluator's keys: one programming-noise chip for every batch of a pass, read noise
fresh per batch, and the `coco` evaluator's own key (never the trainer's eval key, whose pass it
would repeat). A probe model stands in for Mask R-CNN: its two detections an image score the draws
of the `program` and `noise` streams, through the real `Experiment.predict` / `forward`."""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from freqnoise import evaluators, rng, sharding
from freqnoise.data.dataset import ArrayDataset, Splits
from freqnoise.evaluators import detection
from freqnoise.experiment import INPUT_STATS, Experiment

CHIP, READ = 1, 2  # the probe's classes: its detection scoring the chip, and the read-noise one


class ChipProbe(nn.Module):
  """Per image: detection of class CHIP scored U(0, 1) from the `program` stream (one value per
  call), and of class READ from the `noise` stream (one value per image)."""

  noise: Any = None

  @nn.compact
  def __call__(self, x, *, train: bool, size):
    b = x.shape[0]
    chip = jax.random.uniform(self.make_rng("program"), ())
    read = jax.random.uniform(self.make_rng("noise"), (b,))
    return {"boxes": jnp.tile(jnp.array([0.0, 0.0, 4.0, 4.0]), (b, 2, 1)),
            "scores": jnp.stack([jnp.full((b,), chip), read], axis=1),
            "classes": jnp.tile(jnp.array([CHIP, READ], jnp.int32), (b, 1)),
            "valid": jnp.ones((b, 2), bool), "mask_probs": jnp.ones((b, 2, 4, 4))}


class ProbeExperiment:
  """What the evaluator reads of an Experiment; `predict` and `forward` are Experiment's own."""

  predict, forward = Experiment.predict, Experiment.forward

  def __init__(self, workdir: str):
    n = 4  # two evaluation batches of 2 images
    test = ArrayDataset({"image": np.zeros((n, 8, 8, 3), np.uint8),
                         "size": np.full((n, 2), 8, np.int32),
                         "image_id": np.arange(1, n + 1, dtype=np.int32),
                         "scale": np.ones(n, np.float32), "orig_size": np.full((n, 2), 8, np.int32)})
    self.splits = Splits(test, test, 2, "probe", {"class_names": ["chip", "read"]})
    self.config = ml_collections.ConfigDict(
        {"seed": 0, "evals": {"coco": {"type": "coco", "picture_images": 0}}})
    self.workdir, self.input_key, self.eval_batch_size = workdir, "image", 2
    self.mesh, self.eval_noise, self.model = sharding.make_mesh(1), None, ChipProbe()
    self.transform = lambda stats, x, size=None: x.astype(jnp.float32)

  def key(self, consumer: str) -> jax.Array:
    return rng.consumer_key(rng.root_key(self.config.seed), consumer)

  def variables(self, state) -> dict:
    return {INPUT_STATS: {}}


def scores(results: list[dict], category: int) -> np.ndarray:
  """The score of each image's detection of `category`, by image id."""
  picked = sorted((r["image_id"], r["score"]) for r in results if r["category_id"] == category)
  assert [i for i, _ in picked] == [1, 2, 3, 4]
  return np.array([s for _, s in picked])


def test_one_chip_per_pass_and_read_noise_per_batch(tmp_path):
  experiment = ProbeExperiment(str(tmp_path))
  results, _ = detection.evaluator_of(experiment).detections(None, "test")
  chip, read = scores(results, CHIP), scores(results, READ)
  assert np.all(chip == chip[0])  # batches 0 and 1: one chip
  assert len(set(read.tolist())) == 4  # every image, in both batches, its own read noise
  # the trainer's eval key: the same pass again gives the same draws
  again, _ = detection.evaluator_of(experiment).detections(None, "test")
  np.testing.assert_array_equal(scores(again, CHIP), chip)


def test_the_coco_evaluator_draws_with_its_own_key(tmp_path, monkeypatch):
  experiment = ProbeExperiment(str(tmp_path))
  scored = []
  monkeypatch.setattr(detection, "score", lambda e, split, results: scored.append(results) or {})
  assert evaluators.run(experiment, None, "coco") == {}
  (coco,) = scored
  evaluator = detection.evaluator_of(experiment)
  trainer, _ = evaluator.detections(None, "test")  # the trainer's periodic eval
  assert scores(coco, CHIP)[0] != scores(trainer, CHIP)[0]  # another chip than the trainer's eval
  assert not set(scores(coco, READ)) & set(scores(trainer, READ))
  own, _ = evaluator.detections(None, "test", experiment.key("coco"))  # its key: experiment.key
  np.testing.assert_array_equal(scores(coco, CHIP), scores(own, CHIP))
  np.testing.assert_array_equal(scores(coco, READ), scores(own, READ))
