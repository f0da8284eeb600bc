"""Quickstart: an MLP on scikit-learn's bundled 8x8 digits (no download).

Command:
  python -m freqnoise.main --config=configs/digits_mlp.py --workdir=/tmp/freqnoise_digits
Runtime: about 15 s on 2 CPU cores (1,000 steps; experiments/quickstart/results/digits_mlp.json).
Expected: test accuracy 0.99 (0.9911 recorded in that file).
Arguments (`configs/digits_mlp.py:KEY=VALUE,...`): `tiny` trains 20 steps for tests
(`configs/digits_mlp.py:tiny`, `get_config("tiny")`).
"""

import ml_collections

from configs.common import base_config, brief_run, parse_arg


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Keys: tiny; see the module docstring."""
  args = parse_arg(arg, tiny=False)
  c = base_config()
  c.data.source = "digits"      # 1,348 training / 449 test images, bundled with scikit-learn
  c.data.batch_size = 64        # training images per step
  c.data.eval_batch_size = 128  # test images per evaluation batch
  c.model = ml_collections.ConfigDict()
  c.model.name = "mlp"          # dense layers on the flattened image (freqnoise.models)
  c.model.hidden = (256, 128)   # hidden widths
  c.model.dropout = 0.1         # dropout on hidden units
  c.optimizer.learning_rate = 2e-3  # Adam, cosine to 0
  c.num_steps = 1000            # about 48 epochs of 21 steps
  c.log_every = 100             # steps between progress lines
  c.eval_every = 500            # steps between test-set evaluations
  c.checkpoint_every = 500      # steps between checkpoints
  if args.tiny:
    brief_run(c, 20, logs=4, evals=2, checkpoints=2)  # 20 steps; log 4x, evaluate and checkpoint 2x
  return c
