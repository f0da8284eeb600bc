"""The evaluator registry and `config.evals`.

    config.evals.<name> = dict(type="<registered type>", <only the fields it changes>)

An evaluator type is a function `fn(experiment, state, key, settings) -> dict[str, float]`
registered with its defaults (the one place they live) and an optional `check(config, settings)`.
`settings` = the defaults updated with the block's fields; `key = experiment.key(name)`, so two
blocks of one type draw independent noise, every evaluator's keys are independent of the trainer's
('init', 'train', 'eval') and adding an evaluator never changes another's numbers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

Settings = dict[str, Any]
EvalFn = Callable[[Any, Any, Any, Settings], dict[str, float]]
CheckFn = Callable[[Any, Settings], None]

# Consumer names of the trainer's own randomness (freqnoise.rng): an evaluator named like one of
# them would reuse its keys.
RESERVED_NAMES = ("init", "train", "eval")


@dataclasses.dataclass(frozen=True)
class EvaluatorType:
  name: str
  fn: EvalFn
  defaults: Settings
  check: CheckFn | None


_TYPES: dict[str, EvaluatorType] = {}


def register(type_name: str, defaults: Mapping[str, Any], check: CheckFn | None = None):
  """Decorator registering `fn(experiment, state, key, settings) -> dict[str, float]` as the
  evaluator type `type_name` with its `defaults`; `check(config, settings)` raises ValueError /
  TypeError naming a bad field (called by `check_config` before any data is read)."""
  if "type" in defaults:
    raise ValueError("'type' is the block's type name, not a setting")

  def wrap(fn: EvalFn) -> EvalFn:
    if type_name in _TYPES:
      raise ValueError(f"evaluator type {type_name!r} is registered twice")
    _TYPES[type_name] = EvaluatorType(type_name, fn, dict(defaults), check)
    return fn

  return wrap


def known_types() -> list[str]:
  return sorted(_TYPES)


def lookup(type_name: str) -> EvaluatorType:
  if type_name not in _TYPES:
    raise ValueError(f"unknown evaluator type {type_name!r}; known: {', '.join(known_types())}")
  return _TYPES[type_name]


def _plain(value) -> dict:
  return dict(value.to_dict() if hasattr(value, "to_dict") else value)


def configured(config) -> dict[str, dict]:
  """`config.evals` as {name: block dict}; {} when it is missing or empty."""
  evals = config.get("evals") if hasattr(config, "get") else None
  if evals is None or len(evals) == 0:
    return {}
  if isinstance(evals, (str, list, tuple)):
    raise ValueError(
        f"config.evals must map each evaluator's name to its block, e.g. config.evals.montecarlo "
        f"= dict(type='montecarlo', num_draws=8); got the sequence {tuple(evals)!r} (the old "
        "shape, with settings in config.<name>)")
  if not hasattr(evals, "items"):
    raise ValueError(f"config.evals must be a ConfigDict of evaluator blocks, got "
                     f"{type(evals).__name__}")
  blocks = {}
  for name, block in evals.items():
    if not hasattr(block, "items"):
      raise ValueError(f"config.evals.{name} must be a block dict(type=..., ...), got "
                       f"{type(block).__name__} {block!r}")
    if name in RESERVED_NAMES:
      raise ValueError(f"config.evals.{name}: the name {name!r} is reserved (the trainer's own "
                       f"{name!r} keys, freqnoise.rng); pick another name")
    blocks[name] = _plain(block)
  return blocks


def settings(config, name: str) -> tuple[EvaluatorType, Settings]:
  """(type, defaults updated with config.evals.<name>) of the evaluator `name`."""
  blocks = configured(config)
  if name not in blocks:
    raise ValueError(f"no evaluator {name!r} in config.evals; it has {sorted(blocks) or 'none'}")
  block = dict(blocks[name])
  type_name = block.pop("type", None)
  if type_name is None:
    raise ValueError(f"config.evals.{name} has no 'type'; known types: {', '.join(known_types())}")
  try:
    etype = lookup(type_name)
  except ValueError as e:
    raise ValueError(f"config.evals.{name}: {e}") from None
  unknown = sorted(set(block) - set(etype.defaults))
  if unknown:
    raise ValueError(f"config.evals.{name} (type {type_name}) has unknown field(s) {unknown}; "
                     f"known: {sorted(etype.defaults)}")
  values = {**etype.defaults, **block}
  if etype.check is not None:
    try:
      etype.check(config, values)
    except (ValueError, TypeError) as e:
      raise type(e)(f"config.evals.{name} (type {type_name}): {e}") from None
  return etype, values


def output_file(values: Settings) -> str:
  """The file name an evaluator's settings `values` write into the workdir (its `output` field;
  '' = none), with '{split}' standing for its split (the coco picture's detections_{split}.png)."""
  return str(values.get("output", "")).replace("{split}", str(values.get("split", "")))


def check_config(config) -> None:
  """Validates every `config.evals` block (names, types, fields, values) before any data is read,
  so that a typo fails at start-up, not after hours of training. Raises ValueError / TypeError
  naming the evaluator and the field."""
  for name in configured(config):
    settings(config, name)
  from freqnoise.evaluators.split import check_test_time_augment  # (split imports the Experiment)
  check_test_time_augment(config)  # the trainer's test-set eval


def run(experiment, state, name: str) -> dict[str, float]:
  """Runs the evaluator `name` of `experiment.config.evals` on `state`, with its own key."""
  etype, values = settings(experiment.config, name)
  return etype.fn(experiment, state, experiment.key(name), values)


def run_configured(experiment, state, writer, step: int) -> dict[str, float]:
  """Runs every `config.evals` entry in order; writes each one's scalars as
  `writer.write(step, name, scalars)` and returns them all as {f"{name}/{k}": v}."""
  out = {}
  for name in configured(experiment.config):
    scalars = run(experiment, state, name)
    writer.write(step, name, scalars)
    out.update({f"{name}/{k}": v for k, v in scalars.items()})
  return out
