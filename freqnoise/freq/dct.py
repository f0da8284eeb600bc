"""Block DCT of RGB images as in JPEG: YCbCr, orthonormal 8x8 DCT-II, channels packed on the last axis.

Forward (`block_dct`): uint8/float RGB `[B, H, W, 3]` in 0..255 -> float32 `[B, H/8, W/8, 192]`.
Each 8x8 block of `(plane - 128)` gets the orthonormal 2-D DCT-II (what libjpeg computes at quality 100
before quantisation and rounding). Output channel `64 * plane + 8 * v + u` for planes Y, Cb, Cr, with `v`
the vertical and `u` the horizontal frequency (raster order, as libjpeg and DCTNet store it);
`zigzag_order` gives the JPEG zigzag permutation. Coefficient units: DC = 8 x block mean (0..255 scale).

Chroma:
  * `'444'`: chroma at full resolution, one chroma block per luma block. Exact inverse. DCTNet's
    "upscaled" pipeline (image upscaled 2x before JPEG 4:2:0 encoding for Cb/Cr) approximates this.
  * `'420'`: JPEG-style 4:2:0: each chroma plane is averaged over 2x2 pixels, its 8x8 blocks (16x16
    pixels) are transformed, and every chroma coefficient map is repeated 2x2 to sit on the luma grid.
    H and W must be multiples of 16. The inverse reads one of each 2x2 group of repeated chroma blocks
    and repeats the chroma pixels 2x2, so the round trip loses the chroma detail that 4:2:0 drops.

The 4:4:4 forward map is linear in the centred pixels `rgb - 128` (grey 128 maps to YCbCr 128
exactly; centring also avoids float32 cancellation in the DC terms). It runs as two small matrix
products on the block layout: `kron(D, M_ycbcr)` over each block row's (column, colour) pairs, then `D`
over the rows -- 6x fewer FLOPs than one dense `[192, 192]` product, and faster on CPU.
Computation is float32 for uint8/float32 input and float64 for float64 input when x64 is enabled.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from freqnoise.freq import color

BLOCK = 8
COEFFS_PER_PLANE = BLOCK * BLOCK
NUM_CHANNELS = 3 * COEFFS_PER_PLANE  # 192
PLANES = ("Y", "Cb", "Cr")
CHROMA_MODES = ("444", "420")
_HIGHEST = jax.lax.Precision.HIGHEST


def dct_matrix(n: int = BLOCK) -> np.ndarray:
  """Orthonormal DCT-II matrix `D[k, x]`, so `D @ signal` equals `scipy.fft.dct(signal, norm='ortho')`."""
  k = np.arange(n)[:, None]
  x = np.arange(n)[None, :]
  d = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
  d[0] /= np.sqrt(2.0)
  return d


def block_basis() -> np.ndarray:
  """`K[8v + u, 8r + s] = D[v, r] D[u, s]`: the 2-D DCT of a raster-flattened 8x8 block is `K @ block`."""
  d = dct_matrix(BLOCK)
  return np.kron(d, d)


def zigzag_order() -> np.ndarray:
  """Raster indices `8v + u` of an 8x8 block in JPEG zigzag order (0, 1, 8, 16, 9, 2, ...)."""
  cells = [(v, u) for v in range(BLOCK) for u in range(BLOCK)]
  # Along anti-diagonal s = v + u, odd s runs top-right to bottom-left (v increasing), even s the reverse.
  cells.sort(key=lambda c: (c[0] + c[1], c[0] if (c[0] + c[1]) % 2 else -c[0]))
  return np.array([BLOCK * v + u for v, u in cells], np.int32)


def zigzag_permutation() -> np.ndarray:
  """Permutation of the 192 channels putting each plane's coefficients in zigzag order (Y, Cb, Cr)."""
  z = zigzag_order()
  return np.concatenate([z + COEFFS_PER_PLANE * p for p in range(3)])


def _forward_444_matrix() -> np.ndarray:
  """`A` with coefficients = (rgb_block_flat - 128) @ A, rgb flattened as `64 * colour + 8r + s`.

  Used (inverted) by `block_idct`; the forward pass uses the equivalent separable form.
  """
  return np.kron(color.RGB_TO_YCBCR, block_basis()).T


