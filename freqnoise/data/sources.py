"""Dataset sources, named in `config.data.source`:

  digits              scikit-learn's bundled 8x8 digits (no download; fixed 75/25 split, seed 0)
  tfds:NAME           a TFDS dataset through `tfds.data_source` (ArrayRecord; no TensorFlow at run time)
  idx:DIR             MNIST / Fashion-MNIST original IDX files (`train-images-idx3-ubyte.gz`, ...)
  imagefolder:DIR     `SPLIT/CLASS/*.jpg|png` folders or `.tar[.gz]` archives / shards (CIFAR-10 JPEG
                      copy, Tiny-ImageNet-200 with val annotations)

Every source returns `Splits` with `image` uint8 NHWC and `label` int32 arrays. Asked for a lazy
training split (`config.data.pipeline = 'grain'`), `imagefolder:DIR` returns a `LazySplit` that
decodes one image per example read and no `.npz` cache; its test split is decoded into memory.
With `config.data.jpeg_coefficients` (Grain only) both splits' `image` field holds each JPEG's DCT
coefficients `[H/8, W/8, 192]` instead of pixels (`freqnoise.data.jpeg_input`). The sequence sources
`seq:IMAGE_SOURCE`, `ptb:DIR`, `strokes:DIR` live in `freqnoise.data.sequences`; their forms are
listed here too, so that an unknown source's error names every choice. Packages above this one
register their sources in `freqnoise.data.source_registry` (detection: `yolo-seg:DIR`,
`cocojson:DIR`); `check_source` checks them with their own `check`.
"""

from __future__ import annotations

import os

import ml_collections
import numpy as np

from freqnoise.data.dataset import ArrayDataset, Splits
from freqnoise.data.idx import load_idx_dataset
from freqnoise.data.images import load_image_folder
from freqnoise.data.jpeg_input import check_jpeg_source
from freqnoise.data.lazy_split import LazySplit
from freqnoise.data.random_access import ImageFolderSource
from freqnoise.data.source_registry import registered_forms, registered_source

SOURCES = ("digits", "tfds:NAME", "idx:DIR", "imagefolder:DIR")
# The forms of freqnoise.data.sequences' sources (it imports this module, so they are named here).
SEQUENCE_SOURCE_FORMS = ("seq:IMAGE_SOURCE", "ptb:DIR", "strokes:DIR")


def _unknown(source: str) -> ValueError:
  """The error for an unknown `config.data.source`, naming every source known now."""
  forms = SOURCES + SEQUENCE_SOURCE_FORMS + registered_forms()
  return ValueError(f"unknown data source {source!r}; expected one of {', '.join(forms)}")


def _digits() -> Splits:
  from sklearn.datasets import load_digits
  digits = load_digits()
  # sklearn's digits are 0..16; store them as uint8 0..255 like every other image source.
  images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
  labels = digits.target.astype(np.int32)
  order = np.random.default_rng(0).permutation(len(labels))
  n_train = int(round(0.75 * len(labels)))
  tr, te = order[:n_train], order[n_train:]
  return Splits(ArrayDataset({"image": images[tr], "label": labels[tr]}),
                ArrayDataset({"image": images[te], "label": labels[te]}), 10, "digits")


def _tfds(name: str, cfg) -> Splits:
  import tensorflow_datasets as tfds
  image_key, label_key = cfg.get("image_key", "image"), cfg.get("label_key", "label")
  splits = {}
  for split in (cfg.get("train_split", "train"), cfg.get("test_split", "test")):
    try:
      source = tfds.data_source(name, split=split, data_dir=cfg.get("data_dir") or None,
                                download=cfg.get("download", True))
    except Exception as e:  # TFDS raises many types; name the dataset and what to do
      raise ValueError(
          f"TFDS dataset {name!r} split {split!r} is not available: {e}\nPrepare it once with "
          f"`tfds build {name} --file_format=array_record` (preparation needs tensorflow), or set "
          "config.data.data_dir to a folder that holds it.") from e
    rows = [source[i] for i in range(len(source))]
    for key in (image_key, label_key):
      if key not in rows[0]:
        raise ValueError(f"TFDS dataset {name!r} has no feature {key!r}; features: {sorted(rows[0])}")
    image = np.stack([np.asarray(r[image_key]) for r in rows])
    if image.ndim == 3:
      image = image[..., None]
    splits[split] = {"image": image, "label": np.array([r[label_key] for r in rows], np.int32)}
    num_classes = source.dataset_info.features[label_key].num_classes
  train, test = splits.values()
  return Splits(ArrayDataset(train), ArrayDataset(test), num_classes, f"tfds:{name}")


