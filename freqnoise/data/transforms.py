"""Input transforms: host-side `fit` on the training split, device-side pure `__call__` in the step.

A transform turns a batch of raw images (uint8 or float, NHWC, 0..255) into the model input. Its
statistics (e.g. per-channel mean/std) come from the training split once and are saved with the run,
so evaluation of a checkpoint uses exactly the statistics the model was trained with. Letterboxed
images (`size`: content height, width) are fitted on their content and padded after normalisation
(`transform_registry.content_mask`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from freqnoise.freq.transform import DCTCoefficientsTransform, DCTTransform  # (registers "dct")
from freqnoise.data.transform_registry import (TRANSFORMS, content_mask, fit_sample,
                                              register_transform)

def build_transform(input_config: ml_collections.ConfigDict | dict | None):
  fields = dict(input_config or {"name": "spatial"})
  name = fields.pop("name", "spatial")
  if name not in TRANSFORMS:
    raise ValueError(f"unknown input transform {name!r}; known: {', '.join(sorted(TRANSFORMS))}")
  try:
    return TRANSFORMS[name](**fields)
  except TypeError as e:
    raise ValueError(f"input transform {name!r} rejected its config fields {sorted(fields)}: {e}") from e


def check_image_size(transform, data: ml_collections.ConfigDict) -> None:
  """`config.data.image_size` (when set, every image is resized to it) against the block DCT of
  `config.input`: a side that is not a multiple of its block (8; 16 for 4:2:0 chroma; after
  `upscale`) without `pad` is a ValueError naming both fields, raised before any image is decoded
  (it would otherwise surface in `fit`, after the whole training split was read). The DCT itself
  decides, traced on one image of that size (`jax.eval_shape`: nothing computed)."""
  size = data.get("image_size", 0)
  dct_of_pixels = isinstance(transform, DCTTransform) and not isinstance(
      transform, DCTCoefficientsTransform)  # (coefficients read from JPEG files have no size here)
  if not dct_of_pixels or isinstance(size, bool) or not isinstance(size, int) or size <= 0:
    return
  try:
    jax.eval_shape(transform.coefficients, jax.ShapeDtypeStruct((1, size, size, 3), jnp.uint8))
  except ValueError as e:
    raise ValueError(f"config.data.image_size={size} does not fit config.input (dct, chroma "
                     f"{transform.chroma!r}, upscale {transform.upscale}): {e} "
                     "(config.input.pad=True), or pick another image_size") from None


def _channel_moments(images: np.ndarray, scale: float, max_examples: int, seed: int,
                     size: np.ndarray | None = None):
  """Per-channel mean and std of `images / scale` over (N, H, W), on a seeded sample of at most
  `max_examples` images; with `size` [N, 2] over each image's content pixels only."""
  x = np.asarray(fit_sample(images, max_examples, seed), np.float64) / scale
  axes = tuple(range(x.ndim - 1))
  if size is not None:  # [P, C]: the content pixels of every image
    x, axes = x[np.asarray(content_mask(fit_sample(size, max_examples, seed), x.shape[1:3]))], 0
  return x.mean(axis=axes).astype(np.float32), np.maximum(x.std(axis=axes), 1e-6).astype(np.float32)


@register_transform("spatial")
class SpatialTransform:
  """Pixels scaled to [0, 1], then normalised per channel with the training split's mean and std.

  Args:
    normalize: subtract the per-channel mean and divide by the std (else only scale to [0, 1]).
    max_fit_examples: at most this many training images (a seeded sample) enter the statistics.
  """

  pixels_per_cell = 1  # image pixels per input cell a side (models.registry.check_input_grid)

  def __init__(self, normalize: bool = True, max_fit_examples: int = 10_000):
    self.normalize = normalize
    self.max_fit_examples = max_fit_examples

  def fit(self, images: np.ndarray, seed: int = 0,
          size: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Per-channel mean/std over a seeded sample of at most `max_fit_examples` training images;
    over their content pixels only when `size` [N, 2] (letterboxed images) is given."""
    if images.ndim != 4:
      raise ValueError(f"spatial transform expects NHWC images, got shape {images.shape}")
    mean, std = _channel_moments(images, 255.0, self.max_fit_examples, seed, size)
    if not self.normalize:
      mean, std = np.zeros_like(mean), np.ones_like(std)
    return {"mean": mean, "std": std}

  def __call__(self, stats: dict[str, jax.Array], images: jax.Array,
               size: jax.Array | None = None) -> jax.Array:
    """Normalised pixels float32 [B, H, W, C]; with `size` [B, 2], exactly 0 outside the content."""
    x = (jnp.asarray(images, jnp.float32) / 255.0 - stats["mean"]) / stats["std"]
    if size is None:
      return x
    return jnp.where(content_mask(size, x.shape[1:3])[..., None], x, 0.0)
