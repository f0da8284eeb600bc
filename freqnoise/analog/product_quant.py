"""The converters of a model's analog products: DAC, weight quantizer Q_w, ADC and ADC noise
(DESIGN.md, "Analog matrix-vector product"), as one hashable `ProductQuant` that models thread to
their layers the way they thread `noise`, and `quant_from_config` for the `config.quant` block.

Unlike the noise, the quantizers are part of the model: they act in training (quantization-aware
training, straight-through gradients) and in every evaluation alike, so the Experiment builds the
model with them once and evaluation noise never replaces them.

aihwkit (`config.quant.preset = 'aihwkit'`, REFERENCES.md "Quantization"): `InferenceRPUConfig`'s
forward `IOParameters` and `MappingParameter` map onto ours —
  inp_res, inp_bound  -> a fixed signed DAC (`QuantConfig.from_aihwkit`: 1/14 is 4 bits, 15 levels);
                         res <= 0: infinite resolution, still clipped at ±inp_bound
  out_res, out_bound  -> a fixed signed ADC, same convention
  out_noise           -> Gaussian noise before the ADC (normalised units; `adc_noise` holds it in
                         ADC LSBs for readers of a ProductQuant)
  noise_management    -> 'abs_max': each input vector is divided by α = max|x| before the DAC and
                         the output multiplied by α after the ADC; 'none': raw units. aihwkit
                         refuses inp_bound != 1 with it, so do we.
  bound_management, max_bm_factor, max_bm_res, max_input_size, max_output_size, and our
  conv_alpha and zero_vectors -> the `Periphery` of every product (freqnoise.analog.tiles:
  tiles, iterative bound management, per-patch α of convolutions, exact zeros for a zero vector).
Differences: a resolution must be an n-bit converter (res = 1/(2^n − 2)), or <= 0; no input or
weight read noise (PCM: NoiseConfig.weight_noise='pcm'); the backward pass is straight-through
inside the converter ranges and zero outside (aihwkit's is ideal, unclipped).
"""

from __future__ import annotations

import dataclasses
import math
import re

import ml_collections
import numpy as np

from freqnoise.analog.noise import LAYER_SETS, in_layer_set, noise_for_layer
from freqnoise.analog.product import ADC_NOISE_POSITIONS, AdcNoise
from freqnoise.analog.quant import LEARNED, MODES, QuantConfig
from freqnoise.analog.quant_module import Quantizer
from freqnoise.analog.tiles import BOUND_MANAGEMENTS, CONV_ALPHAS, ZERO_VECTORS, Periphery

PRESETS = ("", "aihwkit")
NOISE_MANAGEMENTS = ("abs_max", "none")
# Every field of `config.quant` with its default (configs/common.py takes them from here): off.
DEFAULTS = {
    "preset": "",          # "": the fields below | aihwkit: DAC, ADC and ADC noise from .aihwkit
    "layers": "all",       # products with converters: all | all_but_first | all_but_last | ..._first_last
    "weight_bits": 0,      # Q_w: symmetric weights with 2^b - 1 levels, b in 1..16 (0 = float weights)
    "weight_per_channel": False,  # one weight range per output column (False: per array = kernel)
    "weight_mode": "dynamic",     # dynamic (max|W| at each use) | learned | fixed | tracked
    "weight_bound": 0.0,   # fixed: the range ±bound; learned: its start (0 = LSQ's data init)
    "dac_bits": 0,         # DAC on every product's input, 1..16 bits (0 = off)
    "dac_signed": True,    # bipolar DAC, ±range | False: unsigned [0, range] (inputs >= 0)
    "dac_mode": "fixed",   # fixed | dynamic (the batch's max) | tracked (EMA, 'quant_ranges') | learned
    "dac_bound": 1.0,      # fixed: the range; learned: its start (0 = LSQ's data init; not in cells)
    "adc_bits": 0,         # ADC on every product's output (signed), 1..16 bits (0 = off)
    "adc_mode": "dynamic",  # fixed | dynamic | tracked | learned, as dac_mode
    "adc_bound": 0.0,      # fixed: the range ±bound; learned: its start (0 = LSQ init; not in cells)
    "adc_noise_lsb": 0.0,  # std of Gaussian ADC noise in ADC LSBs (steps); needs adc_bits (0 = off)
    "adc_noise_position": "before",  # before | after the ADC quantizer (after: off the ADC grid)
    "learned": "lsq",      # learned ranges: lsq (a learned step) | pact (a learned clip value)
    "momentum": 0.99,      # tracked ranges: range <- m * range + (1 - m) * batch range
    "stochastic": False,   # stochastic rounding in every converter (keys from the 'noise' stream)
    "bits_schedule": "",   # QAT from more bits down: "8:300,6:600" = 8 bits to step 300, 6 to 600,
                           # then the bits above; "" = off (freqnoise/analog/bits_schedule.py)
}
# `config.quant.aihwkit` (used with preset='aihwkit'): aihwkit's IOParameters and their defaults.
AIHWKIT_DEFAULTS = {
    "inp_res": 1 / (2**7 - 2),  # DAC resolution: 1/(2^n - 2) is n bits (1/14: 4 bits); 0 = off
    "inp_bound": 1.0,      # DAC range ±inp_bound (normalised units)
    "out_res": 1 / (2**9 - 2),  # ADC resolution, same convention (default 9 bits); 0 = off
    "out_bound": 12.0,     # ADC range ±out_bound (normalised units)
    "out_noise": 0.06,     # std of Gaussian output noise before the ADC (normalised units)
    "noise_management": "abs_max",  # abs_max (inputs / max|x| per vector, outputs * it) | none
    "bound_management": "iterative",  # iterative (re-run a clipping vector at input / 2) | none
    "max_bm_factor": 1000,  # bound management stops once the input reduction exceeds this ...
    "max_bm_res": 0.25,    # ... or max_bm_res / the DAC's step
    "max_input_size": 512,  # inputs per tile (larger layers are split into tiles; 0 = one tile)
    "max_output_size": 512,  # outputs per tile (0 = one tile)
    "conv_alpha": "patch",  # patch (aihwkit: a conv's input vector is an unfolded patch) | example
    "zero_vectors": "zeros",  # zeros (aihwkit: an all-zero input vector gives exact zeros) | noisy
}


