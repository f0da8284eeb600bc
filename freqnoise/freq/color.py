"""RGB <-> YCbCr colour conversion as in JPEG/JFIF (ITU-R BT.601, full range, 0..255).

    Y  =  0.299    R + 0.587    G + 0.114    B
    Cb = -0.168736 R - 0.331264 G + 0.5      B + 128
    Cr =  0.5      R - 0.418688 G - 0.081312 B + 128

The inverse uses the exact matrix inverse (not the rounded 1.402 / 1.772 constants of the JFIF
text), so RGB -> YCbCr -> RGB is exact up to float rounding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

# Rows: output Y, Cb, Cr; columns: input R, G, B.
RGB_TO_YCBCR = np.array([
    [0.299, 0.587, 0.114],
    [-0.168736, -0.331264, 0.5],
    [0.5, -0.418688, -0.081312],
], np.float64)
YCBCR_OFFSET = np.array([0.0, 128.0, 128.0], np.float64)
YCBCR_TO_RGB = np.linalg.inv(RGB_TO_YCBCR)


def _check_rgb_last_axis(x: jax.Array, name: str) -> None:
  if x.ndim < 1 or x.shape[-1] != 3:
    raise ValueError(f"{name} must have 3 channels on its last axis, got shape {x.shape}")


def rgb_to_ycbcr(rgb: jax.Array) -> jax.Array:
  """[..., 3] RGB in 0..255 (uint8 or float) -> [..., 3] float32 YCbCr in 0..255 (JFIF)."""
  rgb = jnp.asarray(rgb)
  _check_rgb_last_axis(rgb, "rgb")
  x = rgb.astype(jnp.float32)
  m = jnp.asarray(RGB_TO_YCBCR.T, jnp.float32)
  return jnp.dot(x, m, precision=jax.lax.Precision.HIGHEST) + jnp.asarray(YCBCR_OFFSET, jnp.float32)


def ycbcr_to_rgb(ycbcr: jax.Array) -> jax.Array:
  """[..., 3] float YCbCr (JFIF, 0..255) -> [..., 3] float32 RGB, not clipped or rounded."""
  ycbcr = jnp.asarray(ycbcr)
  _check_rgb_last_axis(ycbcr, "ycbcr")
  x = ycbcr.astype(jnp.float32) - jnp.asarray(YCBCR_OFFSET, jnp.float32)
  return jnp.dot(x, jnp.asarray(YCBCR_TO_RGB.T, jnp.float32), precision=jax.lax.Precision.HIGHEST)
