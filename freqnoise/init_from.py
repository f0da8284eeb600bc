"""`config.init_from`: start a new run from another run's latest parameters and model state (fresh
step and optimizer state), e.g. a float checkpoint fine-tuned with quantizers on. The workdir
checks that this new run is not a resume live in `freqnoise.workdir`."""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import ml_collections
from flax import traverse_util

def initialize_from(experiment, state, source: str):
  """`state` (a fresh TrainState) with the params and model_state of `source`'s latest checkpoint;
  step and optimizer state stay fresh. The old optimizer state is restored only to be dropped: its
  structure comes from `source/config.json`'s optimizer block (else this run's). The model must be
  the same (names, shapes, dtypes), else CheckpointError — except for converter variables (learned
  quantizer steps in params, tracked ranges in 'quant_ranges') that this run has and the checkpoint
  lacks, e.g. quantization-aware fine-tuning of a float run: they keep their fresh values."""
  from freqnoise.checkpoint import Checkpointer, CheckpointError
  from freqnoise.optim import build_optimizer
  tx = experiment.tx
  path = os.path.join(source, "config.json")
  if os.path.isfile(path):
    with open(path) as f:
      optimizer = json.load(f).get("optimizer")
    if optimizer:
      tx = build_optimizer(ml_collections.ConfigDict(optimizer), experiment.num_steps,
                           steps_per_epoch=experiment.steps_per_epoch)
  checkpointer = Checkpointer(source, every=1)
  try:
    if checkpointer.latest_step() is None:
      raise CheckpointError(f"config.init_from: no checkpoint in {checkpointer.directory}")
    fresh = _missing_converters(experiment, state, checkpointer.saved_tree())
    params, model_state = (_split(_flat(state), drop=fresh) if fresh
                           else (state.params, state.model_state))
    target = state.replace(params=params, model_state=model_state,
                           opt_state=jax.jit(tx.init)(params))
    try:
      old = checkpointer.restore(target)
    except CheckpointError as e:
      raise CheckpointError(
          f"config.init_from={source!r}: its latest checkpoint cannot start this run ({e}). "
          "init_from needs the same model (parameter names, shapes, dtypes); pick a run of this "
          "model, or drop init_from. Nothing was written.") from None
  finally:
    checkpointer.close()
  if not fresh:
    return state.replace(params=old.params, model_state=old.model_state)
  params, model_state = _split({**_flat(state), **_flat(old)})
  return state.replace(params=params, model_state=model_state)


def _flat(state) -> dict[tuple, Any]:
  """{('params' or collection, *path): leaf} of a TrainState's variables (empty dicts kept)."""
  return traverse_util.flatten_dict({"params": state.params, **state.model_state},
                                    keep_empty_nodes=True)


def _split(flat: dict[tuple, Any], drop: set[tuple] = frozenset()) -> tuple[dict, dict]:
  """(params, model_state) of flat variables, without the paths in `drop`."""
  variables = traverse_util.unflatten_dict({k: v for k, v in flat.items() if k not in drop})
  return variables.pop("params", {}), variables


def _missing_converters(experiment, state, saved: dict) -> set[tuple]:
  """Flat paths of this run's converter variables (those its model without `quant` lacks) that
  the checkpoint `saved` (its tree of array metadata) does not hold."""
  if experiment.quant is None:
    return set()
  plain = jax.eval_shape(lambda: experiment.init_state(experiment.key("init"),
                                                       experiment.model.clone(quant=None)))
  on_disk = traverse_util.flatten_dict({"params": saved.get("params", {}),
                                        **(saved.get("model_state") or {})})
  return set(_flat(state)) - set(_flat(plain)) - set(on_disk)
