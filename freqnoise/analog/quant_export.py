"""Integer export of symmetric fake-quantized weights, and inference from the integer codes.

`export_weights(w, config)` gives codes (int8 up to 8 bits, else int16) and per-tensor or
per-channel scales with `dequantize(codes, scales)` bitwise equal to `fake_quant(w, config)`:
both compute code · scale with the same code and the same float32 scale, so any product with the
dequantized weights equals the fake-quant one exactly. `int_matmul` instead scales after the
integer-valued product (as integer hardware does): equal up to float rounding, and exactly when
the scales are powers of two (scaling by 2^e commutes with every rounding of the sum).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from freqnoise.analog.quant import Grid, QuantConfig, fake_quant, stateless_grid, to_channels


def code_dtype(bits: int) -> jnp.dtype:
  """int8 for up to 8 bits, int16 up to 16 (symmetric codes need at most 2^(b−1) − 1)."""
  return jnp.dtype(jnp.int8 if bits <= 8 else jnp.int16)


def export_weights(w: jax.Array, config: QuantConfig, grid: Grid | None = None
                   ) -> tuple[jax.Array, jax.Array]:
  """(codes, scales) of `fake_quant(w, config, grid)` = codes · scales.

  Args:
    w: float weights, e.g. a Dense kernel [in, out] (per_channel=True: one scale per `out`).
    config: a signed (symmetric), round-to-nearest config.
    grid: the grid of a 'tracked' or 'learned' quantizer (`quant_module.stored_grid`); default:
      the config's own 'fixed' or 'dynamic' grid.
  Returns:
    codes: w's shape, `code_dtype(config.bits)`, in [−qmax, qmax].
    scales: w's dtype, () per tensor, else w.ndim axes with the channels on the channel axis.
  """
  if not config.signed:
    raise ValueError("export_weights exports symmetric weights: QuantConfig.signed must be True")
  if config.stochastic:
    raise ValueError("export_weights rounds to nearest: QuantConfig.stochastic must be False")
  grid = stateless_grid(w, config) if grid is None else grid
  scales = to_channels(grid.step, config, w.ndim).astype(w.dtype)
  # Divide by the scale on the grid fake_quant uses: the codes are the fake-quant's own levels.
  codes = jnp.round(fake_quant(w, config, grid) / scales)
  return codes.astype(code_dtype(config.bits)), scales


def dequantize(codes: jax.Array, scales: jax.Array) -> jax.Array:
  """codes · scales in the scales' dtype: bitwise the fake-quantized weights."""
  return codes.astype(scales.dtype) * scales


def int_matmul(x: jax.Array, codes: jax.Array, scales: jax.Array) -> jax.Array:
  """(x @ codes) · scales for a [in, out] kernel with per-tensor or per-`out` scales: x @
  dequantize(codes, scales) up to float rounding (exact for power-of-two scales)."""
  if codes.ndim != 2 or scales.ndim not in (0, 2) or (scales.ndim == 2 and scales.shape[0] != 1):
    raise ValueError(f"int_matmul needs [in, out] codes and scales of shape () or [1, out]; got "
                     f"{codes.shape} and {scales.shape}")
  return jnp.dot(x, codes.astype(x.dtype)) * scales
