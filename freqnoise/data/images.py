"""Image-folder datasets: `SPLIT/CLASS/*.jpg|png` as plain folders, `.tar`/`.tar.gz` archives or shards.

Covers the CIFAR-10 JPEG copy (`train.tar.gz`, `test.tar.gz`) and Tiny-ImageNet-200 (train shards
`train-0000K-of-0000N.tar.gz` holding `train/WNID/images/*.JPEG`; `val.tar.gz` with
`val/images/*.JPEG` labelled by `val/val_annotations.txt`; class order from `wnids.txt`). Whatever
shards are present are read. Decoded arrays are cached as `.npz` (written to a temp file, then
renamed) in a size-bounded cache, `freqnoise.data.image_cache`.
"""

from __future__ import annotations

import glob
import hashlib
import io
import os
import tarfile
import time
from typing import Iterator

import numpy as np
from PIL import Image

import freqnoise.data.image_cache as image_cache
from freqnoise.workdir import write_atomically

_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def _split_sources(root: str, split: str) -> list[str]:
  """Folders and archives that hold `split`, sorted so the read order is deterministic."""
  sources = []
  if os.path.isdir(os.path.join(root, split)):
    sources.append(os.path.join(root, split))
  for pattern in (f"{split}.tar", f"{split}.tar.gz", f"{split}.tgz", f"{split}-*-of-*.tar",
                  f"{split}-*-of-*.tar.gz"):
    sources.extend(sorted(glob.glob(os.path.join(root, pattern))))
  return sources


def _members(source: str) -> Iterator[tuple[str, bytes]]:
  """Yields (relative path, bytes) of every file under a folder or inside an archive."""
  if os.path.isdir(source):
    base = os.path.dirname(source)
    for dirpath, _, files in sorted(os.walk(source)):
      for name in sorted(files):
        path = os.path.join(dirpath, name)
        with open(path, "rb") as f:
          yield os.path.relpath(path, base).replace(os.sep, "/"), f.read()
    return
  try:
    with tarfile.open(source, "r:*") as tar:
      for member in tar:
        if member.isfile():
          yield member.name.lstrip("./"), tar.extractfile(member).read()
  except (tarfile.TarError, OSError, EOFError) as e:
    raise ValueError(f"{source}: cannot read archive ({e})") from e


def _decode(path: str, data: bytes, image_size: int | None) -> np.ndarray:
  try:
    with Image.open(io.BytesIO(data)) as img:
      img = img.convert("RGB")  # ~2% of Tiny-ImageNet is grayscale JPEG
      if image_size is not None and img.size != (image_size, image_size):
        img = img.resize((image_size, image_size), Image.BILINEAR)
      return np.asarray(img, np.uint8)
  except OSError as e:
    raise ValueError(f"{path}: cannot decode image ({e})") from e


def _read_split(root: str, split: str, image_size: int | None, verbose: bool):
  sources = _split_sources(root, split)
  if not sources:
    raise FileNotFoundError(f"{root}: no folder or archive for split {split!r} (looked for {split}/, "
                            f"{split}.tar[.gz], {split}-*-of-*.tar[.gz])")
  files: dict[str, bytes] = {}
  annotations: dict[str, str] = {}
  for source in sources:
    for path, data in _members(source):
      if path.endswith("_annotations.txt"):
        for line in data.decode().splitlines():
          parts = line.split("\t")
          if len(parts) >= 2:
            annotations[parts[0]] = parts[1]
      elif path.lower().endswith(_EXTENSIONS):
        files[path] = data
  if not files:
    raise ValueError(f"{root}: split {split!r} holds no images ({', '.join(sources)})")
  images, classes = [], []
  start = time.time()
  for i, path in enumerate(sorted(files)):
    parts = path.split("/")
    name = parts[-1]
    if name in annotations:
      label = annotations[name]
    elif len(parts) >= 3 and parts[0] == split:
      label = parts[1]
    else:
      raise ValueError(f"{root}: cannot tell the class of {path} (expected {split}/CLASS/... or an "
                       "annotations file)")
    images.append(_decode(path, files[path], image_size))
    classes.append(label)
    if verbose and (i + 1) % 20000 == 0:
      print(f"  decoded {i + 1}/{len(files)} {split} images ({time.time() - start:.0f} s)", flush=True)
  shapes = {im.shape for im in images}
  if len(shapes) != 1:
    raise ValueError(f"{root}: split {split!r} mixes image sizes {sorted(shapes)[:4]}; set "
                     "data.image_size to resize")
  return np.stack(images), classes


