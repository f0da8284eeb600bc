"""Test setup: 4 fake CPU devices (before JAX is imported), quiet logs, shared fixtures."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib  # noqa: E402

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> pathlib.Path:
  """`../shared/data`, or a skip with the reason when this checkout has none beside it."""
  if not SHARED_DATA.is_dir():
    pytest.skip(f"real datasets not present at {SHARED_DATA} (only on the project's machines)")
  return SHARED_DATA


def write_image_folder(root, size: int = 16, per_class: tuple[int, int] = (16, 8),
                       classes: int = 2) -> pathlib.Path:
  """A class-sorted image folder `root/{train,val}/c{k}/i.png`; class k is brighter by 120·k, so
  statistics of a prefix (only the first class) and of the whole split differ clearly."""
  import numpy as np
  from PIL import Image
  rng = np.random.default_rng(0)
  root = pathlib.Path(root)
  for split, n in zip(("train", "val"), per_class):
    for c in range(classes):
      os.makedirs(root / split / f"c{c}")
      for i in range(n):
        img = (rng.random((size, size, 3)) * 100 + 120 * c).astype(np.uint8)
        Image.fromarray(img).save(root / split / f"c{c}" / f"{i}.png")
  return root
