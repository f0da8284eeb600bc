"""Spatial augmentation on host batches (NumPy, deterministic given a Generator).

Every function draws its random parameters for the rows of the *global* batch and applies those
of `rows` (this process's slice `(offset, global_size)`; default: the images are the whole batch),
so row j of a global batch is augmented the same way however the batch is spread over processes.
`augment_coefficients` augments JPEG DCT coefficients (`config.data.jpeg_coefficients`) instead of
pixels: only the flip exists there, with the same draws as `augment_images`' flip. A detection batch
(letterboxed images with boxes and box-cropped masks, `freqnoise.detection` conventions) gets the
flip only, its boxes and masks following the pixels (`flip_detection_batch`).

`alternating_flip` (airbench, Jordan 2024) replaces the coin of each step by a fixed coin per
example, `example_coin`, inverted every other epoch: over any two consecutive epochs each image is
seen once mirrored and once not. It needs the examples' row numbers in the split and the epoch.
"""

from __future__ import annotations

import numpy as np

from freqnoise.freq.dct_flip import flip_coefficients

# Augmentations that need pixels: none can run on JPEG coefficients (config.data.jpeg_coefficients).
PIXEL_ONLY_AUGMENTS = ("resized_crop_min_scale", "crop_padding", "crop_reflect", "alternating_flip")


def _draw(images: np.ndarray, rows: tuple[int, int] | None, sample) -> np.ndarray:
  """`sample(global_size)` (one value per row of the global batch), this slice's rows of it."""
  n = len(images)
  offset, total = rows if rows is not None else (0, n)
  if not (0 <= offset and offset + n <= total):
    raise ValueError(f"rows {offset}..{offset + n} are not inside a global batch of {total}")
  return sample(total)[offset:offset + n]


def random_crop_with_padding(rng: np.random.Generator, images: np.ndarray, padding: int,
                             rows: tuple[int, int] | None = None,
                             reflect: bool = False) -> np.ndarray:
  """Pads each NHWC image by `padding` pixels per side (zeros, or its reflection without the edge
  pixel repeated) and crops back at a random offset."""
  if padding <= 0:
    return images
  n, h, w, _ = images.shape
  padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)),
                  mode="reflect" if reflect else "constant")
  dy = _draw(images, rows, lambda m: rng.integers(0, 2 * padding + 1, m))
  dx = _draw(images, rows, lambda m: rng.integers(0, 2 * padding + 1, m))
  rows = dy[:, None] + np.arange(h)[None, :]                      # [N, H]
  cols = dx[:, None] + np.arange(w)[None, :]                      # [N, W]
  return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def random_flip(rng: np.random.Generator, images: np.ndarray,
                rows: tuple[int, int] | None = None) -> np.ndarray:
  """Mirrors each NHWC image left-right with probability 1/2."""
  flip = _draw(images, rows, rng.random) < 0.5
  return np.where(flip[:, None, None, None], images[:, :, ::-1], images)


