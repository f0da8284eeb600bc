"""Random-access example sources for the streaming pipeline: `len(src)`, `src[i] -> dict of arrays`.

`ArraySource` wraps a split already in memory. `ImageFolderSource` reads the layouts of
`freqnoise.data.images` (plain `SPLIT/CLASS/*.jpg` folders, `.tar`/`.tar.gz` archives and shards
`SPLIT-0000K-of-0000N.tar[.gz]`, Tiny-ImageNet's annotated val split) without a whole-split cache:
it scans member names once (no image is decoded) and decodes one image per `src[i]`, so a split
never has to fit in memory. Its order, labels and pixels are those of `load_image_folder`. With
`jpeg_coefficients` it decodes no pixels: each `src[i]["image"]` holds the JPEG's dequantised DCT
coefficients `[H/8, W/8, 192]` (`freqnoise.freq.jpeg`; see `freqnoise.data.jpeg_input`).
`tfds.data_source(...)` objects are random-access already and need no wrapper.

Sources are pickled into Grain's worker processes: open file handles are not pickled but reopened
in each process (and, for compressed archives, in each reading thread).
"""

from __future__ import annotations

import os
import tarfile
import threading
from typing import Any

import numpy as np

from freqnoise.data.dataset import ArrayDataset
from freqnoise.data.images import _EXTENSIONS, _decode, _split_sources, class_names_of
from freqnoise.data.jpeg_input import read_coefficients

_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ")  # gzip, bzip2, xz


class ArraySource:
  """A split in memory (`ArrayDataset` or dict of equally long arrays), one example per `src[i]`."""

  def __init__(self, data: ArrayDataset | dict[str, np.ndarray]):
    self.arrays = dict(data.arrays if isinstance(data, ArrayDataset) else ArrayDataset(data).arrays)

  def __len__(self) -> int:
    return len(next(iter(self.arrays.values())))

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    return {k: v[index] for k, v in self.arrays.items()}


def _read_file(path: str) -> bytes:
  with open(path, "rb") as f:
    return f.read()


class _Handle:
  """One open archive of one reading thread; closed when the thread's handles are dropped."""

  def __init__(self, path: str, compressed: bool):
    self._tar = tarfile.open(path, "r:*") if compressed else None
    self.file = self._tar.fileobj if compressed else open(path, "rb")

  def __del__(self):
    opened = getattr(self, "_tar", None) or getattr(self, "file", None)
    if opened is not None:
      opened.close()


def _is_compressed(path: str) -> bool:
  with open(path, "rb") as f:
    head = f.read(6)
  return any(head.startswith(m) for m in _COMPRESSED_MAGIC)


