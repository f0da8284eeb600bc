"""Evaluators the trainer runs at the end of training (`config.evals`) and the CLI runs on a
checkpoint (`python -m freqnoise.evaluate`).

Calling convention (what `freqnoise.train.run_evaluators` uses):

    run_evaluator(name, task, state, key) -> dict[str, float]

`task` is a `freqnoise.train.Task` (config, model, transform, stats, splits, eval noise), `state` a
`TrainState` (params, model_state), `key` a PRNG key. Settings of evaluator NAME live in the config
block `config.NAME` (optional; defaults below). Evaluators also write their full arrays as JSON
into the workdir so plots can be redrawn without recomputing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Callable

import flax.linen as nn
import jax
import numpy as np

from freqnoise.analog.noise import NoiseConfig
from freqnoise.robust.montecarlo import MCResult, mc_accuracy

_EVALUATORS: dict[str, tuple[Callable[..., dict[str, float]], dict, Callable | None]] = {}

# Defaults of the `config.montecarlo` block; every field commented.
MONTECARLO_DEFAULTS = {
    "snrs_db": (),           # eval SNR grid in dB (inf = noiseless); () = (config.eval_noise.snr_db,)
    "num_draws": 16,         # independent noise draws per SNR (voting uses K = 1..num_draws)
    "draws_per_chunk": 0,    # draws evaluated at once, bounds memory (0 = all at once)
    "batch_size": 0,         # examples per batch (0 = config.data.eval_batch_size or batch_size)
    "split": "test",         # which split to evaluate
    "limit": 0,              # evaluate only the first N examples (0 = all)
    "output": "montecarlo.json",  # file in the workdir for the full arrays ("" = don't write)
}


def register_evaluator(name: str, defaults: dict, check: Callable[[Any, dict], None] | None = None):
  """Registers `fn(task, state, key, settings: dict) -> dict[str, float]` under `name`; `settings`
  is `defaults` updated with the config block `config.<name>`. `check(config, settings)`, if
  given, raises on bad settings; `check_evaluators` calls it before any training starts."""

  def wrap(fn):
    if name in _EVALUATORS:
      raise ValueError(f"evaluator {name!r} is registered twice")
    _EVALUATORS[name] = (fn, dict(defaults), check)
    return fn

  return wrap


def registered_evaluators() -> list[str]:
  return sorted(_EVALUATORS)


def evaluator_settings(config, name: str, defaults: dict) -> dict:
  """`defaults` updated with `config.<name>` (unknown fields are an error)."""
  block = config.get(name) if hasattr(config, "get") else None
  given = dict(block.to_dict() if hasattr(block, "to_dict") else (block or {}))
  unknown = sorted(set(given) - set(defaults))
  if unknown:
    raise ValueError(f"config.{name} has unknown field(s) {unknown}; known: {sorted(defaults)}")
  return {**defaults, **given}


def _lookup(name: str):
  if name not in _EVALUATORS:
    raise ValueError(f"unknown evaluator {name!r} in config.evals; known: "
                     f"{', '.join(registered_evaluators())}")
  return _EVALUATORS[name]


def check_evaluators(config) -> None:
  """Validates `config.evals` and each named evaluator's settings, so that a typo in an evaluator
  block fails at start-up rather than after hours of training."""
  for name in list(config.get("evals", ()) or ()):
    _, defaults, check = _lookup(name)
    settings = evaluator_settings(config, name, defaults)
    if check is not None:
      check(config, settings)


def run_evaluator(name: str, task: Any, state: Any, key: jax.Array) -> dict[str, float]:
  """Runs the registered evaluator `name` (see the module docstring for the arguments)."""
  fn, defaults, check = _lookup(name)
  settings = evaluator_settings(task.config, name, defaults)
  if check is not None:
    check(task.config, settings)
  return fn(task, state, key, settings)


@dataclasses.dataclass(frozen=True)
class NoisyModelApply:
  """`apply_fn` for `mc_accuracy`: input transform, then the model with its noise at `snr_db`.

  Hashable (frozen, compares the model by value), so `mc_accuracy` compiles once per model.
  variables = {'params', 'model_state', 'stats'}.
  """

  model: nn.Module
  noise: NoiseConfig
  transform: Any

  def __call__(self, variables, images, snr_db, key):
    x = self.transform(variables["stats"], images)
    model = self.model.clone(noise=self.noise.replace(snr_db=snr_db, snr_db_range=None))
    rngs = {"noise": key, "dropout": jax.random.fold_in(key, 1),
            "gumbel": jax.random.fold_in(key, 2)}
    return model.apply({"params": variables["params"], **variables["model_state"]}, x,
                       train=False, rngs=rngs)


_INF_SPELLINGS = {"inf", "+inf", "infinity", "float('inf')", 'float("inf")', "math.inf", "np.inf"}


def parse_snr_grid(grid) -> list[float]:
  """SNRs in dB from a sequence of numbers or a string such as "-5,0,inf" or "(0.0, float('inf'))"
  (what a command-line override of a tuple field arrives as). Raises ValueError naming the bad
  entry; NaN, -inf and non-numbers are rejected."""
  if not isinstance(grid, str) and any(isinstance(g, str) for g in grid):
    grid = ",".join(str(g) for g in grid)  # e.g. ("(0.0, float('inf'))",) from a tuple override
  if isinstance(grid, str):
    text = grid.strip()
    if text[:1] in "([" and text[-1:] in ")]":  # one pair of outer brackets
      text = text[1:-1]
    grid = [g.strip() for g in text.split(",") if g.strip()]
  out = []
  for g in grid:
    if isinstance(g, str):
      token = g.strip().lower().replace(" ", "")
      if token in _INF_SPELLINGS:
        out.append(math.inf)
        continue
      try:
        g = float(token)
      except ValueError:
        raise ValueError(f"montecarlo snrs_db: cannot read {g!r} as an SNR in dB (write numbers "
                         "and inf, e.g. '-5,0,5,inf')") from None
    if isinstance(g, bool) or not isinstance(g, (int, float, np.integer, np.floating)):
      raise TypeError(f"montecarlo snrs_db: {g!r} is not a number")
    if math.isnan(g) or g == -math.inf:
      raise ValueError(f"montecarlo snrs_db: {g} is not a valid SNR in dB")
    out.append(float(g))
  return out


def _snr_grid(settings: dict, eval_noise: NoiseConfig | None) -> list[float]:
  grid = parse_snr_grid(settings["snrs_db"])
  if grid:
    return grid
  if eval_noise is None:
    raise ValueError("montecarlo evaluator: set config.montecarlo.snrs_db or "
                     "config.eval_noise.snr_db")
  return [eval_noise.snr_db]


def _check_montecarlo(config, settings: dict) -> None:
  parse_snr_grid(settings["snrs_db"])
  for name, minimum in (("num_draws", 1), ("draws_per_chunk", 0), ("batch_size", 0), ("limit", 0)):
    v = settings[name]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
      raise ValueError(f"config.montecarlo.{name} must be an integer >= {minimum}, got {v!r}")
  if settings["split"] not in ("train", "test"):
    raise ValueError(f"config.montecarlo.split must be 'train' or 'test', got {settings['split']!r}")


def result_to_json(result: MCResult) -> dict:
  """Plain-JSON form of an MCResult (inf written as the string 'inf')."""
  return {"snrs_db": ["inf" if math.isinf(s) else float(s) for s in result.snrs_db],
          "accuracy": result.accuracy.tolist(), "majority": result.majority.tolist(),
          "mean_prob": result.mean_prob.tolist(), "num_examples": result.num_examples}


def result_from_json(data: dict) -> MCResult:
  return MCResult(snrs_db=np.array([float(s) for s in data["snrs_db"]]),
                  accuracy=np.asarray(data["accuracy"]), majority=np.asarray(data["majority"]),
                  mean_prob=np.asarray(data["mean_prob"]), num_examples=int(data["num_examples"]))


@register_evaluator("montecarlo", MONTECARLO_DEFAULTS, check=_check_montecarlo)
def montecarlo(task, state, key, settings: dict) -> dict[str, float]:
  """accuracy[snr, draw] with `config.eval_noise` (its kind/power/layers; SNR from the grid) and
  majority / mean-probability voting over all draws. Returns flat scalars 'snr_X/mean' etc."""
  from freqnoise.train import CARRY
  if CARRY in state.model_state:
    raise ValueError("the montecarlo evaluator treats examples as independent, but this model "
                     "carries its recurrent state across batches (carry_state); evaluate it with "
                     "a sequential evaluator such as experiments/deep_noise_injection's "
                     "mc_perplexity")
  base = task.eval_noise_spec  # kind / power / layers of config.eval_noise, even at SNR inf
  snrs = _snr_grid(settings, task.eval_noise)
  split = getattr(task.splits, settings["split"], None)
  if split is None:
    raise ValueError(f"montecarlo evaluator: no split {settings['split']!r}")
  images = split.arrays[task.input_key]
  labels = split.arrays[task.label_key]
  if settings["limit"]:
    images, labels = images[:settings["limit"]], labels[:settings["limit"]]
  if np.ndim(labels) != 1:
    raise ValueError(f"montecarlo evaluator needs one label per example, got labels of shape "
                     f"{np.shape(labels)}")
  batch_size = settings["batch_size"] or task.eval_batch_size
  apply_fn = NoisyModelApply(task.model, base, task.transform)
  variables = {"params": state.params, "model_state": state.model_state,
               "stats": task.stats_device}
  result = mc_accuracy(apply_fn, variables, images, labels, snrs_db=snrs,
                       num_draws=settings["num_draws"], key=key, batch_size=batch_size,
                       draws_per_chunk=settings["draws_per_chunk"] or None)
  if settings["output"] and jax.process_index() == 0:
    path = os.path.join(task.workdir, settings["output"])
    with open(path + ".tmp", "w") as f:
      json.dump({"noise": {"kind": base.kind, "power": base.power, "layers": base.layers,
                           "weight_noise": base.weight_noise,
                           "weight_sigma": float(base.weight_sigma)},
                 **result_to_json(result)}, f)
    os.replace(path + ".tmp", path)
  return result.metrics(prefix="")
