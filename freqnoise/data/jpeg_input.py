"""Training straight from JPEG DCT coefficients (`config.data.jpeg_coefficients = True`).

The paper's motivation ("Learning in the frequency domain", Xu et al., CVPR 2020): the JPEG decoder
already holds the block DCT, so the frequency-domain input needs no pixel decode and no DCT. With
this option an `imagefolder:DIR` source read through Grain (`config.data.pipeline = 'grain'`) puts
each JPEG's dequantised coefficients (`freqnoise.freq.jpeg.read_jpeg_dct_bytes`, float32
`[H/8, W/8, 192]`, 4:2:0 chroma repeated 2x2, grayscale files with zero chroma) in the example's
`image` field, read on the Grain workers; the test split is read the same way into memory. The
field keeps its name so that the trainer, the evaluators and `config.data.input_key` stay as they
are; `config.input.name = 'dct_coefficients'` (`freqnoise.freq.transform`) then selects channels
and normalises, where the `dct` transform would compute the DCT of pixels.

Limits: nothing is resized, so every JPEG must have the same size (`config.data.image_size`, or
the first file's when 0), sides multiples of 8 (16 for 4:2:0); of the augmentations only the
horizontal flip exists without pixels (`freqnoise.freq.dct_flip`), crops raise a ValueError.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from freqnoise.data.augment import check_coefficient_augment
from freqnoise.freq.dct import BLOCK
from freqnoise.freq.jpeg import read_jpeg_dct_bytes, require_jpeglib

TRANSFORM = "dct_coefficients"  # the config.input.name that reads coefficients


def read_coefficients(where: str, data: bytes, size: tuple[int, int] | None,
                      image_size: int | None = None) -> np.ndarray:
  """The coefficients `[H/8, W/8, 192]` of one JPEG's bytes (`where` names the file in errors). A
  file whose size is not `size` (H, W; None: any) raises a ValueError naming it; `image_size` is
  the configured size (0 / None: `size` is the split's first file's), for the message."""
  coeffs = read_jpeg_dct_bytes(data, name=where)
  actual = (BLOCK * coeffs.shape[0], BLOCK * coeffs.shape[1])
  if size is not None and actual != tuple(size):
    wanted = (f"config.data.image_size={image_size}" if image_size
              else f"the split's first image, {size[0]}x{size[1]}")
    raise ValueError(f"{where}: a {actual[0]}x{actual[1]} image, but {wanted}: JPEG coefficients "
                     "are read without decoding, so images cannot be resized and must all have "
                     "the same size (set config.data.image_size to the files' size, or 0)")
  return coeffs


def check_jpeg_source(data: ml_collections.ConfigDict) -> None:
  """With `data.jpeg_coefficients` on, the source must be `imagefolder:DIR` read through Grain."""
  if not data.get("jpeg_coefficients", False):
    return
  source = data.get("source", "")
  if source.partition(":")[0] != "imagefolder":
    raise ValueError(f"config.data.jpeg_coefficients reads the JPEG files of an imagefolder:DIR "
                     f"source, not of config.data.source={source!r}")
  pipeline = data.get("pipeline", "memory")
  if pipeline != "grain":
    raise ValueError(f"config.data.jpeg_coefficients needs config.data.pipeline='grain' (the "
                     f"coefficients are read example by example on Grain's workers), got "
                     f"{pipeline!r}")


def check_jpeg_coefficients(config: ml_collections.ConfigDict) -> None:
  """Every check of `config.data.jpeg_coefficients` that needs no data: a bool; if on, an
  image-folder source through Grain, `config.input.name = 'dct_coefficients'`, the input read from
  the `image` field, no crop augmentation, jpeglib installed."""
  data = config.data
  on = data.get("jpeg_coefficients", False)
  if not isinstance(on, bool):
    raise ValueError(f"config.data.jpeg_coefficients must be True or False, got {on!r}")
  if not on:
    return
  check_jpeg_source(data)
  name = (config.get("input") or {}).get("name", "spatial")
  if name != TRANSFORM:
    raise ValueError(f"config.data.jpeg_coefficients=True puts DCT coefficients in the image "
                     f"field: config.input.name must be {TRANSFORM!r}, not {name!r}")
  key = data.get("input_key", "image")
  if key != "image":
    raise ValueError(f"config.data.jpeg_coefficients=True puts the coefficients in the 'image' "
                     f"field: config.data.input_key must be 'image', not {key!r}")
  check_coefficient_augment(dict(data.get("augment", {})))
  require_jpeglib()