_A444 = _forward_444_matrix()
_A444_INV = np.linalg.inv(_A444)
_K = block_basis()


def _compute_dtype(dtype) -> jnp.dtype:
  """float32 unless the input is a wider float (float64 under x64)."""
  return jnp.result_type(jnp.float32, dtype) if jnp.issubdtype(dtype, jnp.floating) else jnp.float32


def _check_images(images, pad: bool, multiple: int) -> jax.Array:
  """Validates dtype/rank/channels; pads bottom/right by edge replication when `pad` is set."""
  if not hasattr(images, "dtype") or not hasattr(images, "shape"):
    raise TypeError(f"images must be a numpy or jax array, got {type(images).__name__}")
  dtype = np.dtype(images.dtype)
  if dtype != np.uint8 and not jnp.issubdtype(dtype, jnp.floating):
    raise TypeError(f"images must be uint8 or floating point (0..255), got dtype {dtype}")
  if images.ndim != 4:
    raise ValueError(f"images must be [batch, height, width, 3], got shape {images.shape}")
  if images.shape[-1] != 3:
    raise ValueError(f"images must be RGB with 3 channels, got shape {images.shape}")
  h, w = images.shape[1:3]
  if h % multiple or w % multiple:
    if not pad:
      raise ValueError(f"image height and width must be multiples of {multiple} for this chroma mode, "
                       f"got {h}x{w}; pass pad=True to replicate the border")
    images = jnp.pad(jnp.asarray(images), ((0, 0), (0, -h % multiple), (0, -w % multiple), (0, 0)),
                     mode="edge")
  return jnp.asarray(images)