@dataclasses.dataclass(frozen=True)
class ProductQuant:
  """The converters of every analog product of a layer (hashable: a Flax module attribute).

  Attributes:
    weight: Q_w, applied to the kernel before weight noise (None = float weights).
    dac: the input DAC (recurrent cells: one for x_t and one for h_{t-1}, each with its own state).
    adc: the output ADC.
    adc_noise: Gaussian ADC noise in LSB units of `adc`, before or after it (None = off).
    scale_inputs: aihwkit's 'abs_max' noise management (see the module docstring).
    layers: which products of a model are quantized (as `NoiseConfig.layers`).
    periphery: aihwkit's tile periphery (freqnoise.analog.tiles), None = none.
  """

  weight: QuantConfig | None = None
  dac: QuantConfig | None = None
  adc: QuantConfig | None = None
  adc_noise: AdcNoise | None = None
  scale_inputs: bool = False
  layers: str = "all"
  periphery: Periphery | None = None

  def __post_init__(self):
    for name in ("weight", "dac", "adc"):
      value = getattr(self, name)
      if value is not None and not isinstance(value, QuantConfig):
        raise TypeError(f"ProductQuant.{name} must be a QuantConfig or None, got {value!r}")
    if self.periphery is not None and not isinstance(self.periphery, Periphery):
      raise TypeError(f"ProductQuant.periphery must be a Periphery or None, got {self.periphery!r}")
    if self.periphery is not None:
      for name in ("dac", "adc"):
        c = getattr(self, name)
        if c is not None and (c.mode != "fixed" or c.stochastic):
          raise ValueError(f"ProductQuant.{name} on aihwkit's tiles must be a fixed range with "
                           f"nearest rounding, got {c!r}")
    if self.layers not in LAYER_SETS:
      raise ValueError(f"ProductQuant.layers must be one of {LAYER_SETS}, got {self.layers!r}")
    noise = self.adc_noise
    if noise is not None:
      if not (isinstance(noise.lsb, (int, float)) and math.isfinite(noise.lsb) and noise.lsb >= 0):
        raise ValueError(f"ProductQuant.adc_noise.lsb must be a number >= 0 (a standard deviation "
                         f"in LSBs), got {noise.lsb!r}")
      if noise.position not in ADC_NOISE_POSITIONS:
        raise ValueError(f"ProductQuant.adc_noise.position must be one of {ADC_NOISE_POSITIONS}, "
                         f"got {noise.position!r}")
      if noise.lsb and self.adc is None:
        raise ValueError("ProductQuant.adc_noise is in LSB units of the ADC: it needs an adc")

  def converters(self, *names: str, layout: str = "dense") -> tuple[Quantizer | None, ...]:
    """`Quantizer` submodules of the calling module (inside its compact method) for `names`,
    each 'dac…', 'weight…' or 'adc…' by its prefix; None where that converter is off. Tracked
    ranges update whenever 'quant_ranges' is mutable (the trainer's step), never in evaluation.
    `layout` is the product's ('dense', as the recurrent cells' gates, or 'conv'): the DAC and ADC
    count LSQ's N per input vector of it, the weight quantizer over the whole kernel."""
    built = []
    for name in names:
      kind = name.split("_")[0]
      config = getattr(self, kind)
      built.append(None if config is None else Quantizer(
          config, train=True, layout=None if kind == "weight" else layout, name=name))
    return tuple(built)


