"""Loss and accuracy over a whole split under `config.eval_noise`: the trainer's periodic eval.

Keys (freqnoise.rng): batch b uses `fold_in(experiment.key('eval'), b)`; the programming weight
noise is one chip for the whole pass, `named_key(experiment.key('eval'), 'program')`. No other
consumer (Monte Carlo draws, attacks) sees these keys.

`config.test_time_augment` averages the logits of several views of each image (airbench): 'flip'
(the image and its mirror), 'flip_translate' (those, and both mirrors of the image shifted one
pixel down-right and up-left with reflected borders); '' = the image alone. View v > 0 of batch b
draws its noise from `fold_in(batch key, v)`.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from freqnoise import rng, sharding
from freqnoise.data.pipeline import eval_batches
from freqnoise.experiment import CARRY
from freqnoise.losses import correct_count, cross_entropy

TEST_TIME_AUGMENTS = ("", "flip", "flip_translate")  # config.test_time_augment


def check_test_time_augment(config) -> None:
  """Raises a ValueError naming config.test_time_augment unless it is one of TEST_TIME_AUGMENTS."""
  mode = config.get("test_time_augment", "")
  if mode not in TEST_TIME_AUGMENTS:
    raise ValueError(f"config.test_time_augment={mode!r} is not one of "
                     f"{', '.join(map(repr, TEST_TIME_AUGMENTS))}")


def augmented_views(x: jax.Array, mode: str) -> list[tuple[float, jax.Array]]:
  """(weight, view) pairs of NHWC images `x` [B, H, W, C] under `mode` (see the module docstring):
  '' -> the image; 'flip' -> it and its mirror, 1/2 each; 'flip_translate' -> those, 1/4 each, and
  the mirror pairs of the two one-pixel shifts, 1/8 each (airbench's tta_level 2). Weights sum to 1."""
  if not mode:
    return [(1.0, x)]
  if x.ndim != 4:
    raise ValueError(f"config.test_time_augment={mode!r} needs NHWC images, got shape {x.shape}")
  mirror = lambda v: v[:, :, ::-1]
  if mode == "flip":
    return [(0.5, x), (0.5, mirror(x))]
  h, w = x.shape[1:3]
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
  shifts = [padded[:, :h, :w], padded[:, 2:, 2:]]  # content moved down-right, up-left
  return [(0.25, x), (0.25, mirror(x))] + [(0.125, f(v)) for v in shifts for f in (lambda v: v,
                                                                                    mirror)]


def zero_carry(experiment, state, rows: int):
  """A zero recurrent state for batches of `rows` streams, sharded like the batch (None for
  models without a carried state)."""
  if CARRY not in state.model_state:
    return None
  zero = jax.tree.map(lambda c: jnp.zeros((rows,) + c.shape[1:], c.dtype),
                      state.model_state[CARRY])
  return jax.device_put(zero, sharding.batch_sharding(experiment.mesh))


class SplitEvaluator:
  """`SplitEvaluator(experiment)(state, split='test') -> {'loss', 'accuracy'[, 'perplexity']}`.

  Built once per run; its jitted batch step compiles once and is reused by every call. The padded
  last batch is masked out of the sums and (through `predict(mask=...)`) out of per-unit noise
  power. A model with a carried recurrent state is run over the split's batches in order from a
  zero state, as it is trained.
  """

  def __init__(self, experiment):
    check_test_time_augment(experiment.config)
    self.experiment = experiment
    self.tta = experiment.config.get("test_time_augment", "")
    self.key = experiment.key("eval")
    self.program_key = rng.named_key(self.key, "program")  # one chip per evaluation pass
    mesh = experiment.mesh
    self.step = jax.jit(self.batch_sums, out_shardings=(sharding.replicated(mesh),
                                                        sharding.batch_sharding(mesh)))

  def batch_key(self, index) -> jax.Array:
    """The key of batch `index` of a pass."""
    return jax.random.fold_in(self.key, index)

  def batch_sums(self, variables: dict, batch: dict, index: jax.Array, carry=None):
    """({'loss_sum', 'correct', 'count'} over the real rows of `batch`, carry after it)."""
    e = self.experiment
    key = self.batch_key(index)
    logits = 0.0
    for v, (weight, x) in enumerate(augmented_views(batch[e.input_key], self.tta)):
      view_key = jax.random.fold_in(key, v) if v else key
      out = e.predict(variables, x, noise=e.eval_noise, key=view_key,
                      program_key=self.program_key, carry=carry, mask=batch["mask"])
      view_logits, view_carry = out if carry is not None else (out, None)
      logits = logits + weight * view_logits
    carry = view_carry
    labels, mask = batch[e.label_key], batch["mask"]
    loss_sum, count = cross_entropy(logits, labels, 0.0, mask)
    return {"loss_sum": loss_sum, "correct": correct_count(logits, labels, mask),
            "count": count}, carry

  def __call__(self, state, split: str = "test") -> dict[str, float]:
    e = self.experiment
    ds = getattr(e.splits, split, None)
    if ds is None:
      raise ValueError(f"no split {split!r}; expected 'train' or 'test'")
    variables = e.variables(state)
    carry = zero_carry(e, state, e.eval_batch_size)
    totals = None
    for index, batch in enumerate(eval_batches(ds, e.eval_batch_size,
                                               process_index=jax.process_index(),
                                               process_count=jax.process_count())):
      sums, carry = self.step(variables, sharding.shard_batch(batch, e.mesh), jnp.int32(index),
                              carry)
      totals = sums if totals is None else jax.tree.map(jnp.add, totals, sums)
    totals = jax.device_get(totals)
    loss = float(totals["loss_sum"] / totals["count"])
    result = {"loss": loss, "accuracy": float(totals["correct"] / totals["count"])}
    if e.config.get("report_perplexity", False):
      result["perplexity"] = math.exp(min(loss, 50.0))
    return result
