"""`config.init_from`: start a new run from another run's latest parameters and model state (fresh
step and optimizer state), e.g. a float checkpoint fine-tuned with quantizers on, or a detector
whose backbone starts from one of our classification runs (`initialize_backbone`). The workdir
checks that this new run is not a resume live in `freqnoise.workdir`."""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import traverse_util

# Models whose params['backbone'] (and batch_stats['backbone']) is a `features_only` ResNet that
# `init_from` may fill from a classification run of one of `BACKBONE_SOURCES` (name -> depth).
DETECTORS = ("maskrcnn",)
BACKBONE_SOURCES = {"resnet18": 18, "resnet50": 50}
CLASSIFIER = "fc"  # the classification run's head: not part of a backbone


def initialize_from(experiment, state, source: str):
  """`state` (a fresh TrainState) with the params and model_state of `source`'s latest checkpoint;
  step and optimizer state stay fresh. The old optimizer state is restored only to be dropped: its
  structure comes from `source/config.json`'s optimizer block (else this run's). The model must be
  the same (names, shapes, dtypes), else CheckpointError — except for converter variables (learned
  quantizer steps in params, tracked ranges in 'quant_ranges') that this run has and the checkpoint
  lacks, e.g. quantization-aware fine-tuning of a float run: they keep their fresh values.
  A detector (`DETECTORS`) started from a run of another model takes only that run's ResNet
  (`initialize_backbone`)."""
  from freqnoise.checkpoint import Checkpointer, CheckpointError
  from freqnoise.optim import build_optimizer
  source_config = _source_config(source)
  model = experiment.config.model.name
  if model in DETECTORS and source_config.get("model", {}).get("name", model) != model:
    return initialize_backbone(experiment, state, source)
  tx = experiment.tx
  if source_config.get("optimizer"):
    tx = build_optimizer(ml_collections.ConfigDict(source_config["optimizer"]),
                         experiment.num_steps, steps_per_epoch=experiment.steps_per_epoch)
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


def initialize_backbone(experiment, state, source: str):
  """`state` (a fresh detector TrainState) with its ResNet backbone from the latest checkpoint of
  the classification run `source` (resnet18 / resnet50, spatial or frequency stem), as DCTNet
  starts its Mask R-CNN from an ImageNet-trained frequency ResNet: every param of the source but
  its classifier `fc` goes to params['backbone'], its BN statistics to
  model_state['batch_stats']['backbone']. The FPN, RPN and heads, the step and the optimizer state
  stay fresh; the source's other collections (e.g. a gate's statistics) and its input statistics
  are not used (the detector fits its own on its images). Names, shapes and dtypes must match
  exactly (same depth, width, stem and input channels), else CheckpointError naming the first
  mismatching path; nothing is read from the checkpoint's arrays before that check."""
  from freqnoise.checkpoint import Checkpointer, CheckpointError
  where = f"config.init_from={source!r}"
  this = experiment.config.model
  name = _source_config(source).get("model", {}).get("name")
  if name not in BACKBONE_SOURCES:
    raise CheckpointError(
        f"{where} is a run of model {name!r}: a {this.name} backbone starts from a classification "
        f"run of {' or '.join(BACKBONE_SOURCES)} (or from a {this.name} run). Nothing was written.")
  agree = (f"The source's model ({name}: depth {BACKBONE_SOURCES[name]}) and this run's "
           f"config.model.depth/width/stem ({this.get('depth')}/{this.get('width')}/"
           f"{this.get('stem')}) must agree, and so must the input channels (config.input)")
  _check_input_channels(experiment, source, where)
  checkpointer = Checkpointer(source, every=1)
  try:
    step = checkpointer.latest_step()
    if step is None:
      raise CheckpointError(f"{where}: no checkpoint in {checkpointer.directory}")
    saved = checkpointer.saved_tree()
    theirs = _backbone_leaves(saved.get("params", {}),
                              (saved.get("model_state") or {}).get("batch_stats", {}), drop_fc=True)
    ours = _backbone_leaves(state.params.get("backbone", {}),
                            state.model_state.get("batch_stats", {}).get("backbone", {}))
    layout = lambda x: (tuple(x.shape), np.dtype(x.dtype).name)
    diff = sorted((k for k in set(theirs) | set(ours)  # (params first, then BN statistics)
                   if k not in theirs or k not in ours or layout(theirs[k]) != layout(ours[k])),
                  key=lambda k: (k[0] != "params", k))
    if diff:
      shown = lambda leaves, k: " ".join(map(str, layout(leaves[k]))) if k in leaves else "absent"
      first = diff[0]
      raise CheckpointError(
          f"{where}: its {name} does not fit this run's {this.name} backbone ({len(diff)} arrays "
          f"differ; first {'/'.join(first)}: source {shown(theirs, first)}, this run "
          f"{shown(ours, first)}; paths as in the source, under 'backbone' here). {agree}. "
          "Nothing was written.")
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                            _nest(ours))
    restored = _restore_part(checkpointer.directory, step, abstract, where)
  finally:
    checkpointer.close()
  params = {**state.params, "backbone": restored["params"]}
  batch_stats = {**state.model_state.get("batch_stats", {}),
                 "backbone": restored["model_state"]["batch_stats"]}
  if jax.process_index() == 0:
    print(f"init_from: {len(ours)} backbone arrays (params and BN statistics) from {name} at step "
          f"{step} of {source}; its '{CLASSIFIER}' and input statistics are not used, the rest of "
          f"{this.name} starts fresh", flush=True)
  return state.replace(params=params,
                       model_state={**state.model_state, "batch_stats": batch_stats})