def quant_for_layer(quant: ProductQuant | None, index: int, count: int) -> ProductQuant | None:
  """The converters of product `index` (0-based) of a model with `count` products, per
  `quant.layers`."""
  if quant is None:
    return None
  return quant if in_layer_set(quant.layers, index, count) else None


def analog_args(noise, quant: ProductQuant | None, index: int, count: int) -> dict:
  """`noise=` and `quant=` of product `index` of `count` (each per its own `layers`): what a
  model hands each analog layer."""
  return dict(noise=noise_for_layer(noise, index, count), quant=quant_for_layer(quant, index, count))


# ----------------------------------------------------------------------------- config.quant
def quant_from_config(block: ml_collections.ConfigDict | dict | None) -> ProductQuant | None:
  """The `ProductQuant` of a `config.quant` block, None when every converter is off. Errors name
  the field (e.g. "config.quant.adc_bits must be in [1, 16] or 0 (off), got 17")."""
  if block is None:
    return None
  block = dict(block.to_dict() if isinstance(block, ml_collections.ConfigDict) else block)
  aihwkit = dict(block.pop("aihwkit", None) or {})
  _check_known("config.quant", block, DEFAULTS)
  _check_known("config.quant.aihwkit", aihwkit, AIHWKIT_DEFAULTS)
  q = {**DEFAULTS, **block}
  q.pop("bits_schedule")  # a training schedule over this model: Experiment.bits_stages
  a = {**AIHWKIT_DEFAULTS, **aihwkit}
  _choice("preset", q["preset"], PRESETS)
  _choice("layers", q["layers"], LAYER_SETS)
  _choice("adc_noise_position", q["adc_noise_position"], ADC_NOISE_POSITIONS)
  _choice("learned", q["learned"], LEARNED)
  for name in ("weight_per_channel", "dac_signed", "stochastic"):
    if not isinstance(q[name], bool):
      raise ValueError(f"config.quant.{name} must be True or False, got {q[name]!r}")
  if not (_number("momentum", q["momentum"]) < 1):
    raise ValueError(f"config.quant.momentum must be in [0, 1), got {q['momentum']!r}")
  shared = dict(learned=q["learned"], momentum=float(q["momentum"]), stochastic=q["stochastic"])
  weight = _converter(q, "weight", signed=True, per_channel=q["weight_per_channel"], **shared)
  lsb = _number("adc_noise_lsb", q["adc_noise_lsb"])
  if q["preset"] == "aihwkit":
    for name in ("dac_bits", "adc_bits", "adc_noise_lsb"):
      if q[name]:
        raise ValueError(f"config.quant.{name} must be 0 with preset='aihwkit' (the DAC, ADC and "
                         "their noise come from config.quant.aihwkit)")
    dac, adc, lsb, scale, periphery = _aihwkit(a, shared)
  else:
    if a != AIHWKIT_DEFAULTS:
      changed = sorted(k for k in a if a[k] != AIHWKIT_DEFAULTS[k])
      raise ValueError(f"config.quant.aihwkit.{changed[0]} is used only with "
                       "config.quant.preset='aihwkit'")
    dac = _converter(q, "dac", signed=q["dac_signed"], **shared)
    adc = _converter(q, "adc", signed=True, **shared)
    scale, periphery = False, None
    if lsb and adc is None:
      raise ValueError("config.quant.adc_noise_lsb is in LSB units of the ADC: set "
                       "config.quant.adc_bits (or preset='aihwkit')")
  if weight is None and dac is None and adc is None and periphery is None:
    return None
  noise = AdcNoise(lsb, q["adc_noise_position"]) if lsb else None
  return ProductQuant(weight=weight, dac=dac, adc=adc, adc_noise=noise, scale_inputs=scale,
                      layers=q["layers"], periphery=periphery)