def example_coin(seed: int, ids: np.ndarray) -> np.ndarray:
  """A fixed fair coin per example: bool [len(ids)], a function of (seed, row number) only."""
  with np.errstate(over="ignore"):  # splitmix64's finaliser: wraps modulo 2^64 by design
    mixed = np.asarray(ids, np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
    mixed = (mixed ^ (mixed >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    mixed = (mixed ^ (mixed >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
  return ((mixed ^ (mixed >> np.uint64(31))) >> np.uint64(63)).astype(bool)


def alternating_flips(seed: int, ids: np.ndarray, epoch: int) -> np.ndarray:
  """Which examples (row numbers `ids`) `alternating_flip` mirrors in `epoch`: bool [len(ids)]."""
  return example_coin(seed, ids) ^ bool(epoch % 2)


def crop_and_resize(images: np.ndarray, boxes: np.ndarray) -> np.ndarray:
  """Bilinear resize of each image's box `(top, left, height, width)` (pixels, float) to the full
  image size; pixel centres map to pixel centres, samples outside are clamped to the border."""
  n, h, w, _ = images.shape
  top, left, bh, bw = (boxes[:, i:i + 1] for i in range(4))
  ys = np.clip(top + (np.arange(h)[None] + 0.5) * bh / h - 0.5, 0, h - 1)   # [N, H]
  xs = np.clip(left + (np.arange(w)[None] + 0.5) * bw / w - 0.5, 0, w - 1)  # [N, W]
  y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
  y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
  wy, wx = (ys - y0)[:, :, None, None], (xs - x0)[:, None, :, None]
  img = images.astype(np.float32)
  at = lambda y, x: img[np.arange(n)[:, None, None], y[:, :, None], x[:, None, :]]  # [N, H, W, C]
  upper = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
  out = upper * (1 - wy) + (at(y1, x0) * (1 - wx) + at(y1, x1) * wx) * wy
  return np.round(out).astype(images.dtype) if images.dtype == np.uint8 else out.astype(images.dtype)


def random_resized_crop(rng: np.random.Generator, images: np.ndarray, min_scale: float,
                        ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        rows: tuple[int, int] | None = None) -> np.ndarray:
  """Inception-style crop: area fraction ~ U(min_scale, 1), aspect ratio log-uniform in `ratio`,
  uniform position, resized back to the input size (bilinear). Boxes that do not fit are shrunk
  to fit. `min_scale >= 1` (with ratio (1, 1)) returns the images unchanged."""
  if not 0 < min_scale <= 1:
    raise ValueError(f"random resized crop min_scale must be in (0, 1], got {min_scale}")
  n, h, w, _ = images.shape
  area = _draw(images, rows, lambda m: rng.uniform(min_scale, 1.0, m)) * h * w
  aspect = np.exp(_draw(images, rows, lambda m: rng.uniform(np.log(ratio[0]), np.log(ratio[1]), m)))
  bw = np.minimum(np.sqrt(area * aspect), w)
  bh = np.minimum(np.sqrt(area / aspect), h)
  top = _draw(images, rows, lambda m: rng.uniform(0, 1, m)) * (h - bh)
  left = _draw(images, rows, lambda m: rng.uniform(0, 1, m)) * (w - bw)
  return crop_and_resize(images, np.stack([top, left, bh, bw], axis=1))


def augment_images(rng: np.random.Generator, images: np.ndarray, *, crop_padding: int = 0,
                   flip: bool = False, resized_crop_min_scale: float = 0.0,
                   crop_reflect: bool = False, alternating_flip: bool = False,
                   rows: tuple[int, int] | None = None,
                   examples: tuple[int, np.ndarray, int] | None = None) -> np.ndarray:
  """Random resized crop (if `resized_crop_min_scale` > 0), random crop with padding (reflected
  borders with `crop_reflect`), then horizontal flip, random or alternating, as the config asks.
  `rows = (offset, global_size)`: `images` are rows offset.. of a global batch (this process's
  slice), augmented as they would be in the whole batch. `examples = (seed, row numbers in the
  split, epoch)` of the images: what `alternating_flip` needs."""
  if images.ndim != 4:
    raise ValueError(f"augmentation expects NHWC images, got shape {images.shape}")
  if flip and alternating_flip:
    raise ValueError("config.data.augment: set flip (a coin per step) or alternating_flip, not "
                     "both")
  if resized_crop_min_scale:
    images = random_resized_crop(rng, images, resized_crop_min_scale, rows=rows)
  images = random_crop_with_padding(rng, images, crop_padding, rows=rows, reflect=crop_reflect)
  if flip:
    images = random_flip(rng, images, rows=rows)
  if alternating_flip:
    if examples is None:
      raise ValueError("alternating_flip needs the examples' (seed, row numbers, epoch)")
    mirror = alternating_flips(*examples)
    images = np.where(mirror[:, None, None, None], images[:, :, ::-1], images)
  return images


def check_coefficient_augment(augment: dict) -> None:
  """Raises a ValueError naming every switched-on field of `augment` (config.data.augment) that
  needs pixels, which JPEG coefficients (config.data.jpeg_coefficients) do not have."""
  unknown = sorted(set(augment) - set(PIXEL_ONLY_AUGMENTS) - {"flip"})
  if unknown:
    raise ValueError(f"unknown augmentation fields {unknown}; known: flip, "
                     f"{', '.join(PIXEL_ONLY_AUGMENTS)}")
  bad = [f"config.data.augment.{k}={augment[k]!r}" for k in PIXEL_ONLY_AUGMENTS if augment.get(k)]
  if bad:
    raise ValueError(f"{', '.join(bad)}: crops need decoded pixels, but with "
                     "config.data.jpeg_coefficients=True the images are read as DCT coefficients; "
                     "only config.data.augment.flip is possible (set the others to 0)")


def augment_coefficients(rng: np.random.Generator, coeffs: np.ndarray, *, crop_padding: int = 0,
                         flip: bool = False, resized_crop_min_scale: float = 0.0,
                         rows: tuple[int, int] | None = None) -> np.ndarray:
  """`augment_images` for JPEG block-DCT coefficients `[N, h, w, 192]`: the horizontal flip with
  probability 1/2 (`freqnoise.freq.dct_flip`; the same draws as `random_flip`, so a row flipped
  here is flipped in the pixel pipeline too). Crops raise a ValueError naming the field."""
  check_coefficient_augment({"crop_padding": crop_padding,
                             "resized_crop_min_scale": resized_crop_min_scale})
  if coeffs.ndim != 4:
    raise ValueError(f"augmentation expects coefficients [N, h, w, 192], got shape {coeffs.shape}")
  if not flip:
    return coeffs
  mirror = _draw(coeffs, rows, rng.random) < 0.5
  return np.where(mirror[:, None, None, None], flip_coefficients(coeffs), coeffs)


def flip_detection_batch(batch: dict[str, np.ndarray], flip: np.ndarray) -> dict[str, np.ndarray]:
  """A copy of `batch` with the examples where `flip` [B] is true mirrored left-right: the image's
  content region (`size`; the zero padding stays at the right), boxes (x -> width - x, x1/x2
  swapped) and each instance's M x M mask. Padding instances (class 0) stay all zeros."""
  flip = np.asarray(flip, bool)
  if flip.shape != batch["classes"].shape[:1]:
    raise ValueError(f"flip must be bool [B] with B = {len(batch['classes'])}, got shape "
                     f"{flip.shape}")
  out = dict(batch)
  image, boxes = batch["image"].copy(), batch["boxes"].copy()
  masks = batch["masks"].copy() if "masks" in batch else None
  for i in np.flatnonzero(flip):
    w = int(batch["size"][i, 1])
    image[i, :, :w] = image[i, :, :w][:, ::-1]
    valid = batch["classes"][i] > 0
    b = boxes[i, valid]
    boxes[i, valid] = np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], axis=-1)
    if masks is not None:
      masks[i, valid] = masks[i, valid][:, :, ::-1]
  out["image"], out["boxes"] = image, boxes
  if masks is not None:
    out["masks"] = masks
  return out


def augment_detection_batch(rng: np.random.Generator, batch: dict[str, np.ndarray], *,
                            flip: bool = False, rows: tuple[int, int] | None = None,
                            **unsupported) -> dict[str, np.ndarray]:
  """Horizontal flip (probability 1/2) of a detection batch's images, boxes and instance masks
  (`flip_detection_batch`). Crops would move boxes out of the image and are not offered for
  detection: asking for one is an error naming it."""
  bad = sorted(k for k, v in unsupported.items() if v)
  if bad:
    raise ValueError(f"detection batches support config.data.augment.flip only, not {bad}")
  if not flip:
    return batch
  return flip_detection_batch(batch, _draw(batch["image"], rows, rng.random) < 0.5)


def augment_batch(rng: np.random.Generator, batch: dict[str, np.ndarray], augment: dict,
                  rows: tuple[int, int] | None = None,
                  examples: tuple[int, np.ndarray, int] | None = None) -> dict[str, np.ndarray]:
  """The training augmentation of one batch (`config.data.augment`, only what is switched on), as
  both input pipelines apply it: a detection batch (with `boxes`) is flipped with its boxes and
  masks; otherwise `image` goes through `augment_images` (`examples` as there)."""
  if not augment:
    return batch
  if "boxes" in batch:
    return augment_detection_batch(rng, batch, **augment, rows=rows)
  if "image" in batch:
    batch = dict(batch)
    batch["image"] = augment_images(rng, batch["image"], **augment, rows=rows, examples=examples)
  return batch