def class_names_of(root: str, classes: list[str]) -> list[str]:
  """The class order: `root/wnids.txt` (Tiny-ImageNet's) if present, else the sorted class folders."""
  wnids = os.path.join(root, "wnids.txt")
  if os.path.isfile(wnids):
    with open(wnids) as f:
      return [line.strip() for line in f if line.strip()]
  return sorted(set(classes))


def _cache_path(cache_dir: str, root: str, splits: tuple[str, ...], image_size) -> str:
  stamp = [os.path.abspath(root), repr(splits), repr(image_size)]
  for split in splits:
    for source in _split_sources(root, split):
      st = os.stat(source)
      stamp.append(f"{source}:{st.st_size}:{st.st_mtime_ns}")
  digest = hashlib.sha1("|".join(stamp).encode()).hexdigest()[:16]
  return os.path.join(os.path.expanduser(cache_dir), f"imagefolder-{digest}.npz")


def load_image_folder(root: str, *, train_split: str = "train", test_split: str = "test",
                      image_size: int | None = None, cache_dir: str | None = None,
                      verbose: bool = True) -> tuple[dict, dict, list[str]]:
  """Reads train and test splits; returns (train arrays, test arrays, class names).

  Class ids follow `wnids.txt` in `root` when present, else the sorted class folder names of the
  train split.
  """
  if not os.path.isdir(root):
    raise FileNotFoundError(f"image data folder not found: {root}")
  cache = _cache_path(cache_dir, root, (train_split, test_split), image_size) if cache_dir else None
  limit = image_cache.max_bytes() if cache else 0  # a bad FREQNOISE_CACHE_MAX_GB: before decoding
  if cache and os.path.isfile(cache):
    image_cache.mark_used(cache)
    if verbose:
      print(f"decoded images of {root} from the cache {cache} "
            f"({image_cache.describe(os.path.dirname(cache), limit)})", flush=True)
    with np.load(cache, allow_pickle=False) as z:
      names = [str(c) for c in z["class_names"]]
      return ({"image": z["train_image"], "label": z["train_label"]},
              {"image": z["test_image"], "label": z["test_label"]}, names)
  if verbose:
    print(f"decoding images under {root}" + (f" (cached afterwards in {cache})" if cache else ""),
          flush=True)
  train_images, train_classes = _read_split(root, train_split, image_size, verbose)
  test_images, test_classes = _read_split(root, test_split, image_size, verbose)
  names = class_names_of(root, train_classes)
  index = {c: i for i, c in enumerate(names)}
  unknown = sorted(set(train_classes + test_classes) - set(index))
  if unknown:
    raise ValueError(f"{root}: classes {unknown[:5]} are not among the {len(names)} known classes")
  train = {"image": train_images, "label": np.array([index[c] for c in train_classes], np.int32)}
  test = {"image": test_images, "label": np.array([index[c] for c in test_classes], np.int32)}
  if cache:
    _store(cache, limit, train, test, names, verbose)
  return train, test, names


def _store(cache: str, limit: int, train: dict, test: dict, names: list[str],
           verbose: bool) -> None:
  """Writes the decoded splits to `cache`, then evicts the least recently used other files until
  the cache fits `limit` bytes; splits larger than the bound on their own are not cached."""
  arrays = dict(train_image=train["image"], train_label=train["label"], test_image=test["image"],
                test_label=test["label"], class_names=np.array(names))
  size = sum(a.nbytes for a in arrays.values())  # .npz stores them uncompressed
  folder = os.path.dirname(cache)
  if size > limit:
    if verbose:
      print(f"not cached: the decoded images take {size / 1e9:.2f} GB, more than the cache's "
            f"{limit / 1e9:g} GB bound ({image_cache.MAX_GB_ENV})", flush=True)
    return
  os.makedirs(folder, exist_ok=True)
  write_atomically(cache, lambda f: np.savez(f, **arrays))
  removed = image_cache.prune(folder, limit, keep=cache)
  if verbose:
    print(f"cached in {cache}; cache: {image_cache.describe(folder, limit)}"
          + (f"; removed {len(removed)} least recently used" if removed else ""), flush=True)


