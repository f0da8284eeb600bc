"""Test setup: 4 fake CPU devices (before JAX is imported), quiet logs, shared fixtures."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import atexit  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402

# One XLA compilation cache for the whole test session (and the CLI / notebook processes it
# starts): most tests compile the same tiny programs again (a new Experiment, a new jit), and a
# cache hit skips XLA's compile. It is keyed by the program, its options and the devices, so a hit
# is the executable a fresh compile would give; tests/test_train.py: 158 s -> 65 s of CPU. The
# folder is new per session and removed at exit, so nothing carries over between runs.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _XLA_CACHE = tempfile.mkdtemp(prefix="freqnoise-xla-cache-")
  atexit.register(shutil.rmtree, _XLA_CACHE, ignore_errors=True)
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _XLA_CACHE
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import pathlib  # noqa: E402

import pytest  # noqa: E402

from hypothesis import settings as hypothesis_settings  # noqa: E402

# The same examples on every run, so CI is never red by chance (a random draw found a real bug in
# conv_op only once in several CI runs); HYPOTHESIS_PROFILE=explore draws new ones.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

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


def write_tiny_ptb(directory) -> None:
  """ptb.{train,valid,test}.txt of 60/10/10 lines of five words from a 9-word vocabulary."""
  import numpy as np
  words = "the cat sat on the mat and the dog sat on the log".split()
  gen = np.random.default_rng(0)
  for name, n in (("train", 60), ("valid", 10), ("test", 10)):
    with open(pathlib.Path(directory) / f"ptb.{name}.txt", "w") as f:
      for _ in range(n):
        f.write(" " + " ".join(gen.choice(words, 5)) + " \n")


def key_data(key) -> tuple:
  """A PRNG key's raw data as a hashable tuple (to compare keys seen inside jit/vmap)."""
  import jax
  import numpy as np
  return tuple(np.asarray(jax.random.key_data(key)).ravel())


def spy_experiment(*args, **kwargs):
  """An `Experiment` whose `predict` records the (key, program_key) data of every call, from inside
  jit/vmap, in `.seen`."""
  import jax
  import numpy as np
  from freqnoise.experiment import Experiment

  class SpyExperiment(Experiment):

    def __init__(self, *a, **k):
      super().__init__(*a, **k)
      self.seen = set()

    def predict(self, variables, x, *, key, program_key=None, **k):
      flat = lambda a: tuple(np.asarray(a).ravel())
      record = lambda kd, pd: self.seen.add((flat(kd), flat(pd)))
      jax.debug.callback(record, jax.random.key_data(key), jax.random.key_data(program_key))
      return super().predict(variables, x, key=key, program_key=program_key, **k)

  return SpyExperiment(*args, **kwargs)
