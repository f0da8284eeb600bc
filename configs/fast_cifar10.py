"""Fast CIFAR-10 (airbench94's recipe, K. Jordan, arXiv 2404.00498), every product analog: the
`fast_cifar` network (patch-whitening conv initialised from the training images, three conv
groups with shift-only BatchNorm and GELU), label smoothing 0.2, Nesterov SGD at batch 1024 with
airbench's triangle schedule and Lookahead, alternating flips and 2-pixel translations, and
test-time flip + translate in the test-set evaluation.

Settings (`setting=`):
  94: airbench94: widths 64/256/256, 9.9 epochs (476 steps of 1024), 0.36 PFLOP. airbench reaches
      94.01% on the original pixels; expect a point or two less on the JPEG copy.
  90: the cheaper one for many-seed experiments: airbench93's widths 64/128/128 (about half the
      FLOPs per image), 4 epochs (192 steps); roughly 90% expected, not yet measured here.

Commands (CPU; on a GPU machine with JAX's CUDA wheels the same command runs on the GPU):
  python -m freqnoise.main --config=configs/fast_cifar10.py:setting=94 --workdir=/tmp/fast/94_s0
  python -m freqnoise.main --config=configs/fast_cifar10.py:setting=90,snr=0 --workdir=/tmp/fast/90db0
Arguments (`configs/fast_cifar10.py:KEY=VALUE,...`): `setting` (94 or 90, default 94); `snr` =
training SNR in dB of every product (inf, 10, 5 or 0; default inf = clean); `epochs` (> 0
overrides the setting's); `montecarlo` = draws per SNR of a Monte Carlo evaluation over
{-5, 0, 5, 10, 20, inf} dB at the end (0 = none); `seed`; `tiny` = the seconds-long test version.
Runtime on 2 CPU cores: the 94 setting is ~1.5 h at ~70 GFLOP/s (estimate from its FLOPs).

airbench's hyperparameters are per 1024 examples of a summed loss, decoupled from the momentum
(lr 11.5, weight decay 0.0153, momentum 0.85, Nesterov); the trainer minimises the mean loss,
so the step is lr / (1 + 1/(1 - momentum)) = 1.5 and the coupled L2 weight decay wd / lr =
0.00133. BatchNorm shifts get airbench's 64x learning rate through the model's bias_scale (8).
What differs from airbench: the JPEG images; the whitening bias trains for the whole run
(airbench: its first 3 epochs); Lookahead averages the parameters but not the BatchNorm running
statistics; float32 throughout (airbench: float16).
"""

import math

import ml_collections

from configs.common import (NOISE_TRAIN_SNRS, base_config, brief_run, check_choice,
                            montecarlo_block, parse_arg, shared_data)

SETTINGS = ("94", "90")
# Per setting: conv group widths and training epochs (airbench94; airbench93's widths, 4 epochs).
_RECIPES = {"94": ((64, 256, 256), 9.9), "90": ((64, 128, 128), 4.0)}
_LR, _WD, _MOMENTUM = 11.5, 0.0153, 0.85  # airbench's, per 1024 examples of a summed loss
_TRAIN_IMAGES = 50_000


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Keys: setting (94 | 90), snr, epochs, montecarlo, seed, tiny; see the module docstring."""
  args = parse_arg(arg, setting="94", snr=math.inf, epochs=0.0, montecarlo=0, seed=0, tiny=False)
  check_choice("setting", args.setting, SETTINGS)
  check_choice("snr", args.snr, NOISE_TRAIN_SNRS)
  widths, epochs = _RECIPES[args.setting]
  epochs = args.epochs or epochs
  c = base_config()
  c.seed = args.seed                 # init, data order, draws (the `seed` argument)
  c.data.source = "imagefolder:" + shared_data("cifar10-jpeg")  # SPLIT/CLASS/*.jpg tarballs
  c.data.batch_size = 1024          # training images per step
  c.data.eval_batch_size = 2000     # test images per evaluation batch
  c.data.augment.crop_padding = 2   # random translation by up to 2 pixels ...
  c.data.augment.crop_reflect = True  # ... of the image padded with its reflection
  c.data.augment.alternating_flip = True  # mirrored by a fixed coin per image, inverted each epoch
  c.test_time_augment = "flip_translate"  # test-set eval: mirror + 1-pixel shifts (airbench's 2)
  c.model = ml_collections.ConfigDict()
  c.model.name = "fast_cifar"       # freqnoise/models/fast_cifar.py
  c.model.widths = widths           # channels of the three conv groups
  c.model.whiten_examples = 5000    # training images whose 2x2 patches set the whitening conv
  c.label_smoothing = 0.2           # as airbench
  c.optimizer.name = "sgd"          # coupled L2 weight decay, as PyTorch's SGD
  c.optimizer.nesterov = True       # Nesterov momentum
  c.optimizer.momentum = _MOMENTUM  # momentum
  c.optimizer.learning_rate = _LR / (1 + 1 / (1 - _MOMENTUM))  # 1.5 for the mean loss
  c.optimizer.weight_decay = _WD / _LR  # 0.00133 (x lr = airbench's decay per step)
  c.optimizer.schedule = "triangle"  # 0.2 -> 1 at 23% of the steps -> 0.07 at the end (x lr)
  c.optimizer.triangle = (0.2, 0.23, 0.07)  # (start factor, peak fraction of steps, end factor)
  c.optimizer.lookahead_every = 5   # Lookahead: pull to the slow weights every 5 steps ...
  c.optimizer.lookahead_start_epochs = 3 * epochs / 9.9  # ... from epoch 3 of airbench's 9.9
  c.optimizer.lookahead_decay = 0.95  # slow-weight decay per step (^5 per pull), ...
  c.optimizer.lookahead_power = 3.0  # ... times (step / steps)^3: averaging grows to the end
  steps_per_epoch = _TRAIN_IMAGES // c.data.batch_size  # 48
  c.num_steps = math.ceil(steps_per_epoch * epochs)  # 476 for 9.9 epochs
  c.log_every = steps_per_epoch // 4  # progress lines / train metric rows
  c.eval_every = 100_000            # the test set is evaluated once, at the end
  c.checkpoint_every = steps_per_epoch  # a checkpoint per epoch
  c.train_noise.snr_db = args.snr   # output noise on every product while training (inf = clean)
  c.train_noise.power_gradient = True  # gradient through the noise power, see NoiseConfig
  if args.montecarlo:
    c.evals.montecarlo = montecarlo_block(  # noisy passes after training
        num_draws=args.montecarlo, batch_size=1000)
  if args.tiny:
    shrink_to_tiny(c)
  return c


def shrink_to_tiny(c: ml_collections.ConfigDict) -> None:
  """The seconds-long test variant (tests point data.source at a small folder of 16x16 images):
  widths 4/8/8, batches of 8, two 4-step epochs with Lookahead pulls every 2 steps from step 3."""
  c.data.image_size = 16           # 16x16 images
  c.data.batch_size = 8            # small batches (32 training images: 4 steps per epoch)
  c.data.eval_batch_size = 16      # small evaluation batches
  c.model.widths = (4, 8, 8)       # narrow groups
  c.model.whiten_examples = 16     # whitening from 16 images
  c.optimizer.lookahead_every = 2  # pulls every 2 steps ...
  c.optimizer.lookahead_start_epochs = 0.5  # ... from step 3
  if "montecarlo" in c.evals:
    c.evals.montecarlo = montecarlo_block(num_draws=2, batch_size=16)  # 2 draws per SNR
  brief_run(c, 8, evals=2, checkpoints=2)  # 8 steps, evaluated and checkpointed at 4 and 8
