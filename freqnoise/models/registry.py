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


def check_input_grid(model: nn.Module, transform: Any, model_name: str = "") -> None:
  """A model that infers the image size from its input grid (attribute `input_stride`: image
  pixels per input cell of its frequency stem; 1 with its spatial stem) must get a transform with
  that many pixels per cell (`transform.pixels_per_cell`: 1 for pixels, 8 / config.input.upscale
  for a block DCT), else its anchors and RoIs would cover the wrong part of the image. Raises a
  ValueError naming config.model.stem and config.input.upscale."""
  stride = getattr(model, "input_stride", None)
  stem = getattr(model, "stem", "spatial")
  expected = 1 if stem == "spatial" else stride
  cell = getattr(transform, "pixels_per_cell", None)
  if stride is None or cell == expected:
    return
  need = ("pixels, config.input.name='spatial'" if stem == "spatial" else
          f"input_stride={stride}: the block DCT of the image upscaled {8 / stride:g}x, "
          f"config.input.upscale={8 / stride:g}")
  got = ("no image grid" if cell is None else f"cells of {cell:g} pixels (config.input.upscale="
         f"{getattr(transform, 'upscale', 1)})")
  raise ValueError(f"config.model.stem={stem!r}: {model_name or type(model).__name__} takes each "
                   f"input cell as {expected}x{expected} image pixels ({need}), but config.input "
                   f"gives {got}: its anchors and RoIs would cover the wrong part of the image")


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
