"""`QuantConfig`: what one uniform quantizer is (bits, signed, per channel, range mode, bound,
rounding), validated on construction and hashable (a Flax module attribute or a static argument).
The conventions and the numerics are in `freqnoise.analog.quant` (DESIGN.md, "Quantizers").
"""

from __future__ import annotations

import dataclasses
import math

MODES = ("fixed", "dynamic", "tracked", "learned")
LEARNED = ("lsq", "pact")
COLLECTION = "quant_ranges"  # tracked ranges: not 'params', so no optimizer ever sees them


@dataclasses.dataclass(frozen=True)
class QuantConfig:
  """A uniform quantizer (hashable: usable as a Flax module attribute or a static argument).

  Attributes:
    bits: 1 … 16.
    signed: True: symmetric codes around 0 (weights, bipolar DAC/ADC); False: unsigned codes
      0 … 2^b − 1 with a zero point (activations).
    per_channel: None/False: one range per tensor; True: one per index of the last axis; an int:
      of that axis (the output-channel axis). Not with mode 'fixed' (one given range).
    mode: 'fixed', 'dynamic', 'tracked' or 'learned' (see the module docstring).
    bound: 'fixed': the range — B (±B if signed, [0, B] if not) or, unsigned only, (lo, hi) with
      lo ≤ 0 < hi. 'learned': the initial ±B / [0, B] (required for PACT; LSQ without it starts at
      Δ = 2·mean|x|/sqrt(qmax), the paper's init). Not used by 'dynamic' or 'tracked'.
    momentum: 'tracked': range ← momentum·range + (1 − momentum)·batch range; in [0, 1).
    learned: 'learned': 'lsq' (a learned step Δ) or 'pact' (a learned clip value α, Δ = α/qmax).
    stochastic: stochastic rounding (needs a key; the module takes it from the 'noise' stream).
    step_bits: 'learned' LSQ: the stored step is that of a `step_bits` quantizer of the same
      range (a bits schedule trains at other bits on the final model's parameters); None = bits.
  """

  bits: int = 8
  signed: bool = True
  per_channel: bool | int | None = None
  mode: str = "fixed"
  bound: float | tuple[float, float] | None = None
  momentum: float = 0.99
  learned: str = "lsq"
  stochastic: bool = False
  step_bits: int | None = None

  def __post_init__(self):
    for name in ("bits", "step_bits"):
      b = getattr(self, name)
      if (b is not None or name == "bits") and (
          not isinstance(b, int) or isinstance(b, bool) or not 1 <= b <= 16):
        raise ValueError(f"QuantConfig.{name} must be an int in [1, 16], got {b!r}")
    for name in ("signed", "stochastic"):
      if not isinstance(getattr(self, name), bool):
        raise ValueError(f"QuantConfig.{name} must be True or False, got {getattr(self, name)!r}")
    axis = self.per_channel
    if isinstance(axis, bool):
      axis = -1 if axis else None
    if axis is not None and not isinstance(axis, int):
      raise ValueError(f"QuantConfig.per_channel must be None, a bool or an axis, got {axis!r}")
    object.__setattr__(self, "per_channel", axis)
    if self.mode not in MODES:
      raise ValueError(f"QuantConfig.mode must be one of {MODES}, got {self.mode!r}")
    if self.learned not in LEARNED:
      raise ValueError(f"QuantConfig.learned must be one of {LEARNED}, got {self.learned!r}")
    if not (isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1):
      raise ValueError(f"QuantConfig.momentum must be in [0, 1), got {self.momentum!r}")
    self._check_bound()

  def _check_bound(self):
    bound = self.bound
    if self.mode in ("dynamic", "tracked"):
      if bound is not None:
        raise ValueError(f"QuantConfig.bound is not used by mode {self.mode!r} (its range comes "
                         f"from the data); got {bound!r}")
      return
    if bound is None:
      if self.mode == "fixed" or self.learned == "pact":
        what = "mode='fixed'" if self.mode == "fixed" else "learned='pact' (the initial α)"
        raise ValueError(f"QuantConfig.bound is required for {what}")
      return
    if self.mode == "fixed" and self.per_channel is not None:
      raise ValueError("QuantConfig.per_channel needs a range per channel: mode 'dynamic', "
                       "'tracked' or 'learned', not 'fixed'")
    if isinstance(bound, (tuple, list)):
      if self.signed or self.mode != "fixed" or len(bound) != 2:
        raise ValueError("QuantConfig.bound (lo, hi) is only for unsigned fixed ranges; a signed "
                         f"or learned range is one number B, got {bound!r}")
      lo, hi = (_finite("bound", v) for v in bound)
      if not lo <= 0 < hi:
        raise ValueError(f"QuantConfig.bound (lo, hi) must have lo <= 0 < hi, got {bound!r}")
      object.__setattr__(self, "bound", (lo, hi))
    elif _finite("bound", bound) <= 0:
      raise ValueError(f"QuantConfig.bound must be > 0, got {bound!r}")
    else:
      object.__setattr__(self, "bound", float(bound))

  @property
  def qmin(self) -> int:
    return -self.qmax if self.signed else 0

  @property
  def qmax(self) -> int:
    """Largest code: 2^(b−1) − 1 signed (1 for binary), 2^b − 1 unsigned."""
    return _qmax(self.bits, self.signed)

  @property
  def step_scale(self) -> float:
    """Stored LSQ step -> this quantizer's step: qmax at `step_bits` / qmax (1 without)."""
    return _qmax(self.step_bits or self.bits, self.signed) / self.qmax

  @property
  def levels(self) -> int:
    """Number of distinct outputs: 2^b − 1 signed (2 for binary), 2^b unsigned."""
    return 2 if self.signed and self.bits == 1 else self.qmax - self.qmin + 1

  @classmethod
  def from_aihwkit(cls, res: float, bound: float, **kwargs) -> QuantConfig:
    """aihwkit's `inp_res`/`out_res` and bound as a fixed signed config: res < 1 is a step of
    res·2·bound, res > 1 a number of steps; 2^b − 2 steps is b bits (res = 1/14: 4 bits, 15
    levels). Other resolutions (not an n-bit converter) -> ValueError."""
    steps = res if res > 1 or res <= 0 else 1 / res
    bits = math.log2(max(steps, 0) + 2)
    if not (res > 0 and abs(bits - round(bits)) < 1e-9 and 2 <= round(bits) <= 16):
      raise ValueError(f"aihwkit res={res!r} is {steps:g} steps; a QuantConfig has 2^b − 2 steps "
                       "(res = 1/(2^b − 2), b in [2, 16])")
    return cls(bits=round(bits), signed=True, mode="fixed", bound=bound, **kwargs)


def _qmax(bits: int, signed: bool) -> int:
  return max(2**(bits - 1) - 1, 1) if signed else 2**bits - 1


def _finite(name: str, v) -> float:
  if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
    raise ValueError(f"QuantConfig.{name} must be a finite number, got {v!r}")
  return float(v)