def check_source(cfg: ml_collections.ConfigDict) -> None:
  """Checks `cfg.source` names a known source and, for a folder source, an existing folder,
  without reading any data (`seq:` wraps another source, checked in turn; a registered source is
  checked by its own `check`)."""
  source = cfg.get("source", "")
  kind, _, arg = source.partition(":")
  registered = registered_source(kind)
  if registered is not None and arg:
    registered.check(cfg)
    return
  while kind == "seq" and arg:
    kind, _, arg = arg.partition(":")
  known = {"digits": False, "tfds": True, "idx": True, "imagefolder": True, "ptb": True,
           "strokes": True}
  if kind not in known or known[kind] != bool(arg):
    raise _unknown(source)
  if kind != "tfds" and arg and not os.path.exists(os.path.expanduser(arg)):
    raise FileNotFoundError(f"config.data.source={source!r}: {arg} does not exist")


def _lazy_image_folder(root: str, cfg: ml_collections.ConfigDict) -> Splits:
  """An image folder whose training split is a `LazySplit` (never decoded whole) and whose test
  split is decoded into memory; classes, order and pixels are those of `load_image_folder`. With
  `cfg.jpeg_coefficients` both hold JPEG coefficients; the test images must have the train size."""
  image_size = cfg.get("image_size") or None
  jpeg = cfg.get("jpeg_coefficients", False)
  train = ImageFolderSource(root, cfg.get("train_split", "train"), image_size=image_size,
                            jpeg_coefficients=jpeg)
  names = train.class_names  # wnids.txt, else the train split's sorted class folders
  test_source = ImageFolderSource(root, cfg.get("test_split", "test"), image_size=image_size,
                                  class_names=names, jpeg_coefficients=jpeg)
  if test_source.jpeg_size != train.jpeg_size:  # (image_size 0: each split's first file's size)
    raise ValueError(
        f"{root}: {test_source.members[0]} is {'x'.join(map(str, test_source.jpeg_size))} but "
        f"{train.members[0]} is {'x'.join(map(str, train.jpeg_size))}: JPEG coefficients cannot be "
        "resized, so the test images must have the training images' size")
  test = LazySplit(test_source)
  return Splits(LazySplit(train), ArrayDataset(test.head(len(test))), len(names),
                f"imagefolder:{os.path.basename(os.path.normpath(root))}", {"class_names": names})


def load_image_splits(cfg: ml_collections.ConfigDict, lazy_train: bool = False) -> Splits:
  """Loads the image source named by `cfg.source` (see the module docstring).

  With `lazy_train`, an `imagefolder:DIR` training split is a `LazySplit` read one example at a
  time (for `config.data.pipeline = 'grain'`); other sources are in memory either way.
  """
  source = cfg.source
  kind, _, arg = source.partition(":")
  check_jpeg_source(cfg)  # JPEG coefficients: an image folder through Grain (lazy_train) only
  if kind == "digits" and not arg:
    return _digits()
  if kind == "tfds" and arg:
    return _tfds(arg, cfg)
  if kind == "idx" and arg:
    d = load_idx_dataset(arg)
    return Splits(ArrayDataset(d["train"]), ArrayDataset(d["test"]), 10, f"idx:{os.path.basename(arg)}")
  if kind == "imagefolder" and arg and lazy_train:
    return _lazy_image_folder(arg, cfg)
  if kind == "imagefolder" and arg:
    train, test, names = load_image_folder(
        arg, train_split=cfg.get("train_split", "train"), test_split=cfg.get("test_split", "test"),
        image_size=cfg.get("image_size") or None, cache_dir=cfg.get("cache_dir") or None)
    return Splits(ArrayDataset(train), ArrayDataset(test), len(names),
                  f"imagefolder:{os.path.basename(os.path.normpath(arg))}", {"class_names": names})
  raise _unknown(source)
