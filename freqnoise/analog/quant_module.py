"""`Quantizer`: a `QuantConfig` as a Flax Linen module, holding the state of tracked and learned
ranges (numerics and conventions: `freqnoise.analog.quant`).

Mode 'tracked' keeps an EMA of the range in the 'quant_ranges' collection (never 'params', so no
optimizer updates it): `model.apply(variables, x, train=True, mutable=['quant_ranges'])` updates
it. Mode 'learned' keeps LSQ's step or PACT's clip value in 'params'. Stochastic rounding takes its
key from the 'noise' RNG stream.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from freqnoise.analog.product import module_rng, vector_axes
from freqnoise.analog.quant import (COLLECTION, Grid, QuantConfig, channel_axis, data_range,
                                    fake_quant, grid_from_range, stateless_grid)


class Quantizer(nn.Module):
  """Fake-quantizes x per `config` (same shape and dtype): a DAC/ADC slot of the analog layers, or
  a weight quantizer. `q(x)` = `q(x, grid=q.grid(x))`: `grid` alone gives the step and zero point
  it uses (what `analog_product` measures ADC noise in); a call with a given grid updates nothing.

  Variables:
    'quant_ranges' (mode 'tracked'): 'absmax' (signed) or 'min' and 'max' (unsigned), shape () or
      [C]; 'count', the number of updates (int32). Updated only when `train`, the collection is
      mutable and the module is not initialising: the first update takes the batch's range, later
      ones r ← m·r + (1 − m)·(batch range), m = `config.momentum`; the quantizer then uses the
      updated range. Before the first update it uses the batch's own range.
    'params' (mode 'learned'): 'step' (LSQ) or 'alpha' (PACT), shape () or [C].

  Attributes:
    config: the QuantConfig.
    train: used by mode 'tracked' only; an attribute (the layers' quantizer slot calls `q(x)`) or
      the call argument, not both.
    layout: what x is, for LSQ's gradient scale 1/sqrt(N·qmax) (`lsq_count`): None: one array
      whose elements all count (weights: N_W); 'dense' / 'conv': a product's inputs or outputs,
      N_F = the features of one input vector (`freqnoise.analog.product.vector_axes`), so the
      step's gradient does not depend on the batch size or the sequence length.
  """

  config: QuantConfig
  train: bool | None = None
  layout: str | None = None

  def __call__(self, x: jax.Array, train: bool | None = None, *, grid: Grid | None = None
               ) -> jax.Array:
    """x fake-quantized on `grid` (default: this quantizer's own, `self.grid(x, train)`)."""
    cfg = self.config
    if grid is None:
      grid = self.grid(x, train)
    key = module_rng(self)("noise") if cfg.stochastic else None
    if cfg.mode != "learned":
      return fake_quant(x, cfg, grid, key=key)
    scale = 1 / math.sqrt(lsq_count(x.shape, cfg, self.layout) * cfg.qmax)
    return fake_quant(x, cfg, grid, key=key, grad=cfg.learned,
                      grad_scale=scale if cfg.learned == "lsq" else 1.0)

  @nn.compact
  def grid(self, x: jax.Array, train: bool | None = None) -> Grid:
    """The grid this quantizer uses for x (step and zero point, () or [C]); a 'tracked' range is
    updated here (once per call). The ADC noise of `analog_product` is in units of its step."""
    cfg = self.config
    if cfg.mode == "tracked":
      return self._tracked_grid(x, nn.merge_param("train", self.train, train))
    if cfg.mode == "learned":
      return self._learned_grid(x)
    return stateless_grid(x, cfg)

  def _tracked_grid(self, x: jax.Array, train: bool) -> Grid:
    cfg = self.config
    lo, hi = data_range(x, cfg)
    batch = {"absmax": hi} if cfg.signed else {"min": lo, "max": hi}
    count = self.variable(COLLECTION, "count", lambda: jnp.zeros((), jnp.int32))
    ranges = {n: self.variable(COLLECTION, n, jnp.zeros_like, b) for n, b in batch.items()}
    if train and self.is_mutable_collection(COLLECTION) and not self.is_initializing():
      m = cfg.momentum
      for n, r in ranges.items():
        r.value = jnp.where(count.value == 0, batch[n], m * r.value + (1 - m) * batch[n])
      count.value = count.value + 1
    now = {n: jnp.where(count.value > 0, r.value, batch[n]) for n, r in ranges.items()}
    return _grid(cfg, now)

  def _learned_grid(self, x: jax.Array) -> Grid:
    cfg = self.config
    axis = channel_axis(cfg, x.ndim)
    shape = () if axis is None else (x.shape[axis],)
    zero = jnp.zeros(shape, jnp.float32)
    if cfg.learned == "pact":
      alpha = self.param("alpha", nn.initializers.constant(cfg.bound), shape, jnp.float32)
      return Grid(alpha / cfg.qmax, zero)

    def init_step(_, shape):  # stored in units of the `step_bits` quantizer (step_scale)
      if cfg.bound is not None:
        return jnp.full(shape, cfg.bound / cfg.qmax / cfg.step_scale, jnp.float32)
      # LSQ's init 2·mean|x|/sqrt(qmax); an all-zero init batch gets 1, as grid_from_range does.
      axes = tuple(a for a in range(x.ndim) if a != axis)
      step = 2 * jnp.mean(jnp.abs(x.astype(jnp.float32)), axis=axes) / math.sqrt(cfg.qmax)
      return jnp.where(step > 0, step, 1.0) / cfg.step_scale

    step = self.param("step", init_step, shape)
    return Grid(step * cfg.step_scale if cfg.step_bits is not None else step, zero)


def lsq_count(shape: tuple[int, ...], config: QuantConfig, layout: str | None) -> int:
  """LSQ's N for an x of `shape` (Esser et al. 2020, §2.2: g = 1/sqrt(N·qmax)): the elements that
  share one step within one example — all of a weight array (layout None; per channel: one
  channel's), the features of one input vector of a 'dense' or 'conv' product (per channel: one
  channel's). Never the batch or time axes: the step's gradient already sums over them."""
  ndim = len(shape)
  axes = range(ndim) if layout is None else vector_axes(layout, ndim)
  channel = channel_axis(config, ndim)
  return math.prod(shape[a] for a in axes if a != channel)


def _grid(cfg: QuantConfig, ranges: Mapping[str, jax.Array]) -> Grid:
  if cfg.signed:
    return grid_from_range(cfg, -ranges["absmax"], ranges["absmax"])
  return grid_from_range(cfg, ranges["min"], ranges["max"])


def stored_grid(config: QuantConfig, variables: Mapping[str, Any]) -> Grid:
  """The grid a trained 'tracked' or 'learned' `Quantizer` uses at inference, from its own
  variables ({'quant_ranges': ...} or {'params': ...}), e.g. for `quant_export.export_weights`."""
  if config.mode == "tracked":
    ranges = variables[COLLECTION]
    if int(ranges["count"]) == 0:
      raise ValueError("this tracked Quantizer has no range yet (no training update)")
    return _grid(config, ranges)
  if config.mode != "learned":
    raise ValueError(f"QuantConfig.mode {config.mode!r} stores no range")
  params = variables["params"]
  scale = (params["alpha"] / config.qmax if config.learned == "pact"
           else params["step"] * config.step_scale)
  return Grid(scale, jnp.zeros_like(scale))
