"""Quickstart: an MLP on scikit-learn's bundled 8x8 digits (no download).

Command:
  python -m freqnoise.main --config=configs/digits_mlp.py --workdir=/tmp/freqnoise_digits
Runtime: about 20 s on 2 CPU cores (1,000 steps).
Expected: test accuracy ~0.97 (>= 0.95).
`get_config('tiny')` trains 20 steps for tests.
"""

import ml_collections

from configs.common import base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = base_config()
  c.data.source = "digits"
  c.data.batch_size = 64        # 1,348 training images
  c.data.eval_batch_size = 128
  c.model = ml_collections.ConfigDict()
  c.model.name = "mlp"
  c.model.hidden = (256, 128)   # hidden widths
  c.model.dropout = 0.1         # dropout on hidden units
  c.optimizer.learning_rate = 2e-3
  c.num_steps = 1000
  c.log_every = 100
  c.eval_every = 500
  c.checkpoint_every = 500
  if arg == "tiny":
    c.num_steps = 20
    c.log_every = 5
    c.eval_every = 10
    c.checkpoint_every = 10
    c.tensorboard = False
  elif arg:
    raise ValueError(f"unknown config variant {arg!r}; known: tiny")
  return c
