"""Noisy inference on CIFAR-10 (paper: "Noisy computations during inference"): a small 3-block CNN
whose every product is analog, trained clean or with 0 dB output noise, evaluated by Monte Carlo
over eval SNRs {-5, 0, 5, 10, 20, inf} dB with voting.

Data: ../shared/data/cifar10-jpeg, a JPEG (quality 75) re-encoding of CIFAR-10, so expect a point
or two below results on the original pixels.

Commands:
  python -m freqnoise.main --config=configs/noisy_cifar10.py:snr=0 --workdir=/tmp/noisy/cifar/snr0
  python -m freqnoise.main --config=configs/noisy_cifar10.py:snr=inf --workdir=/tmp/noisy/cifar/clean
  (or experiments/noisy_inference/sweep.sh cifar)
Arguments (`configs/noisy_cifar10.py:KEY=VALUE,...`): `snr` = training SNR in dB, one of inf, 10,
5, 0 (default 0; inf = clean); `tiny` = the seconds-long test version, e.g. `snr=inf,tiny`.
Runtime on 2 shared CPU cores: about 12 min per model (8 epochs of a 3 M multiply-add CNN) plus
~5 min of Monte Carlo. This is a CPU-sized stand-in for the paper's network, not a reproduction
of its 89.1% (see experiments/noisy_inference/README.md for what we measured).
`get_config("tiny")` runs in seconds on sklearn digits for tests.
"""

import math

import ml_collections

from configs.common import NOISE_TRAIN_SNRS as TRAIN_SNRS  # noqa: F401 (variants, for callers)
from configs.common import (base_config, montecarlo_block, noise_args, shared_data,
                            shrink_to_tiny_noisy_cnn)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Keys: snr (training SNR in dB: inf, 10, 5 or 0; default 0), tiny; see the module docstring."""
  args = noise_args(arg)
  train_snr = args.snr
  c = base_config()
  c.data.source = "imagefolder:" + shared_data("cifar10-jpeg")  # SPLIT/CLASS/*.jpg tarballs
  c.data.batch_size = 128           # training images per step
  c.data.eval_batch_size = 1000     # test images per evaluation batch
  c.data.augment.crop_padding = 4   # random 32x32 crops of the 4-pixel zero-padded image
  c.data.augment.flip = True        # random horizontal flips
  c.model = ml_collections.ConfigDict()
  c.model.name = "lenet"            # conv blocks -> dense layers (freqnoise.models)
  c.model.conv_features = (16, 32, 64)  # three 3x3 conv + 2x2 max-pool blocks (3 M mult-adds)
  c.model.kernel_size = 3           # conv kernel size
  c.model.dense_features = (128,)   # hidden dense widths
  c.model.dropout = 0.25 if math.isinf(train_snr) else 0.0  # noise already regularises
  c.optimizer.learning_rate = 2e-3  # Adam, cosine to 0
  c.num_epochs = 8                  # 3,120 steps of 128
  c.log_every = 100                 # steps between progress lines
  c.eval_every = 100_000            # the test set is evaluated once, at the end
  c.checkpoint_every = 500          # steps between checkpoints
  c.train_noise.snr_db = train_snr  # output noise on every product while training (inf = clean)
  c.train_noise.power_gradient = True  # gradient through the noise power, see NoiseConfig
  c.eval_noise.snr_db = 0.0         # plain eval at 0 dB; the grid is in c.evals.montecarlo
  # At the end of training: Monte Carlo over eval SNRs -5..20 dB and inf, 8 draws each, voting.
  c.evals.montecarlo = montecarlo_block()
  if args.tiny:
    shrink_to_tiny_noisy_cnn(c)
  return c
