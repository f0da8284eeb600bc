"""The "dct" input transform: RGB batch -> block DCT -> static channel subset -> per-channel normalisation.

Runs on device inside the jitted step, after spatial augmentation on the host (crop, flip happen on
pixels, before the DCT, as in DCTNet). Statistics (`fit`) are the per-channel mean and std of the
selected coefficients over the training split, saved with the run by the trainer; for letterboxed
images (`size`) over the blocks that touch the content, and the blocks wholly in the padding are 0
after normalisation (`freqnoise.data.transform_registry.content_mask`).

Config (`config.input`):
    name='dct', channels=24, chroma='444', pad=False, normalize=True, upscale=1
`channels`: a preset size (6, 24, 32, 48, 64; 192 = all, see `freqnoise.freq.selection`) or an
explicit list of channel indices `64 * plane + 8v + u` (e.g. the top-k of a learned gate).

The "dct_coefficients" transform (`DCTCoefficientsTransform`) takes the block-DCT coefficients
`[B, h, w, 192]` as input instead of pixels -- those read from the JPEG files with
`config.data.jpeg_coefficients` (`freqnoise.data.jpeg_input`) -- and selects and normalises them
exactly as "dct" does (the same `fit` and `__call__`; only `coefficients` differs).
"""

from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from freqnoise.data.transform_registry import content_mask, fit_sample, register_transform
from freqnoise.freq import dct, selection


@register_transform("dct")
class DCTTransform:
  """uint8/float RGB `[B, H, W, 3]` -> float32 `[B, H/8, W/8, len(channels)]`, normalised.

  Args:
    channels: preset size or list of channel indices (see module docstring).
    chroma: '444' or '420' (see `freqnoise.freq.dct`).
    pad: replicate the border up to a multiple of 8 (16 for '420') instead of raising.
    normalize: subtract the training mean and divide by the training std per channel.
    max_fit_examples: at most this many training images (a seeded sample) enter the statistics.
    upscale: resize the image by this integer factor (bilinear) before the DCT, so the grid is
      `upscale * H / 8`: 2 puts the DCT grid at 1/4 of the image, where the spatial stem puts
      ResNet's layer1 (DCTNet's upscaled inputs for detection and MobileNetV2).
  """

  def __init__(self, channels: int | Sequence[int] = 192, chroma: str = "444", pad: bool = False,
               normalize: bool = True, max_fit_examples: int = 10_000, upscale: int = 1):
    if isinstance(channels, (int, np.integer)):
      self.channels = selection.preset_channels(int(channels))
    else:
      self.channels = selection.check_channels(list(channels))
    if chroma not in dct.CHROMA_MODES:
      raise ValueError(f"chroma must be one of {dct.CHROMA_MODES}, got {chroma!r}")
    self.chroma, self.pad, self.normalize = chroma, pad, normalize
    self.max_fit_examples = max_fit_examples
    if isinstance(upscale, bool) or not isinstance(upscale, (int, np.integer)) or upscale < 1:
      raise ValueError(f"dct transform's upscale must be a positive integer, got {upscale!r}")
    self.upscale = int(upscale)

  @property
  def num_channels(self) -> int:
    return len(self.channels)

  @property
  def pixels_per_cell(self) -> float:
    """Image pixels per output cell a side: an 8x8 block of the image upscaled `upscale`x."""
    return dct.BLOCK / self.upscale

  def coefficients(self, images: jax.Array) -> jax.Array:
    """Unnormalised selected coefficients `[B, upscale * H/8, upscale * W/8, C]`."""
    if self.upscale > 1:
      b, h, w, c = images.shape
      images = jax.image.resize(images.astype(jax.numpy.float32),
                                (b, h * self.upscale, w * self.upscale, c), "bilinear")
    coeffs = dct.block_dct(images, chroma=self.chroma, pad=self.pad)
    if self.num_channels == dct.NUM_CHANNELS:
      return coeffs
    return coeffs[..., self.channels]

  def check_input(self, images: np.ndarray) -> None:
    """Raises a ValueError unless `images` is a batch this transform reads (RGB NHWC)."""
    if images.ndim != 4 or images.shape[-1] != 3:
      raise ValueError(f"dct transform expects RGB NHWC images, got shape {images.shape}")

  def fit(self, images: np.ndarray, seed: int = 0, batch_size: int = 256,
          size: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-channel mean/std (float32 `[C]`) of the selected coefficients over a seeded sample of at
    most `max_fit_examples` training images; with `size` [N, 2] (letterboxed images: content
    height, width in pixels) over the blocks that touch each image's content only."""
    self.check_input(images)
    images = fit_sample(images, self.max_fit_examples, seed)
    size = None if size is None else fit_sample(np.asarray(size), self.max_fit_examples, seed)
    fn = jax.jit(self.coefficients)
    total = np.zeros(self.num_channels, np.float64)
    total_sq = np.zeros(self.num_channels, np.float64)
    count = 0
    for start in range(0, len(images), batch_size):
      c = np.asarray(fn(images[start:start + batch_size]), np.float64)
      if size is not None:  # the content blocks only: [P, C]
        c = c[np.asarray(self.content(size[start:start + batch_size], c.shape[1:3]))][None, None]
      total += c.sum(axis=(0, 1, 2))
      total_sq += (c ** 2).sum(axis=(0, 1, 2))
      count += c.shape[0] * c.shape[1] * c.shape[2]
    if count == 0:
      raise ValueError("dct transform cannot fit statistics on an empty training split")
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 0.0))
    if not self.normalize:
      mean, std = np.zeros_like(mean), np.ones_like(std)
    return {"mean": mean.astype(np.float32), "std": np.maximum(std, 1e-6).astype(np.float32),
            "channels": self.channels.copy()}

  def content(self, size, grid: tuple[int, int]) -> jax.Array:
    """bool [B, h, w]: the blocks of the `grid` that touch each image's content `size` [B, 2]."""
    return content_mask(size, grid, scale=self.upscale, cell=dct.BLOCK)

  def __call__(self, stats: dict[str, jax.Array], images: jax.Array,
               size: jax.Array | None = None) -> jax.Array:
    """Normalised coefficients [B, h, w, C]; with `size` [B, 2] (content height, width of
    letterboxed images), the blocks wholly in the padding are exactly 0."""
    x = (self.coefficients(images) - stats["mean"]) / stats["std"]
    if size is None:
      return x
    return jax.numpy.where(self.content(size, x.shape[1:3])[..., None], x, 0.0)


