"""`config.quant.bits_schedule`: quantization-aware training that starts at more bits and steps
down to the configured ones, e.g. "8:300,6:600" trains every converter that is on (weights, DAC,
ADC) at 8 bits for steps [0, 300), at 6 bits for [300, 600), then at its configured bits (which
every evaluation, checkpoint and export uses).

The stages share one set of parameters and model state: tracked and fixed ranges are ranges, so
they carry over as they are, and a learned LSQ step is stored as the final quantizer's step
(`QuantConfig.step_bits`), so a stage change keeps each learned range and only refines its grid.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from freqnoise.analog.product_quant import ProductQuant


def parse_bits_schedule(text: str) -> tuple[tuple[int, int], ...]:
  """"BITS:UNTIL_STEP,..." -> ((bits, until_step), ...); "" -> (). Errors name the field."""
  if not isinstance(text, str):
    raise ValueError(f"config.quant.bits_schedule must be a string like '8:300,6:600', got "
                     f"{text!r}")
  stages = []
  for part in filter(None, (p.strip() for p in text.split(","))):
    try:
      bits, until = (int(v) for v in part.split(":"))
    except ValueError:
      raise ValueError(f"config.quant.bits_schedule: {part!r} is not BITS:UNTIL_STEP (e.g. "
                       "'8:300,6:600': 8 bits until step 300, then 6 until 600)") from None
    if not 1 <= bits <= 16:
      raise ValueError(f"config.quant.bits_schedule: bits must be in [1, 16], got {bits} in "
                       f"{part!r}")
    if until <= (stages[-1][1] if stages else 0):
      raise ValueError(f"config.quant.bits_schedule: the steps must increase from > 0, got "
                       f"{text!r}")
    stages.append((bits, until))
  return tuple(stages)


def check_bits_schedule(stages: tuple[tuple[int, int], ...], preset: str,
                        quant: ProductQuant | None, num_steps: int | None = None) -> None:
  """Errors for a schedule that cannot apply: no converters, aihwkit, past the run's end."""
  if not stages:
    return
  if quant is None:
    raise ValueError("config.quant.bits_schedule needs converters: set config.quant.weight_bits, "
                     "dac_bits or adc_bits")
  if preset:
    raise ValueError(f"config.quant.bits_schedule is not used with preset={preset!r} (its "
                     "converters' resolutions are fixed)")
  if num_steps is not None and stages[-1][1] >= num_steps:
    raise ValueError(f"config.quant.bits_schedule ends at step {stages[-1][1]}, not before the "
                     f"run's {num_steps} steps: the configured bits would never train")


def with_bits(quant: ProductQuant, bits: int) -> ProductQuant:
  """`quant` with every converter at `bits`; learned LSQ steps stay in the final config's units."""
  def stage(config):
    if config is None:
      return None
    return dataclasses.replace(config, bits=bits, step_bits=config.step_bits or config.bits)
  return dataclasses.replace(quant, weight=stage(quant.weight), dac=stage(quant.dac),
                             adc=stage(quant.adc))


def describe(stages: tuple[tuple[int, int], ...]) -> str:
  """The schedule in words, for the trainer's start-up lines."""
  return ("bits schedule: " + ", ".join(f"{b} bits to step {u}" for b, u in stages)
          + ", then the configured bits")


def by_stage(step: jax.Array, stages: tuple[tuple[int, int], ...], models: tuple,
             fn: Callable[..., Any], *args) -> Any:
  """`fn(*args, model=m)` with the training model of the stage that `step` is in: `models[i]`
  (`Experiment.stage_models`) for steps in stage i, None (the configured model) after the last
  stage and without a schedule. One `lax.switch`: every stage's `fn` compiles, the step runs one,
  so everything `fn` does with the model (the gradient, adversarial examples) is the stage's."""
  if not stages:
    return fn(*args, model=None)
  ends = jnp.asarray([until for _, until in stages])
  branches = [functools.partial(fn, model=m) for m in (*models, None)]
  return jax.lax.switch(jnp.sum(step >= ends), branches, *args)
