"""Command line: `python -m freqnoise.main --config=configs/X.py[:arg] --workdir=DIR [--config.a.b=v]`.

Parses flags and calls `freqnoise.train.train_and_evaluate`; nothing else lives here.
"""

from __future__ import annotations

import json
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

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
  result = train_and_evaluate(_CONFIG.value, os.path.expanduser(_WORKDIR.value))
  print(json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in result.items()},
                   indent=1))
  print(f"test accuracy: {result['test_accuracy']:.4f}")


def run() -> None:
  # configs/ import their shared defaults as `configs.common`: make the working directory importable.
  sys.path.insert(0, os.getcwd())
  app.run(_main)


if __name__ == "__main__":
  run()
