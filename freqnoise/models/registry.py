"""Model registry: configs name a model; `build_model` turns `config.model` into a Linen module."""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import ml_collections

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
  """Registers a model factory (a function or Module class) under `name`.

  The factory is called as `factory(num_classes=..., noise=..., quant=..., **fields)` where
  `fields` are the entries of `config.model` other than `name`; `noise` (a NoiseConfig) and `quant`
  (a ProductQuant: DAC / Q_w / ADC) go to every analog layer, each per its own `layers` choice.
  """

  def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    if name in _MODELS:
      raise ValueError(f"model name {name!r} is registered twice")
    _MODELS[name] = factory
    return factory

  return wrap


STEMS = ("spatial", "frequency")


def check_stem_input(model: str, stem: str, x) -> None:
  """Clear errors for an unknown stem, non-NHWC input, or non-RGB input to a spatial stem."""
  if stem not in STEMS:
    raise ValueError(f"stem must be one of {STEMS}, got {stem!r}")
  if x.ndim != 4:
    raise ValueError(f"{model} expects NHWC input [batch, height, width, channels], got shape "
                     f"{x.shape}")
  if stem == "spatial" and x.shape[-1] != 3:
    raise ValueError(f"spatial stem expects 3 colour channels, got shape {x.shape}; "
                     "use stem='frequency' for DCT input")


def registered_models() -> list[str]:
  return sorted(_MODELS)


def build_model(model_config: ml_collections.ConfigDict | dict, *, num_classes: int,
                noise: Any = None, quant: Any = None) -> nn.Module:
  """Builds the model named by `model_config.name` with the remaining fields as keyword arguments,
  its analog layers under `noise` and with the converters `quant` (None: float products)."""
  fields = dict(model_config)
  name = fields.pop("name", None)
  if name is None:
    raise ValueError("config.model.name is missing; known models: " + ", ".join(registered_models()))
  if name not in _MODELS:
    raise ValueError(f"unknown model {name!r}; known models: {', '.join(registered_models())}")
  try:
    return _MODELS[name](num_classes=num_classes, noise=noise, quant=quant, **fields)
  except TypeError as e:  # an unexpected field in config.model
    raise ValueError(f"model {name!r} rejected its config fields {sorted(fields)}: {e}") from e
