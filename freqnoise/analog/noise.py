"""Noise models of an analog matrix-vector product (see DESIGN.md, "Analog matrix-vector product").

    y = ADC( DAC(x) · W̃ + n ) + b,   W̃ = W + weight noise,   n ~ N(0, σ²),   σ² = P / 10^(SNR_dB / 10)

`P` is the mean square of the noiseless product under `stop_gradient`, either per example (over the
output units of each matrix-vector product) or per unit (over the batch and, for convolutions, the
output positions). SNR = +inf, or no `NoiseConfig` at all, means exactly noiseless.

Everything here is a pure function of (key, signal, config); layers call them with keys taken from
the `noise` RNG stream.
"""

from __future__ import annotations

import math
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections

import freqnoise.analog.gaussian as gaussian
from freqnoise.analog.pcm import DEFAULTS as PCM_DEFAULTS
from freqnoise.analog.pcm import PcmConfig, pcm_from_config

KINDS = ("output", "none")
WEIGHT_NOISES = ("none", "additive", "multiplicative", "pcm")
POWERS = ("per_example", "per_unit")
WEIGHT_DRAWS = ("programming", "read")
LAYER_SETS = ("all", "all_but_first", "all_but_last", "all_but_first_last")


@flax.struct.dataclass
class NoiseConfig:
  """What noise an analog layer adds. A pytree: `snr_db`, `weight_sigma` and `t_inference` are
  leaves (traceable, vmappable), everything else is static.

  Attributes:
    snr_db: output SNR in dB of each analog product; +inf turns output noise off.
    weight_sigma: weight-noise level (relative to max|W| for 'additive', to W for 'multiplicative').
    kind: 'output' (additive Gaussian output noise set by `snr_db`) or 'none'.
    weight_noise: 'none', 'additive' (W + σ_w·max|W|·ε), 'multiplicative' (W·(1 + σ_w·ε)) or
      'pcm': aihwkit's PCM programming noise, drift to `t_inference` and 1/f read noise, per tile,
      with global drift compensation (`pcm`; freqnoise.analog.pcm). σ_w is not used by 'pcm'.
    t_inference: seconds after programming ('pcm'); a leaf, so a Monte Carlo grid sweeps it.
    pcm: the `PcmConfig` of 'pcm' (None otherwise).
    weight_draw: 'programming' (default): one realisation of W̃ per model instance — per Monte
      Carlo draw, per evaluation pass, per training step — fixed over batches and time steps, as
      the conductance errors of a programmed chip; 'read': fresh at every product call (aihwkit's
      `w_noise`). Qin & Vucinic and the DNI paper use output noise only; the NVM LSTM paper's
      weight noise is programming noise.
    power: 'per_example' (P over the output units of each product) or 'per_unit' (P of each
      output unit over the batch and positions).
    valid: optional [B] row mask (1 = real example, 0 = padding of a last batch); 'per_unit' power
      averages over the real rows only. Set by `Experiment.predict(mask=...)`, not by configs.
    layers: which of a model's products are analog: 'all', 'all_but_first', 'all_but_last',
      'all_but_first_last' (models ask `noise_for_layer`). "First" = the products that read the
      model input, whatever the stem (a spatial stem's conv; without a stem, the first block's
      convs that read the input; the frequency gate's hidden product); "last" = the classifier.
      In recurrent models, layer 0's products are "first".
    snr_db_range: optional (lo, hi) in dB; training draws snr_db ~ U(lo, hi) once per step
      (`sample_training_noise`), shared by every layer of that step.
    power_gradient: let gradients flow through P (default False: P under stop_gradient, as
      DESIGN.md defines it). Under stop_gradient, training sees the noise as a constant, so
      growing the weights always looks like a better SNR; without normalisation layers the scale
      of a ReLU network then runs away at low SNR (we saw the MNIST loss reach 1e5 at 0 dB).
      With the gradient, the training loss knows that the noise grows with the signal.
  """

  snr_db: Any = math.inf
  weight_sigma: Any = 0.0
  kind: str = flax.struct.field(pytree_node=False, default="output")
  weight_noise: str = flax.struct.field(pytree_node=False, default="none")
  power: str = flax.struct.field(pytree_node=False, default="per_example")
  layers: str = flax.struct.field(pytree_node=False, default="all")
  snr_db_range: tuple[float, float] | None = flax.struct.field(pytree_node=False, default=None)
  power_gradient: bool = flax.struct.field(pytree_node=False, default=False)
  weight_draw: str = flax.struct.field(pytree_node=False, default="programming")
  valid: Any = None
  t_inference: Any = 0.0
  pcm: PcmConfig | None = flax.struct.field(pytree_node=False, default=None)

  def __post_init__(self):
    _check_choice("kind", self.kind, KINDS)
    _check_choice("weight_noise", self.weight_noise, WEIGHT_NOISES)
    _check_choice("power", self.power, POWERS)
    _check_choice("layers", self.layers, LAYER_SETS)
    _check_choice("weight_draw", self.weight_draw, WEIGHT_DRAWS)
    if not isinstance(self.power_gradient, bool):
      raise TypeError(f"noise power_gradient must be True or False, got {self.power_gradient!r}")
    _check_number("snr_db", self.snr_db, allow_inf=True)
    _check_number("weight_sigma", self.weight_sigma, allow_inf=False, nonnegative=True)
    _check_number("t_inference", self.t_inference, allow_inf=False, nonnegative=True)
    if self.weight_noise == "pcm" and self.pcm is None:
      object.__setattr__(self, "pcm", PcmConfig())
    if self.pcm is not None and not isinstance(self.pcm, PcmConfig):
      raise TypeError(f"noise pcm must be a PcmConfig or None, got {self.pcm!r}")
    if self.snr_db_range is not None:
      if len(self.snr_db_range) != 2:
        raise ValueError(f"snr_db_range must be (lo, hi) in dB, got {self.snr_db_range!r}")
      lo, hi = self.snr_db_range
      _check_number("snr_db_range[0]", lo, allow_inf=False)
      _check_number("snr_db_range[1]", hi, allow_inf=False)
      if lo > hi:
        raise ValueError(f"snr_db_range must have lo <= hi, got {self.snr_db_range!r}")
      object.__setattr__(self, "snr_db_range", (float(lo), float(hi)))

  @property
  def statically_off(self) -> bool:
    """True when this config can be seen to add no noise without tracing anything."""
    output_off = self.kind == "none" or (_is_python_number(self.snr_db) and self.snr_db == math.inf
                                         and self.snr_db_range is None)
    weight_off = self.weight_noise == "none" or (
        self.weight_noise != "pcm" and _is_python_number(self.weight_sigma)
        and self.weight_sigma == 0)
    return output_off and weight_off


