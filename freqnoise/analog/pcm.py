"""PCM inference noise: aihwkit's `PCMLikeNoiseModel` with `GlobalDriftCompensation` (REFERENCES.md,
"aihwkit PCM noise model"; Nandakumar et al., ICECS 2019; aihwkit 1.1.0 `inference/noise/pcm.py`,
`inference/converter/conductance.py`, `inference/compensation/drift.py`).

One realisation per Monte Carlo draw — "programming noise" in freqnoise's terms (a chip per draw,
fixed over batches): `NoiseConfig(weight_noise='pcm', t_inference=t)`, t a traced value so one
compiled call sweeps times × draws. For a tile's weights W (conductances in µS):

1. program: g± = clip(±W·s, 0, g_max), s = g_max / max(max|W|, 1e-7) (single pair);
   g_prog = max(0, g + σ_prog(g)·ε), σ_prog = (c0 + c1·g/g_max + c2·(g/g_max)²)·g_max/25 µS, on
   both devices of the pair; per device a drift coefficient ν = |μ_ν + σ_ν·ε| (μ_ν, σ_ν from
   g/g_max); W_prog = (g+_prog − g−_prog) / s.
2. drift to t = t_inference + t0 (aihwkit re-reads W_prog as a pair first: s' from max|W_prog|):
   g_drift = g·(t/t0)^(−ν) when t > t0; 1/f read noise g_final = max(0, g_drift + |g_drift|·σ·ε),
   σ = min(0.0088 / max((g/g_max)^0.65, 1e-3), 0.2)·sqrt(ln((t + t_read) / (2·t_read)));
   W_t = (g+_final − g−_final) / s'.
3. global drift compensation: the tile's output is scaled by a0 / a_t, a = max(mean|R|, 1e-4) of
   the tile read with one-hot inputs (its full periphery, output noise included) after
   programming (a0, W_prog) and at t (a_t, W_t).
Gradients pass straight through the noise (W̃ = W + stop_gradient(W_t − W)); the compensation
factor is a constant.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import jax
import jax.numpy as jnp

from freqnoise.analog.gaussian import standard_normal  # (noise.py's draws; it imports this module)

_ZERO_CLIP = 1e-7
# Every field of `config.eval_noise.pcm` (with weight_noise='pcm') and its default: aihwkit's.
DEFAULTS = {
    "g_max": 25.0,             # µS: max|W| of a tile maps to g_max (single device pair)
    "prog_noise_scale": 1.0,   # multiplies σ_prog
    "read_noise_scale": 1.0,   # multiplies the accumulated 1/f read noise
    "drift_scale": 1.0,        # multiplies the drift coefficients ν
    "t0": 20.0,                # s: first read after programming; t_inference counts from it
    "t_read": 250e-9,          # s: the 1/f fit's read time
    "drift_compensation": True,  # GlobalDriftCompensation (False: none)
}
PROG_COEFF = (0.26348, 1.9650, -1.1731)  # µS at g_max = 25 µS (aihwkit's fit)
PROG_COEFF_G_MAX = 25.0


@dataclasses.dataclass(frozen=True)
class PcmConfig:
  """aihwkit's `PCMLikeNoiseModel` (default fit) and whether `GlobalDriftCompensation` is on
  (hashable: a static field of `NoiseConfig`). Fields and units: `DEFAULTS`."""

  g_max: float = 25.0
  prog_noise_scale: float = 1.0
  read_noise_scale: float = 1.0
  drift_scale: float = 1.0
  t0: float = 20.0
  t_read: float = 250e-9
  drift_compensation: bool = True

  def __post_init__(self):
    for name in ("g_max", "t0", "t_read"):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
        raise ValueError(f"noise pcm.{name} must be a finite number > 0, got {v!r}")
    for name in ("prog_noise_scale", "read_noise_scale", "drift_scale"):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, (int, float)) or not (
          math.isfinite(v) and v >= 0):
        raise ValueError(f"noise pcm.{name} must be a finite number >= 0, got {v!r}")
    if not isinstance(self.drift_compensation, bool):
      raise ValueError(f"noise pcm.drift_compensation must be True or False, got "
                       f"{self.drift_compensation!r}")


def pcm_from_config(block) -> PcmConfig:
  """The `PcmConfig` of a `config.*_noise.pcm` block (dict or ConfigDict; missing fields default),
  with an error naming each unknown field."""
  if isinstance(block, PcmConfig):
    return block
  fields = dict(block.to_dict() if hasattr(block, "to_dict") else (block or {}))
  unknown = sorted(set(fields) - set(DEFAULTS))
  if unknown:
    raise ValueError(f"noise pcm has unknown field(s) {unknown}; known: {sorted(DEFAULTS)}")
  return PcmConfig(**{k: float(v) if isinstance(v, int) and not isinstance(v, bool) else v
                      for k, v in fields.items()})


def _pair(w: jax.Array, g_max: float) -> tuple[jax.Array, jax.Array]:
  """([2, ...] conductances g+ and g− in µS, the scale s): the single-pair converter."""
  scale = g_max / jnp.maximum(jnp.max(jnp.abs(w)), _ZERO_CLIP)
  scaled = w * scale
  return jnp.stack([jnp.clip(scaled, 0.0, g_max), jnp.clip(-scaled, 0.0, g_max)]), scale


def program(key: jax.Array, w: jax.Array, cfg: PcmConfig) -> tuple[jax.Array, jax.Array]:
  """(W_prog, ν [2, ...]): programming noise on both devices of every pair and their drift
  coefficients."""
  k_prog, k_nu = jax.random.split(key)
  g, scale = _pair(w, cfg.g_max)
  rel = g / cfg.g_max
  sigma = (PROG_COEFF[0] + rel * PROG_COEFF[1] + rel * rel * PROG_COEFF[2]) * (
      cfg.g_max / PROG_COEFF_G_MAX)
  g_prog = jnp.maximum(g + cfg.prog_noise_scale * sigma * standard_normal(k_prog, g.shape), 0.0)
  log_rel = jnp.log(jnp.maximum(jnp.abs(rel), _ZERO_CLIP))
  mu = jnp.clip(-0.0155 * log_rel + 0.0244, 0.049, 0.1)
  sig = jnp.clip(-0.0125 * log_rel - 0.0059, 0.008, 0.045)
  nu = jnp.abs(mu + sig * standard_normal(k_nu, g.shape)) * cfg.drift_scale
  return (g_prog[0] - g_prog[1]) / scale, nu


def drift(key: jax.Array, w_prog: jax.Array, nu: jax.Array, t_inference, cfg: PcmConfig
          ) -> jax.Array:
  """W_t: the programmed weights drifted to `t_inference` seconds (traced or not) with 1/f noise."""
  g, scale = _pair(w_prog, cfg.g_max)
  t = jnp.asarray(t_inference, jnp.float32) + cfg.t0
  g_drift = jnp.where(t > cfg.t0, g * jnp.power(t / cfg.t0, -nu), g)
  q_s = jnp.minimum(0.0088 / jnp.maximum(jnp.power(jnp.abs(g) / cfg.g_max, 0.65), 1e-3), 0.2)
  sigma = q_s * jnp.sqrt(jnp.log((t + cfg.t_read) / (2 * cfg.t_read)))
  eps = standard_normal(key, g.shape)
  g_final = g_drift + jnp.abs(g_drift) * cfg.read_noise_scale * sigma * eps
  g_final = jnp.maximum(g_final, 0.0)  # (aihwkit adds the read noise when t > 0: t0 > 0 always)
  return (g_final[0] - g_final[1]) / scale


def pcm_weights(key: jax.Array, w: jax.Array, t_inference, cfg: PcmConfig,
                readout: Callable[[jax.Array, jax.Array], jax.Array]
                ) -> tuple[jax.Array, jax.Array]:
  """(W̃, gain) of one tile: W̃ = W_t (straight-through gradient), gain = a0 / a_t with
  `readout(weights, key)` the tile read with one-hot inputs (1 without compensation)."""
  k_program, k_drift, k_read0, k_read_t = jax.random.split(key, 4)
  w_prog, nu = program(k_program, jax.lax.stop_gradient(w), cfg)
  w_t = drift(k_drift, w_prog, nu, t_inference, cfg)
  noisy = w + jax.lax.stop_gradient(w_t - w)
  if not cfg.drift_compensation:
    return noisy, jnp.ones((), w.dtype)

  def level(weights, k):
    return jnp.maximum(jnp.mean(jnp.abs(readout(weights, k))), 1e-4)

  return noisy, jax.lax.stop_gradient(level(w_prog, k_read0) / level(w_t, k_read_t))
