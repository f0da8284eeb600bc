"""Loss and accuracy over a whole split under `config.eval_noise`: the trainer's periodic eval.

Keys (freqnoise.rng): batch b uses `fold_in(experiment.key('eval'), b)`; the programming weight
noise is one chip for the whole pass, `named_key(experiment.key('eval'), 'program')`. No other
consumer (Monte Carlo draws, attacks) sees these keys.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from freqnoise import rng, sharding
from freqnoise.data.pipeline import eval_batches
from freqnoise.experiment import CARRY
from freqnoise.losses import correct_count, cross_entropy


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
    self.experiment = experiment
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
    out = e.predict(variables, batch[e.input_key], noise=e.eval_noise, key=self.batch_key(index),
                    program_key=self.program_key, carry=carry, mask=batch["mask"])
    logits, carry = out if carry is not None else (out, None)
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
