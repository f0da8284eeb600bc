"""Sequential MNIST: images read one row (or one pixel) per time step.

An image split `{'image': uint8 [N, H, W] or [N, H, W, 1], 'label': int [N]}` becomes
`{'inputs': float32 [N, T, F] in [0, 1], 'label': int32 [N]}` with
  * rows (default):   T = H,     F = W    (28 steps of 28 pixels for MNIST);
  * pixel_by_pixel:   T = H * W, F = 1    (784 steps of one pixel), optionally in a fixed random
    order drawn from `permutation_seed` (the "permuted sequential MNIST" task of Le et al., 2015).
The permutation depends only on the seed and the image size, so train and test splits built with
the same seed see the same pixel order.
"""

from __future__ import annotations

import numpy as np


def pixel_permutation(num_pixels: int, seed: int) -> np.ndarray:
  """The fixed pixel order for permuted sequences: int64 [num_pixels], a permutation of 0..n-1."""
  if num_pixels <= 0:
    raise ValueError(f"num_pixels must be positive, got {num_pixels}")
  return np.random.default_rng(seed).permutation(num_pixels)


def images_to_sequences(images: np.ndarray, *, pixel_by_pixel: bool = False,
                        permutation_seed: int | None = None) -> np.ndarray:
  """Turns images into input sequences.

  Args:
    images: uint8 (0..255) or float (0..1) array [N, H, W] or [N, H, W, 1] (one channel only).
    pixel_by_pixel: one pixel per step (T = H*W, F = 1) instead of one row per step (T = H, F = W).
    permutation_seed: if given (pixel_by_pixel only), pixels are read in the fixed order
      `pixel_permutation(H*W, permutation_seed)`.

  Returns:
    float32 [N, T, F]: pixel intensities in [0, 1].
  """
  images = np.asarray(images)
  if images.ndim == 4:
    if images.shape[-1] != 1:
      raise ValueError(f"sequence images must have one channel, got shape {images.shape}")
    images = images[..., 0]
  if images.ndim != 3:
    raise ValueError(f"images must be [N, H, W] or [N, H, W, 1], got shape {images.shape}")
  if permutation_seed is not None and not pixel_by_pixel:
    raise ValueError("permutation_seed needs pixel_by_pixel=True (rows are never permuted)")
  x = images.astype(np.float32)
  if images.dtype == np.uint8:
    x /= 255.0
  n, h, w = x.shape
  if not pixel_by_pixel:
    return x
  x = x.reshape(n, h * w)
  if permutation_seed is not None:
    x = x[:, pixel_permutation(h * w, permutation_seed)]
  return x[..., None]


def sequence_split(arrays: dict[str, np.ndarray], **kwargs) -> dict[str, np.ndarray]:
  """An image split `{'image', 'label', ...}` as a sequence split `{'inputs', 'label'}`.

  Keyword arguments go to `images_to_sequences`.
  """
  if "image" not in arrays or "label" not in arrays:
    raise ValueError(f"an image split needs 'image' and 'label' arrays, got keys {sorted(arrays)}")
  if len(arrays["image"]) != len(arrays["label"]):
    raise ValueError(f"{len(arrays['image'])} images but {len(arrays['label'])} labels")
  return {"inputs": images_to_sequences(arrays["image"], **kwargs),
          "label": np.asarray(arrays["label"], np.int32)}


# --- data sources and the input transform the trainer uses for sequences ---------------------------

SEQUENCE_SOURCES = ("seq", "ptb", "strokes")


def load_sequence_splits(cfg):
  """Sequence sources named in `config.data.source` (see `freqnoise.data.load_splits`):

    seq:IMAGE_SOURCE  any one-channel image source read row by row, e.g. `seq:idx:../shared/data/mnist`
                      or `seq:digits`; `cfg.pixel_by_pixel`, `cfg.permutation_seed` (-1 = none).
                      Fields `inputs` float32 [N, T, F], `label`.
    ptb:DIR           Penn Treebank word-level LM: `cfg.seq_len` BPTT length; rows of `tokens`,
                      `targets` int32 [N, T]; `cfg.eval_split` 'test' or 'valid'. num_classes = vocab.
    strokes:DIR       de Jong's MNIST pen strokes: `inputs` float32 [N, T, 4] (front-padded),
                      `length`, `label`; `cfg.max_length` (0 = longest).
  """
  from freqnoise.data.dataset import ArrayDataset, Splits
  if "num_steps" in cfg:  # the old name, easily confused with config.num_steps (training steps)
    raise ValueError("config.data.num_steps was renamed to config.data.seq_len (the BPTT length); "
                     "config.num_steps counts training steps")
  kind, _, arg = cfg.source.partition(":")
  if not arg:
    raise ValueError(f"data source {cfg.source!r} needs an argument: {kind}:...")
  if kind == "seq":
    from freqnoise.data.sources import load_image_splits
    inner = cfg.copy_and_resolve_references()
    inner.source = arg
    images = load_image_splits(inner)
    seed = cfg.get("permutation_seed", -1)
    kwargs = dict(pixel_by_pixel=cfg.get("pixel_by_pixel", False),
                  permutation_seed=None if seed is None or seed < 0 else seed)
    return Splits(ArrayDataset(sequence_split(images.train.arrays, **kwargs)),
                  ArrayDataset(sequence_split(images.test.arrays, **kwargs)),
                  images.num_classes, f"seq:{images.name}", dict(images.meta))
  if kind == "ptb":
    from freqnoise.data.text import load_ptb
    eval_split = cfg.get("eval_split", "test")
    if eval_split not in ("test", "valid"):
      raise ValueError(f"config.data.eval_split must be 'test' or 'valid', got {eval_split!r}")
    splits, vocab = load_ptb(arg, batch_size=cfg.batch_size, seq_len=cfg.get("seq_len", 35),
                             eval_batch_size=cfg.get("eval_batch_size") or None)
    return Splits(ArrayDataset(splits["train"]), ArrayDataset(splits[eval_split]), len(vocab),
                  f"ptb:{eval_split}", {"vocab_size": len(vocab)})
  if kind == "strokes":
    from freqnoise.data.strokes import load_stroke_split
    max_length = cfg.get("max_length", 0) or None
    train = load_stroke_split(arg, "train", max_length=max_length)
    test = load_stroke_split(arg, "test", max_length=train["inputs"].shape[1])
    return Splits(ArrayDataset(train), ArrayDataset(test), 10, "strokes")
  raise ValueError(f"unknown sequence source {cfg.source!r}; expected one of "
                   "seq:IMAGE_SOURCE, ptb:DIR, strokes:DIR")


def _register_sequence_transform():
  import jax.numpy as jnp

  from freqnoise.data.transform_registry import register_transform

  @register_transform("sequence")
  class SequenceTransform:
    """Sequence inputs as they are: floats (already in [0, 1] or pen offsets) cast to float32,
    integer token ids passed through for an embedding. Nothing is fitted."""

    def fit(self, inputs: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
      del seed
      if np.asarray(inputs).ndim < 2:
        raise ValueError(f"sequence inputs must be [N, T, ...], got shape {np.shape(inputs)}")
      return {}

    def __call__(self, stats, inputs):
      del stats
      return inputs.astype(jnp.float32) if jnp.issubdtype(inputs.dtype, jnp.floating) else inputs

  return SequenceTransform


SequenceTransform = _register_sequence_transform()