def _to_blocks(x: jax.Array) -> jax.Array:
  """[B, H, W, C] -> [B, H/8, W/8, C * 64], block pixels flattened as `64 * c + 8r + s`."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // BLOCK, BLOCK, w // BLOCK, BLOCK, c).transpose(0, 1, 3, 5, 2, 4)
  return x.reshape(b, h // BLOCK, w // BLOCK, c * COEFFS_PER_PLANE)


def _from_blocks(x: jax.Array) -> jax.Array:
  """Inverse of `_to_blocks`: [B, h, w, C * 64] -> [B, 8h, 8w, C]."""
  b, hb, wb, n = x.shape
  c = n // COEFFS_PER_PLANE
  x = x.reshape(b, hb, wb, c, BLOCK, BLOCK).transpose(0, 1, 4, 2, 5, 3)
  return x.reshape(b, hb * BLOCK, wb * BLOCK, c)


def _plane_dct(planes: jax.Array) -> jax.Array:
  """[B, H, W, P] level-shifted planes -> [B, H/8, W/8, 64 P] per-plane block DCT."""
  blocks = _to_blocks(planes)
  p = planes.shape[-1]
  kt = jnp.asarray(np.kron(np.eye(p), _K).T, planes.dtype)
  return jnp.dot(blocks, kt, precision=_HIGHEST)


def _plane_idct(coeffs: jax.Array) -> jax.Array:
  """[B, h, w, 64 P] -> [B, 8h, 8w, P] per-plane inverse block DCT (K is orthogonal: inverse = K^T)."""
  p = coeffs.shape[-1] // COEFFS_PER_PLANE
  k = jnp.asarray(np.kron(np.eye(p), _K), coeffs.dtype)
  return _from_blocks(jnp.dot(coeffs, k, precision=_HIGHEST))


def _separable_444(x: jax.Array) -> jax.Array:
  """Centred RGB [B, H, W, 3] -> [B, H/8, W/8, 192] via colour+column DCT, then row DCT."""
  b, h, w, _ = x.shape
  rows = x.reshape(b, h // BLOCK, BLOCK, w // BLOCK, BLOCK, 3).transpose(0, 1, 3, 2, 4, 5)
  rows = rows.reshape(b, h // BLOCK, w // BLOCK, BLOCK, 3 * BLOCK)  # [.., r, (s, colour)]
  d = dct_matrix(BLOCK)
  col_colour = jnp.asarray(np.kron(d, color.RGB_TO_YCBCR).T, x.dtype)  # (s, colour) -> (u, plane)
  z = jnp.dot(rows, col_colour, precision=_HIGHEST).reshape(b, h // BLOCK, w // BLOCK, BLOCK, BLOCK, 3)
  out = jnp.einsum("vr,bijrup->bijpvu", jnp.asarray(d, x.dtype), z, precision=_HIGHEST)
  return out.reshape(b, h // BLOCK, w // BLOCK, NUM_CHANNELS)


def _check_chroma(chroma: str) -> None:
  if chroma not in CHROMA_MODES:
    raise ValueError(f"chroma must be one of {CHROMA_MODES}, got {chroma!r}")


def block_dct(images, *, chroma: str = "444", pad: bool = False) -> jax.Array:
  """RGB images -> JPEG block-DCT coefficients.

  Args:
    images: `[B, H, W, 3]` uint8 or float RGB in 0..255. H, W multiples of 8 (16 for `'420'`).
    chroma: `'444'` (full-resolution chroma) or `'420'` (2x2-averaged chroma, see module docstring).
    pad: replicate the bottom/right border up to the next multiple instead of raising.
  Returns:
    float32 `[B, ceil(H/8), ceil(W/8), 192]`, channel `64 * plane + 8v + u` (planes Y, Cb, Cr).
  """
  _check_chroma(chroma)
  x = _check_images(images, pad, BLOCK if chroma == "444" else 2 * BLOCK)
  x = x.astype(_compute_dtype(x.dtype)) - 128.0
  if chroma == "444":
    return _separable_444(x)
  # rgb - 128 -> ycbcr - 128 is linear (no offset), see module docstring.
  ycc = jnp.dot(x, jnp.asarray(color.RGB_TO_YCBCR.T, x.dtype), precision=_HIGHEST)
  luma = _plane_dct(ycc[..., :1])
  b, h, w, _ = ycc.shape
  chroma_half = ycc[..., 1:].reshape(b, h // 2, 2, w // 2, 2, 2).mean(axis=(2, 4))
  chroma_coeffs = _plane_dct(chroma_half)
  chroma_coeffs = jnp.repeat(jnp.repeat(chroma_coeffs, 2, axis=1), 2, axis=2)
  return jnp.concatenate([luma, chroma_coeffs], axis=-1)


def block_idct(coeffs, *, chroma: str = "444") -> jax.Array:
  """Inverse of `block_dct`: `[B, h, w, 192]` -> float32 RGB `[B, 8h, 8w, 3]` (not clipped/rounded).

  Exact for `'444'`; for `'420'` reads the top-left block of each 2x2 group of chroma blocks.
  """
  _check_chroma(chroma)
  coeffs = jnp.asarray(coeffs)
  if coeffs.ndim != 4 or coeffs.shape[-1] != NUM_CHANNELS:
    raise ValueError(f"coeffs must be [batch, h, w, {NUM_CHANNELS}], got shape {coeffs.shape}")
  coeffs = coeffs.astype(_compute_dtype(coeffs.dtype))
  if chroma == "444":
    return _from_blocks(jnp.dot(coeffs, jnp.asarray(_A444_INV, coeffs.dtype), precision=_HIGHEST)) + 128.0
  if coeffs.shape[1] % 2 or coeffs.shape[2] % 2:
    raise ValueError(f"420 coefficients need an even block grid, got shape {coeffs.shape}")
  luma = _plane_idct(coeffs[..., :COEFFS_PER_PLANE])
  chroma_half = _plane_idct(coeffs[:, ::2, ::2, COEFFS_PER_PLANE:])
  chroma_full = jnp.repeat(jnp.repeat(chroma_half, 2, axis=1), 2, axis=2)
  ycc = jnp.concatenate([luma, chroma_full], axis=-1)
  return jnp.dot(ycc, jnp.asarray(color.YCBCR_TO_RGB.T, ycc.dtype), precision=_HIGHEST) + 128.0
