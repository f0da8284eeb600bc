"""Noisy inference on MNIST (paper: "Noisy computations during inference"): LeNet-style CNN whose
every product is analog, trained clean or with output noise, then evaluated by Monte Carlo over
eval SNRs {-5, 0, 5, 10, 20, inf} dB with majority / mean-probability voting.

Commands (one per training SNR; `snr=inf` = clean):
  python -m freqnoise.main --config=configs/noisy_mnist.py:snr=0 --workdir=/tmp/noisy/mnist_snr0
  python -m freqnoise.main --config=configs/noisy_mnist.py:snr=inf --workdir=/tmp/noisy/mnist_clean
  (or all four: experiments/noisy_inference/sweep.sh mnist)
Arguments (`configs/noisy_mnist.py:KEY=VALUE,...`): `snr` = training SNR in dB, one of inf, 10, 5,
0 (default 0); `tiny` = the seconds-long test version, e.g. `snr=inf,tiny`.
Runtime on 2 CPU cores: about 23 min per training SNR (20 epochs, 7 steps/s with another job
running) plus a few minutes of Monte Carlo (8 draws x 6 SNRs x 10k test images).
Expected (see experiments/noisy_inference/README.md for our measured numbers): at eval SNR 0 dB the
clean-trained model collapses; the 0 dB noise-trained model votes to ~99% over 8-32 passes.
`get_config("tiny")` is a seconds-long version on sklearn digits for tests.
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
  c.data.source = "idx:" + shared_data("mnist")  # the original IDX files (or tfds:mnist)
  c.data.batch_size = 128         # training images per step
  c.data.eval_batch_size = 1000   # test images per evaluation batch
  c.model = ml_collections.ConfigDict()
  c.model.name = "lenet"          # conv blocks -> dense layers (freqnoise.models)
  # A quarter of the classic (32, 64, 512) LeNet's conv multiply-adds, so the Monte Carlo grid fits
  # in minutes on 2 CPU cores. Average pooling and 512 hidden units: under 0 dB noise on every
  # product they beat max pooling and 128 units (experiments/noisy_inference/README.md, "What
  # moved us from 97.1% to 99.1%").
  c.model.conv_features = (16, 32)  # filters of the two 5x5 conv blocks
  c.model.kernel_size = 5           # conv kernel size
  c.model.dense_features = (512,)   # hidden dense widths
  c.model.pool = "avg"              # 2x2 pooling after each conv: max | avg
  # Output noise already regularises a noise-trained model; dropout only for the clean one.
  c.model.dropout = 0.25 if math.isinf(train_snr) else 0.0
  c.optimizer.learning_rate = 1e-3  # Adam, cosine to 0
  c.num_epochs = 20                 # 9,360 steps of 128
  c.log_every = 100                 # steps between progress lines
  c.eval_every = 100_000            # the test set is evaluated once, at the end
  c.checkpoint_every = 500          # steps between checkpoints
  c.train_noise.snr_db = train_snr  # output noise on every product while training (inf = clean)
  c.train_noise.power_gradient = True  # gradient through the noise power, see NoiseConfig
  # Evaluation noise (kind/power/layers used by the Monte Carlo grid; snr_db for the plain eval).
  c.eval_noise.snr_db = 0.0         # plain eval at 0 dB; the grid is in c.evals.montecarlo
  # At the end of training: Monte Carlo over eval SNRs -5..20 dB and inf, 8 draws each, voting.
  c.evals.montecarlo = montecarlo_block()
  if args.tiny:
    shrink_to_tiny_noisy_cnn(c)
  return c