def _aihwkit(a: dict, shared: dict):
  """(dac, adc, ADC noise in LSB, scale_inputs, Periphery) of the config.quant.aihwkit group."""
  _choice("aihwkit.noise_management", a["noise_management"], NOISE_MANAGEMENTS)
  _choice("aihwkit.bound_management", a["bound_management"], BOUND_MANAGEMENTS)
  _choice("aihwkit.conv_alpha", a["conv_alpha"], CONV_ALPHAS)
  _choice("aihwkit.zero_vectors", a["zero_vectors"], ZERO_VECTORS)
  if shared["stochastic"]:
    raise ValueError("config.quant.stochastic is not supported with preset='aihwkit' (aihwkit's "
                     "rounding is to nearest by default)")
  converters, steps = [], []
  for res, bound in (("inp_res", "inp_bound"), ("out_res", "out_bound")):
    r = _number(f"aihwkit.{res}", a[res], negative=True)
    b = _number(f"aihwkit.{bound}", a[bound])
    if b <= 0:
      raise ValueError(f"config.quant.aihwkit.{bound} must be > 0, got {b!r}")
    if r <= 0:  # aihwkit: infinite resolution, still clipped at ±bound
      converters.append(None)
      steps.append(0.0)
      continue
    try:
      converters.append(QuantConfig.from_aihwkit(r, b, **shared))
    except ValueError as e:
      raise ValueError(f"config.quant.aihwkit.{res}: {e}") from None
    # aihwkit's step in its float32 arithmetic: (res > 1 ? 1/res : res) · 2·bound
    f32 = np.float32
    steps.append(float(f32(f32(1) / f32(r) if r > 1 else f32(r)) * f32(2 * b)))
  dac, adc = converters
  nm = a["noise_management"] == "abs_max"
  if nm and a["inp_bound"] != 1:
    raise ValueError(f"config.quant.aihwkit.inp_bound must be 1 with noise_management='abs_max' "
                     f"(aihwkit refuses others: 'Forward noise managment expects bound==1'), got "
                     f"{a['inp_bound']!r}")
  noise = _number("aihwkit.out_noise", a["out_noise"])
  lsb = noise / (adc.bound / adc.qmax) if noise and adc is not None else 0.0  # Δ = res·2·bound
  factor = a["max_bm_factor"]
  if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
    raise ValueError(f"config.quant.aihwkit.max_bm_factor must be an int >= 1, got {factor!r}")
  for name in ("max_input_size", "max_output_size"):
    if isinstance(a[name], bool) or not isinstance(a[name], int) or a[name] < 0:
      raise ValueError(f"config.quant.aihwkit.{name} must be an int >= 0 (0 = one tile), got "
                       f"{a[name]!r}")
  periphery = Periphery(
      inp_bound=float(a["inp_bound"]), out_bound=float(a["out_bound"]), out_noise=noise,
      inp_step=steps[0], out_step=steps[1], bound_management=a["bound_management"],
      max_bm_factor=factor, max_bm_res=_number("aihwkit.max_bm_res", a["max_bm_res"]),
      max_input_size=a["max_input_size"], max_output_size=a["max_output_size"],
      conv_alpha=a["conv_alpha"], zero_vectors=a["zero_vectors"])
  return dac, adc, lsb, nm, periphery


def _converter(q: dict, prefix: str, **kwargs) -> QuantConfig | None:
  bits = q[f"{prefix}_bits"]
  if isinstance(bits, bool) or not isinstance(bits, int) or not 0 <= bits <= 16:
    raise ValueError(f"config.quant.{prefix}_bits must be in [1, 16] or 0 (off), got {bits!r}")
  _choice(f"{prefix}_mode", q[f"{prefix}_mode"], MODES)
  bound = _number(f"{prefix}_bound", q[f"{prefix}_bound"])
  if not bits:
    return None
  mode = q[f"{prefix}_mode"]
  if mode == "fixed" and not bound:
    raise ValueError(f"config.quant.{prefix}_bound must be > 0 with {prefix}_mode='fixed' "
                     f"(the range ±bound), got {bound!r}")
  if mode in ("dynamic", "tracked") and bound == DEFAULTS[f"{prefix}_bound"]:
    bound = 0.0  # the default bound belongs to the default mode: switching mode alone is enough
  try:
    return QuantConfig(bits=bits, mode=mode, bound=bound or None, **kwargs)
  except ValueError as e:  # name the config field, not the QuantConfig attribute
    fields = {"bound": f"{prefix}_bound", "mode": f"{prefix}_mode", "signed": f"{prefix}_signed",
              "per_channel": f"{prefix}_per_channel"}
    raise ValueError(re.sub(r"QuantConfig\.(\w+)",
                            lambda m: "config.quant." + fields.get(m[1], m[1]), str(e)) + (
                                " (0 = unset)" if "bound" in str(e) else "")) from None


def _check_known(where: str, block: dict, known: dict) -> None:
  unknown = sorted(set(block) - set(known))
  if unknown:
    raise ValueError(f"{where} has unknown field(s) {unknown}; known: {sorted(known)}")


def _choice(name: str, value, choices) -> None:
  if value not in choices:
    raise ValueError(f"config.quant.{name} must be one of {choices}, got {value!r}")


def _number(name: str, value, negative: bool = False) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
    raise ValueError(f"config.quant.{name} must be a finite number, got {value!r}")
  if value < 0 and not negative:
    what = " (a standard deviation in ADC LSBs)" if name == "adc_noise_lsb" else ""
    raise ValueError(f"config.quant.{name} must be >= 0{what}, got {value!r}")
  return float(value)