class ImageFolderSource:
  """One split of an image folder (see the module docstring), one decoded image per `src[i]`.

  Args:
    root: the folder holding `SPLIT/`, `SPLIT.tar[.gz]` or `SPLIT-*-of-*.tar[.gz]`.
    split: the split's name.
    image_size: resize every image to this square size (None: keep; all images must then agree).
    class_names: class ids in order; default `root/wnids.txt` when present, else the sorted class
      folders of this split. Pass the train split's `class_names` to a test split's source.
    jpeg_coefficients: `image` holds the JPEG's DCT coefficients, float32 `[H/8, W/8, 192]`, read
      without decoding pixels. Nothing can be resized: every file must be `image_size` square, or
      (None) the size of the first one; a file of another size raises a ValueError naming it.
  """

  def __init__(self, root: str, split: str, *, image_size: int | None = None,
               class_names: list[str] | None = None, jpeg_coefficients: bool = False):
    root = os.path.expanduser(root)
    if not os.path.isdir(root):
      raise FileNotFoundError(f"image data folder not found: {root}")
    self.root, self.split, self.image_size = root, split, image_size
    self.jpeg_coefficients = bool(jpeg_coefficients)
    self.containers = _split_sources(root, split)
    if not self.containers:
      raise FileNotFoundError(f"{root}: no folder or archive for split {split!r} (looked for "
                              f"{split}/, {split}.tar[.gz], {split}-*-of-*.tar[.gz])")
    # path -> (container index, offset of the member's bytes or -1 for a plain file, size);
    # a later container overrides an earlier one, as in `load_image_folder`.
    found: dict[str, tuple[int, int, int]] = {}
    annotations: dict[str, str] = {}
    for c, container in enumerate(self.containers):
      for path, offset, size, read in self._scan(container):
        if path.endswith("_annotations.txt"):
          for line in read().decode().splitlines():
            parts = line.split("\t")
            if len(parts) >= 2:
              annotations[parts[0]] = parts[1]
        elif path.lower().endswith(_EXTENSIONS):
          found[path] = (c, offset, size)
    if not found:
      raise ValueError(f"{root}: split {split!r} holds no images ({', '.join(self.containers)})")
    self.members = sorted(found)
    classes = [self._class_of(path, annotations) for path in self.members]
    self.class_names = list(class_names if class_names is not None
                            else class_names_of(root, classes))
    index = {name: i for i, name in enumerate(self.class_names)}
    unknown = sorted(set(classes) - set(index))
    if unknown:
      raise ValueError(f"{root}: classes {unknown[:5]} of split {split!r} are not among the "
                       f"{len(index)} known classes")
    self.labels = np.array([index[c] for c in classes], np.int32)
    located = np.array([found[p] for p in self.members], np.int64).reshape(-1, 3)
    self._container, self._offset, self._size = located[:, 0], located[:, 1], located[:, 2]
    self._compressed = [not os.path.isdir(c) and _is_compressed(c) for c in self.containers]
    self._local = threading.local()
    # (H, W) every JPEG must have when reading coefficients: image_size, else the first file's.
    self.jpeg_size: tuple[int, int] | None = None
    if self.jpeg_coefficients:
      self.jpeg_size = ((image_size, image_size) if image_size
                        else tuple(8 * n for n in self[0]["image"].shape[:2]))

  def _class_of(self, path: str, annotations: dict[str, str]) -> str:
    parts = path.split("/")
    if parts[-1] in annotations:
      return annotations[parts[-1]]
    if len(parts) >= 3 and parts[0] == self.split:
      return parts[1]
    raise ValueError(f"{self.root}: cannot tell the class of {path} (expected "
                     f"{self.split}/CLASS/... or an annotations file)")

  @staticmethod
  def _scan(container: str):
    """Yields (relative path, byte offset or -1, size, read()) of every file, reading no image."""
    if os.path.isdir(container):
      base = os.path.dirname(container)
      for dirpath, _, files in sorted(os.walk(container)):
        for name in sorted(files):
          full = os.path.join(dirpath, name)
          yield (os.path.relpath(full, base).replace(os.sep, "/"), -1, 0,
                 lambda full=full: _read_file(full))
      return
    try:
      with tarfile.open(container, "r:*") as tar:
        for member in tar:
          if member.isfile():
            yield (member.name.lstrip("./"), member.offset_data, member.size,
                   lambda m=member: tar.extractfile(m).read())
    except (tarfile.TarError, OSError, EOFError) as e:
      raise ValueError(f"{container}: cannot read archive ({e})") from e

  def __len__(self) -> int:
    return len(self.members)

  def __getstate__(self) -> dict[str, Any]:
    state = dict(self.__dict__)
    state.pop("_local")  # open handles stay in their process
    return state

  def __setstate__(self, state: dict[str, Any]) -> None:
    self.__dict__.update(state)
    self._local = threading.local()

  def _read(self, i: int) -> bytes:
    c, container = int(self._container[i]), self.containers[int(self._container[i])]
    if os.path.isdir(container):
      return _read_file(os.path.join(os.path.dirname(container), self.members[i]))
    handles = self._local.__dict__.setdefault("handles", {})
    if c not in handles:  # per thread: a compressed stream cannot be shared between readers
      handles[c] = _Handle(container, self._compressed[c])
    f = handles[c].file
    f.seek(int(self._offset[i]))  # plain tar: a seek; compressed: decompresses up to the member
    data = f.read(int(self._size[i]))
    if len(data) != int(self._size[i]):
      raise EOFError(f"archive ends after {len(data)} of the member's {int(self._size[i])} bytes")
    return data

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    i = int(index)
    if not -len(self) <= i < len(self):
      raise IndexError(f"index {i} out of range for {len(self)} examples of {self.root} "
                       f"split {self.split!r}")
    i %= len(self)
    container, member = self.containers[int(self._container[i])], self.members[i]
    where = f"{container}: {member}"
    try:
      if self.jpeg_coefficients:
        image = read_coefficients(where, self._read(i), self.jpeg_size, self.image_size)
      else:
        image = _decode(where, self._read(i), self.image_size)
    except (OSError, EOFError, tarfile.TarError) as e:
      raise ValueError(f"{container}: {member}: cannot read the member ({e})") from e
    return {"image": image, "label": self.labels[i]}
