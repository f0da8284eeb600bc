"""Horizontal flip in the block-DCT domain: the coefficients of the mirrored image, without pixels.

Mirroring an image left-right reverses its 8x8 blocks' order along each block row and mirrors every
block. The 1-D DCT-II basis `cos(pi (2x + 1) u / 16)` at the mirrored position `7 - x` is
`cos(pi u - pi (2x + 1) u / 16) = (-1)^u cos(pi (2x + 1) u / 16)`, so a mirrored block has the same
coefficients with those of odd horizontal frequency `u` negated. With the channel layout of
`freqnoise.freq.dct` (`64 * plane + 8v + u`) the flip is: reverse the block columns, multiply
channel `c` by `(-1)^(c mod 8)`. It is exact for 4:4:4 coefficients, and for 4:2:0 ones repeated 2x2
onto an even luma grid (each 16x16-pixel chroma block's 2x2 copies stay together).
"""

from __future__ import annotations

import numpy as np

from freqnoise.freq.dct import BLOCK, NUM_CHANNELS

# +1 for even horizontal frequency u (= channel mod 8), -1 for odd.
FLIP_SIGNS = np.where(np.arange(NUM_CHANNELS) % BLOCK % 2, -1.0, 1.0).astype(np.float32)


def flip_coefficients(coeffs):
  """`[..., h, w, 192]` block-DCT coefficients (numpy or jax) -> those of the left-right mirrored
  image: block columns reversed, odd horizontal frequencies negated (see the module docstring)."""
  if coeffs.ndim < 3 or coeffs.shape[-1] != NUM_CHANNELS:
    raise ValueError(f"coefficients must be [..., h, w, {NUM_CHANNELS}], got shape {coeffs.shape}")
  return coeffs[..., ::-1, :] * FLIP_SIGNS.astype(coeffs.dtype)