@register_transform("dct_coefficients")
class DCTCoefficientsTransform(DCTTransform):
  """float block-DCT coefficients `[B, h, w, 192]` (channel `64 * plane + 8v + u`, as `block_dct`
  and `freqnoise.freq.jpeg` give them) -> float32 `[B, h, w, len(channels)]`, normalised with the
  training split's statistics: the "dct" transform without the DCT.

  Args:
    channels, normalize, max_fit_examples: as for "dct".
    chroma, pad: accepted so that a "dct" input block needs only its name changed; they have no
      effect here (the chroma layout is the files': 4:4:4, or 4:2:0 repeated 2x2; no padding).
    upscale: must be 1 (coefficients cannot be resized).
  """

  def __init__(self, channels: int | Sequence[int] = 192, chroma: str = "444", pad: bool = False,
               normalize: bool = True, max_fit_examples: int = 10_000, upscale: int = 1):
    if upscale != 1 or isinstance(upscale, bool):
      raise ValueError(f"dct_coefficients transform cannot upscale coefficients (upscale must be "
                       f"1, got {upscale!r}); upscale the images before encoding them instead")
    super().__init__(channels, chroma, pad, normalize, max_fit_examples, upscale)

  def check_input(self, images: np.ndarray) -> None:
    if images.ndim != 4 or images.shape[-1] != dct.NUM_CHANNELS:
      raise ValueError(f"dct_coefficients transform expects block-DCT coefficients [N, h, w, "
                       f"{dct.NUM_CHANNELS}] (config.data.jpeg_coefficients=True), got shape "
                       f"{images.shape}")

  def coefficients(self, images: jax.Array) -> jax.Array:
    """The selected channels of the coefficients, float32 `[B, h, w, C]`."""
    self.check_input(images)
    coeffs = jax.numpy.asarray(images, jax.numpy.float32)
    if self.num_channels == dct.NUM_CHANNELS:
      return coeffs
    return coeffs[..., self.channels]
