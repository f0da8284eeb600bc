"""DCT coefficients read straight from a JPEG file or its bytes, without decoding pixels (as
jpeg2dct does).

Uses the optional PyPI package `jpeglib` (libjpeg wrapper, maintained; `pip install jpeglib`).
The stored quantised coefficients are multiplied by their quantisation tables, giving the same
quantity `freqnoise.freq.dct.block_dct` computes from pixels, up to JPEG's quantisation and libjpeg's
integer DCT. Measured on a 416x624 sample photo saved at quality 100: mean |difference| 0.25 (luma),
0.20 / 0.30 (chroma, 4:4:4 / 4:2:0), max 4, on the 0..2040 coefficient scale.

Grayscale JPEGs (one component; about 2% of ImageNet and Imagenette) get all-zero chroma channels:
decoded to RGB they have R = G = B, hence Cb = Cr = 128, whose level-shifted 8x8 blocks (and so
every chroma coefficient) are 0 -- what `block_dct` gives for the decoded gray image.

jpeglib reads only from a path (and copies the file to a temporary file of its own as it loads),
so `read_jpeg_dct_bytes` writes the bytes to a temporary file in /dev/shm (memory), or the system's
temporary folder where there is none, and reads that with `read_jpeg_dct`: one implementation.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from freqnoise.freq.dct import BLOCK, COEFFS_PER_PLANE

_TEMP_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None  # None: tempfile's default
_COLOR_SPACES = ("JCS_YCbCr", "JCS_GRAYSCALE")  # libjpeg's names of the layouts read here


def require_jpeglib():
  """The `jpeglib` module, or an ImportError saying how to install it."""
  try:
    import jpeglib
  except ImportError as e:
    raise ImportError("reading JPEG coefficients needs the optional package jpeglib: "
                      "pip install jpeglib") from e
  return jpeglib


def read_jpeg_dct(path: str, name: str | None = None) -> np.ndarray:
  """Dequantised DCT coefficients of a JPEG: float32 `[H/8, W/8, 192]` (luma block grid).

  Channel layout as `block_dct`: `64 * plane + 8v + u`. 4:2:0 chroma blocks are repeated 2x2 onto
  the luma grid (our '420' convention); 4:4:4 files map one to one; grayscale files get zero chroma
  (see the module docstring). H and W must be multiples of 8 (16 for 4:2:0). Other layouts,
  unreadable files and other sizes raise a ValueError naming `name` (default: `path`).
  """
  jpeglib = require_jpeglib()
  where = name or path
  try:
    jpeg = jpeglib.read_dct(path)
    return _dequantised(jpeg, where)
  except OSError as e:  # libjpeg's errors (not a JPEG, truncated headers) arrive as OSError
    raise ValueError(f"{where}: cannot read JPEG coefficients ({e})") from e


def read_jpeg_dct_bytes(data: bytes, name: str = "<bytes>") -> np.ndarray:
  """`read_jpeg_dct` of a JPEG file's bytes (e.g. a tar member); errors name `name`."""
  fd, tmp = tempfile.mkstemp(suffix=".jpg", dir=_TEMP_DIR)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
    return read_jpeg_dct(tmp, name=name)
  finally:
    os.remove(tmp)


def _dequantised(jpeg, where: str) -> np.ndarray:
  """A `jpeglib.DCTJPEG`'s coefficients times their quantisation tables, on the luma grid."""
  space = getattr(jpeg.jpeg_color_space, "name", str(jpeg.jpeg_color_space))
  if space not in _COLOR_SPACES or jpeg.num_components not in (1, 3):
    raise ValueError(f"{where}: a {jpeg.num_components}-component {space} JPEG; only YCbCr "
                     f"(3 components) and grayscale JPEGs are read")
  height, width = int(jpeg.height), int(jpeg.width)
  multiple = BLOCK * int(np.max(jpeg.samp_factor))  # one MCU: 8, or 16 for 4:2:0
  if height % multiple or width % multiple:
    raise ValueError(f"{where}: a {height}x{width} image; its coefficients fill the luma block "
                     f"grid only when both sides are multiples of {multiple}")
  tables = np.asarray(jpeg.qt, np.float32)
  table_of = list(jpeg.quant_tbl_no)
  luma_grid = (height // BLOCK, width // BLOCK)
  components = (jpeg.Y, jpeg.Cb, jpeg.Cr) if jpeg.num_components == 3 else (jpeg.Y,)
  planes = []
  for p, coeffs in enumerate(components):
    c = coeffs.astype(np.float32) * tables[table_of[p]]  # [bh, bw, 8 (v), 8 (u)]
    fy, fx = luma_grid[0] / c.shape[0], luma_grid[1] / c.shape[1]
    if (fy, fx) == (2, 2):
      c = c.repeat(2, axis=0).repeat(2, axis=1)
    elif (fy, fx) != (1, 1):
      raise ValueError(f"{where}: unsupported chroma subsampling (luma/chroma block grids "
                       f"{luma_grid} vs {c.shape[:2]}); only 4:4:4 and 4:2:0")
    planes.append(c.reshape(*luma_grid, COEFFS_PER_PLANE))
  if len(planes) == 1:  # grayscale: Cb = Cr = 128 everywhere, i.e. zero chroma coefficients
    planes.append(np.zeros((*luma_grid, 2 * COEFFS_PER_PLANE), np.float32))
  return np.concatenate(planes, axis=-1)
