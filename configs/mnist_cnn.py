"""LeNet-style CNN on MNIST (28x28).

Commands:
  # TFDS (needs `tfds build mnist` once, or network):
  python -m freqnoise.main --config=configs/mnist_cnn.py --workdir=/tmp/mnist_cnn
  # the original IDX files, e.g. ../shared/data/mnist:
  python -m freqnoise.main --config=configs/mnist_cnn.py --workdir=/tmp/mnist_cnn \
      --config.data.source=idx:../shared/data/mnist
Runtime: about 10 min on 2 CPU cores (3 epochs, batch 128).
Expected: test accuracy >= 99.0% (we measured 99.2%; see the README).
Arguments (`configs/mnist_cnn.py:KEY=VALUE,...`): `tiny` is a 10-step, 4-filter version for tests
(`get_config("tiny")`; point data.source at small data).
"""

import ml_collections

from configs.common import base_config, brief_run, parse_arg


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Keys: tiny; see the module docstring."""
  args = parse_arg(arg, tiny=False)
  c = base_config()
  c.data.source = "tfds:mnist"      # 60k train / 10k test 28x28 digits
  c.data.batch_size = 128           # training images per step
  c.data.eval_batch_size = 1000     # test images per evaluation batch
  c.model = ml_collections.ConfigDict()
  c.model.name = "lenet"            # conv blocks -> dense layers (freqnoise.models)
  c.model.conv_features = (32, 64)  # filters of the two 5x5 conv blocks
  c.model.kernel_size = 5           # conv kernel size
  c.model.dense_features = (512,)   # hidden dense widths
  c.model.dropout = 0.25            # dropout on the dense hidden units
  c.optimizer.learning_rate = 1e-3  # Adam, cosine to 0
  c.num_epochs = 3                  # 1,404 steps of 128
  c.log_every = 100                 # steps between progress lines
  c.eval_every = 500                # steps between test-set evaluations
  c.checkpoint_every = 500          # steps between checkpoints
  if args.tiny:
    c.model.conv_features = (4, 8)  # 4 and 8 filters
    c.model.dense_features = (16,)  # 16 hidden units
    c.data.batch_size = 8           # small batches
    c.data.eval_batch_size = 16     # small evaluation batches ...
    c.data.limit_test = 40          # ... over 40 test images
    brief_run(c, 10, checkpoints=2)  # 10 steps, logged and checkpointed twice, evaluated at the end
  return c
