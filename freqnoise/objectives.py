"""Training objectives: what the one train step minimises, named by `config.loss`.

    config.loss = 'cross_entropy'   # classifiers and language models (the default)
    config.loss = 'maskrcnn'        # detectors whose training call returns named losses

An objective is `fn(forward, batch, x, settings) -> (loss, metrics, updates)` where
`forward(x, **model_kwargs) -> (outputs, updates)` runs the model in training mode (noise, RNG
streams and mutable collections already bound by the trainer) on the transformed input `x`, and
`settings` holds the config fields it reads. Every scalar a module sowed into 'losses' (e.g. the
frequency gate's sparsity) is added to the loss by every objective.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from freqnoise.losses import correct_count, cross_entropy, loss_terms

Objective = Callable[..., tuple]
_OBJECTIVES: dict[str, Objective] = {}
# The batch fields the detector's training call reads as targets.
DETECTION_TARGETS = ("boxes", "classes", "masks", "size")


def register(name: str):
  def wrap(fn: Objective) -> Objective:
    if name in _OBJECTIVES:
      raise ValueError(f"objective {name!r} is registered twice")
    _OBJECTIVES[name] = fn
    return fn
  return wrap


def known() -> list[str]:
  return sorted(_OBJECTIVES)


def lookup(name: str) -> Objective:
  if name not in _OBJECTIVES:
    raise ValueError(f"unknown config.loss {name!r}; known: {', '.join(known())}")
  return _OBJECTIVES[name]


def name_of(config) -> str:
  """`config.loss`, or 'maskrcnn' for the maskrcnn model and 'cross_entropy' otherwise."""
  default = "maskrcnn" if config.model.get("name") == "maskrcnn" else "cross_entropy"
  return config.get("loss", default) or default


@register("cross_entropy")
def classification(forward, batch: dict, x: jax.Array, settings: dict):
  """Mean (label-smoothed) cross-entropy of `batch[label_key]`; metrics: loss, cross_entropy,
  accuracy."""
  labels = batch[settings["label_key"]]
  logits, updates = forward(x)
  ce_sum, count = cross_entropy(logits, labels, settings.get("label_smoothing", 0.0))
  ce, extra = ce_sum / count, loss_terms(updates)
  metrics = {"loss": ce + extra, "cross_entropy": ce,
             "accuracy": correct_count(logits, labels) / labels.size}
  return ce + extra, metrics, updates


@register("maskrcnn")
def detection(forward, batch: dict, x: jax.Array, settings: dict):
  """The sum of the named losses the model returns given the batch's targets (boxes, classes,
  masks, size); metrics: loss and each named loss."""
  missing = [k for k in DETECTION_TARGETS if k not in batch]
  if missing:
    raise ValueError(f"config.loss='maskrcnn' needs batch fields {DETECTION_TARGETS}; missing "
                     f"{missing} (use a detection source: yolo-seg:DIR, cocojson:DIR)")
  losses, updates = forward(x, targets={k: batch[k] for k in DETECTION_TARGETS})
  extra = loss_terms(updates)
  total = sum(losses.values(), jnp.zeros((), jnp.float32)) + extra
  return total, {"loss": total, **losses}, updates
