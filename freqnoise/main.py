"""Command line: `python -m freqnoise.main --config=configs/X.py[:arg] --workdir=DIR [--config.a.b=v]`.

Parses flags and calls `freqnoise.train.train_and_evaluate`; nothing else lives here.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from freqnoise.cli import DiskFullNoise, clean_exit

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (configs/*.py[:arg]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder (checkpoints, metrics); resumes if present.")
flags.mark_flags_as_required(["config", "workdir"])


def _main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not flags.FLAGS["verbosity"].present:  # orbax logs every checkpoint step at INFO
    logging.set_verbosity(logging.WARNING)
  from freqnoise.train import train_and_evaluate  # after flag parsing: --help stays fast
  logging.get_absl_handler().addFilter(DiskFullNoise())
  with clean_exit():
    result = train_and_evaluate(_CONFIG.value, os.path.expanduser(_WORKDIR.value))
  from freqnoise.evaluators.table import results_table
  print(results_table(result))  # a table; every value is in final_metrics.json
  if "test_accuracy" in result:
    print(f"test accuracy: {result['test_accuracy']:.4f}")
  else:  # a detector: COCO AP of the test split
    print(", ".join(f"test {k[5:]}: {result[k]:.4f}" for k in ("test_box_AP", "test_mask_AP")
                    if k in result))


def config_import_root(argv: list[str]) -> str | None:
  """The folder that makes `--config`'s package importable: configs/*.py import their shared
  defaults as `configs.common`, so for `--config=/any/where/configs/x.py:arg` it is `/any/where`
  (None when the file is not inside a `configs` package)."""
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      value = arg.split("=", 1)[1]
    elif arg == "--config" and i + 1 < len(argv):
      value = argv[i + 1]
    else:
      continue
    folder = os.path.dirname(os.path.abspath(os.path.expanduser(value.split(":", 1)[0])))
    if os.path.basename(folder) == "configs" and os.path.isfile(os.path.join(folder, "__init__.py")):
      return os.path.dirname(folder)
  return None


def run() -> None:
  # A config file given by any path, from any working directory, finds `configs.common`.
  sys.path.insert(0, os.getcwd())
  root = config_import_root(sys.argv)
  if root:
    sys.path.insert(0, root)
  app.run(_main)


if __name__ == "__main__":
  run()