def _source_config(source: str) -> dict:
  """`source/config.json` as a dict ({} when there is none)."""
  path = os.path.join(source, "config.json")
  if not os.path.isfile(path):
    return {}
  with open(path) as f:
    return json.load(f)


def _backbone_leaves(params: dict, batch_stats: dict, drop_fc: bool = False) -> dict[tuple, Any]:
  """{('params' | 'batch_stats', *path): leaf} of a ResNet's variables (without `fc` if asked)."""
  flat = {("params", *k): v for k, v in traverse_util.flatten_dict(params).items()
          if not (drop_fc and k[0] == CLASSIFIER)}
  flat.update({("batch_stats", *k): v for k, v in traverse_util.flatten_dict(batch_stats).items()})
  return flat


def _nest(flat: dict[tuple, Any]) -> dict:
  """The checkpoint-shaped tree {'params': ..., 'model_state': {'batch_stats': ...}} of `flat`."""
  tree = traverse_util.unflatten_dict(flat)
  return {"params": tree.get("params", {}),
          "model_state": {"batch_stats": tree.get("batch_stats", {})}}


def _restore_part(directory: str, step: int, abstract: dict, where: str) -> dict:
  """The arrays of `abstract` (a sub-tree of the checkpoint, ShapeDtypeStructs with shardings)
  read from step `step` of the orbax checkpoints in `directory`; the rest is not read."""
  import orbax.checkpoint as ocp
  from freqnoise.checkpoint import CheckpointError
  reader = ocp.CheckpointManager(directory, item_handlers=ocp.PyTreeCheckpointHandler())
  try:
    return reader.restore(step, args=ocp.args.PyTreeRestore(
        abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
        partial_restore=True))
  except Exception as e:  # orbax raises many types for unreadable data
    first = (str(e).strip().splitlines() or [""])[0]
    raise CheckpointError(
        f"{where}: its checkpoint {os.path.join(directory, str(step))} cannot be read "
        f"({type(e).__name__}: {first[:300]}). Nothing was written.") from e
  finally:
    reader.close()


def _check_input_channels(experiment, source: str, where: str) -> None:
  """The source's DCT channel selection (its input_stats.npz) must be this run's: equal counts
  of other channels would fit the weights' shapes and still feed each filter the wrong input."""
  from freqnoise.checkpoint import CheckpointError
  path = os.path.join(source, "input_stats.npz")
  if "channels" not in experiment.stats or not os.path.isfile(path):
    return
  with np.load(path) as z:
    theirs = z["channels"] if "channels" in z.files else None
  ours = np.asarray(experiment.stats["channels"])
  if theirs is not None and not np.array_equal(theirs, ours):
    raise CheckpointError(
        f"{where} read the DCT channels {np.asarray(theirs).tolist()}, this run reads "
        f"{ours.tolist()}: the backbone's first convs would see other inputs. Use the source's "
        "config.input channels. Nothing was written.")


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