def _is_python_number(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_choice(name: str, value, choices) -> None:
  if value not in choices:
    raise ValueError(f"unknown noise {name} {value!r}; expected one of {', '.join(choices)}")


def _check_number(name: str, value, *, allow_inf: bool, nonnegative: bool = False) -> None:
  """Rejects strings, bools and (for Python numbers) NaN/-inf, and negatives if `nonnegative`.
  Arrays, tracers and None pass through: JAX rebuilds this pytree with placeholder leaves (vmap
  in_axes, tree_map to None)."""
  if isinstance(value, (str, bytes, bool)):
    raise TypeError(f"noise {name} must be a number (dB or a ratio), got {type(value).__name__} "
                    f"{value!r}")
  if _is_python_number(value):
    if math.isnan(value):
      raise ValueError(f"noise {name} is NaN")
    if math.isinf(value) and not (allow_inf and value > 0):
      raise ValueError(f"noise {name} must be finite{' or +inf' if allow_inf else ''}, got {value}")
    if nonnegative and value < 0:  # a standard deviation: -0.5 would silently act as 0.5
      raise ValueError(f"noise {name} must be >= 0 (a standard deviation), got {value}")


def noise_from_config(cfg: ml_collections.ConfigDict | dict | None, *,
                      keep_off: bool = False) -> NoiseConfig | None:
  """Builds a `NoiseConfig` from a config block (`config.train_noise` / `config.eval_noise`).

  Returns None (plain, noiseless layers) when `cfg` is None or empty or, unless `keep_off`, turns
  every kind of noise off. `keep_off=True` keeps such a config: evaluators that sweep the SNR need
  its kind / power / layers even when its own SNR is inf. Raises ValueError/TypeError naming the
  bad field.
  """
  if cfg is None:
    return None
  fields = dict(cfg.to_dict() if isinstance(cfg, ml_collections.ConfigDict) else cfg)
  if not fields:
    return None
  known = {f.name for f in NoiseConfig.__dataclass_fields__.values()} - {"valid"}
  unknown = sorted(set(fields) - known)
  if unknown:
    raise ValueError(f"unknown noise config field(s) {unknown}; known: {sorted(known)}")
  pcm_fields = {**PCM_DEFAULTS, **dict(fields.pop("pcm", None) or {})}
  if fields.get("weight_noise") == "pcm":
    fields["pcm"] = pcm_from_config(pcm_fields)
  elif pcm_fields != PCM_DEFAULTS or fields.get("t_inference", 0.0) != 0.0:
    changed = sorted(k for k in pcm_fields if pcm_fields[k] != PCM_DEFAULTS.get(k))
    raise ValueError(f"noise {'pcm.' + changed[0] if changed else 't_inference'} is used only "
                     "with weight_noise='pcm'")
  for name in ("snr_db", "weight_sigma", "t_inference"):
    if name in fields and isinstance(fields[name], (str, bytes)):
      raise TypeError(f"noise {name} must be a number, got the string {fields[name]!r} "
                      "(write inf as float('inf'))")
    if name in fields and _is_python_number(fields[name]):
      fields[name] = float(fields[name])
  if fields.get("snr_db_range") is not None:
    fields["snr_db_range"] = tuple(fields["snr_db_range"])
  noise = NoiseConfig(**fields)
  return None if noise.statically_off and not keep_off else noise


def in_layer_set(layers: str, index: int, count: int) -> bool:
  """Whether product `index` (0-based) of a model with `count` products is in the set `layers`
  ('all', 'all_but_first', 'all_but_last', 'all_but_first_last'): noise and quantizers alike."""
  if not 0 <= index < count:
    raise ValueError(f"layer index {index} is outside 0..{count - 1}")
  _check_choice("layers", layers, LAYER_SETS)
  first, last = index == 0, index == count - 1
  return not {"all": False, "all_but_first": first, "all_but_last": last,
              "all_but_first_last": first or last}[layers]


def noise_for_layer(noise: NoiseConfig | None, index: int, count: int) -> NoiseConfig | None:
  """The noise of product `index` (0-based) of a model with `count` products, per `noise.layers`."""
  if not 0 <= index < count:
    raise ValueError(f"layer index {index} is outside 0..{count - 1}")
  if noise is None:
    return None
  return noise if in_layer_set(noise.layers, index, count) else None


def sample_training_noise(key: jax.Array, noise: NoiseConfig | None) -> NoiseConfig | None:
  """Draws this step's SNR from `noise.snr_db_range` (uniform in dB); unchanged when there is none.

  Call once per training step (e.g. with a key from the step's `noise` stream) and build the model
  with the result, so all layers of one step share one SNR.
  """
  if noise is None or noise.snr_db_range is None:
    return noise
  lo, hi = noise.snr_db_range
  snr = jax.random.uniform(key, (), jnp.float32, lo, hi)
  return noise.replace(snr_db=snr, snr_db_range=None)


def standard_normal(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
  """float32 N(0, 1) draws of `shape`; every noise draw in freqnoise goes through here.

  A pure function of `key` alone: the same numbers on 1 or many devices, resumed or not. The
  algorithm (and its documented tails) lives in `freqnoise.analog.gaussian`.
  """
  return gaussian.standard_normal(key, shape)


def signal_power(y: jax.Array, power: str, stop_gradient: bool = True,
                 valid: jax.Array | None = None) -> jax.Array:
  """Mean square of `y` (under stop_gradient by default), broadcastable against `y` ([..., units]).

  'per_example': over the last axis (units) of each product -> shape [..., 1].
  'per_unit': over every axis but the last (batch, positions) -> shape [1, ..., 1, units]; with a
  row mask `valid` [B] (batch first), only the real rows count (padding rows add nothing).
  """
  _check_choice("power", power, POWERS)
  y2 = jnp.square((jax.lax.stop_gradient(y) if stop_gradient else y).astype(jnp.float32))
  if power == "per_example":
    return jnp.mean(y2, axis=-1, keepdims=True)
  axes = tuple(range(y.ndim - 1))
  if valid is None:
    return jnp.mean(y2, axis=axes, keepdims=True)
  valid = jnp.asarray(valid, jnp.float32)
  if valid.ndim != 1 or valid.shape[0] != y.shape[0]:
    raise ValueError(f"row mask must be [batch] = [{y.shape[0]}], got shape {valid.shape}")
  weights = valid.reshape((-1,) + (1,) * (y.ndim - 1))
  rows = jnp.maximum(jnp.sum(valid), 1.0) * (y2.size // (y.shape[0] * y.shape[-1]))
  return jnp.sum(y2 * weights, axis=axes, keepdims=True) / rows


def output_noise_variance(y: jax.Array, noise: NoiseConfig, groups: int = 1) -> jax.Array:
  """σ² = P / 10^(SNR/10) of every output of `groups` side-by-side products y [..., G·H]:
  P per example over each block's own H units, or per unit over the (real) rows and positions."""
  stop = not noise.power_gradient
  if noise.power == "per_example" and groups > 1:
    blocks = y.reshape(*y.shape[:-1], groups, y.shape[-1] // groups)
    power = jnp.broadcast_to(signal_power(blocks, "per_example", stop), blocks.shape).reshape(y.shape)
  else:
    power = signal_power(y, noise.power, stop, noise.valid)
  return power / jnp.power(10.0, jnp.asarray(noise.snr_db, jnp.float32) / 10.0)


def add_noise(key: jax.Array, y: jax.Array, variance: jax.Array, noise: NoiseConfig) -> jax.Array:
  """y + sqrt(variance)·ε, ε = `standard_normal(key)`; exactly y where `noise.snr_db` is +inf."""
  # sqrt'(0) is infinite: keep the gradient finite for all-zero products (e.g. dead ReLU rows).
  std = jnp.sqrt(jnp.maximum(variance, 1e-30)) if noise.power_gradient else jnp.sqrt(variance)
  noisy = y + (std * standard_normal(key, y.shape)).astype(y.dtype)
  return jnp.where(jnp.isposinf(jnp.asarray(noise.snr_db, jnp.float32)), y, noisy)


def add_output_noise(key: jax.Array, y: jax.Array, snr_db, power: str = "per_example",
                     power_gradient: bool = False, valid: jax.Array | None = None) -> jax.Array:
  """y + n with n ~ N(0, P / 10^(snr_db/10)); exactly y where snr_db = +inf.

  Args:
    key: PRNG key of this draw.
    y: noiseless product, shape [..., units] (units last; conv outputs are NHWC).
    snr_db: scalar SNR in dB (Python number or traced array); +inf = no noise.
    power: 'per_example' or 'per_unit' (see `signal_power`).
    power_gradient: differentiate through the power (default: stop_gradient).
    valid: optional [B] row mask for 'per_unit' power (padding rows excluded).
  """
  _check_number("snr_db", snr_db, allow_inf=True)
  _check_choice("power", power, POWERS)
  if _is_python_number(snr_db) and snr_db == math.inf:
    return y
  noise = NoiseConfig(snr_db=snr_db, power=power, power_gradient=power_gradient, valid=valid)
  return add_noise(key, y, output_noise_variance(y, noise), noise)


def perturb_weights(key: jax.Array, w: jax.Array, weight_noise: str, weight_sigma) -> jax.Array:
  """W̃: 'additive' W + σ_w·max|W|·ε (max|W| under stop_gradient), 'multiplicative' W·(1 + σ_w·ε).

  Exactly `w` for 'none' or σ_w = 0. Gradients flow to `w` (the noise is a constant shift/scale).
  """
  _check_choice("weight_noise", weight_noise, WEIGHT_NOISES)
  _check_number("weight_sigma", weight_sigma, allow_inf=False, nonnegative=True)
  if weight_noise == "none" or (_is_python_number(weight_sigma) and weight_sigma == 0):
    return w
  sigma = jnp.asarray(weight_sigma, jnp.float32)
  eps = standard_normal(key, w.shape)
  if weight_noise == "additive":
    scale = jax.lax.stop_gradient(jnp.max(jnp.abs(w))).astype(jnp.float32)
    noisy = w + (sigma * scale * eps).astype(w.dtype)
  else:
    noisy = w * (1.0 + sigma * eps).astype(w.dtype)
  return jnp.where(sigma == 0, w, noisy)
