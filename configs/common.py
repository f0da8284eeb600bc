"""Defaults shared by every experiment config; each config overrides what it changes.

Every field is commented here once; configs comment only the values they set.
"""

import ml_collections


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0                    # root PRNG seed: init, shuffling, dropout/noise/gumbel draws
  c.num_steps = 0               # training steps; 0 = use num_epochs
  c.num_epochs = 0              # epochs over the train split (steps = epochs * len(train) // batch)
  c.log_every = 100             # steps between progress lines / train metrics rows
  c.eval_every = 1000           # steps between test-set evaluations (and always at the end)
  c.checkpoint_every = 1000     # steps between checkpoints (and always at the end)
  c.keep_checkpoints = 3        # how many recent checkpoints to keep
  c.label_smoothing = 0.0       # label smoothing of the cross-entropy
  c.report_perplexity = False   # also report exp(test loss) (language models)
  c.tensorboard = True          # write TensorBoard event files next to metrics.jsonl
  c.num_devices = 0             # devices in the ('data',) mesh (0 = all; 1 = single-device run)
  c.num_processes = 1           # >1: jax.distributed.initialize() for multi-host data parallelism
  c.coordinator_address = ""    # host:port of process 0 ("" = from the cluster environment)
  c.process_id = -1             # this process's id (-1 = from the cluster environment)

  c.data = ml_collections.ConfigDict()
  c.data.source = "digits"      # digits | tfds:NAME | idx:DIR | imagefolder:DIR
  c.data.batch_size = 128       # global training batch (divisible by devices and processes)
  c.data.eval_batch_size = 0    # global eval batch (0 = batch_size)
  c.data.input_key = "image"    # field fed to the model
  c.data.label_key = "label"    # field holding integer targets
  c.data.train_split = "train"  # split names for tfds / imagefolder sources
  c.data.test_split = "test"
  c.data.data_dir = ""          # TFDS data_dir ("" = TFDS default)
  c.data.download = True        # let TFDS download_and_prepare when the dataset is absent
  c.data.image_size = 0         # imagefolder: resize to this square size (0 = keep)
  c.data.cache_dir = "~/.cache/freqnoise"  # imagefolder: decoded-array cache ("" = none)
  c.data.limit_train = 0        # keep only the first N training examples (0 = all)
  c.data.limit_test = 0         # keep only the first N test examples (0 = all)
  c.data.augment = ml_collections.ConfigDict()
  c.data.augment.crop_padding = 0  # random crop after zero padding by this many pixels (0 = off)
  c.data.augment.flip = False      # random horizontal flip

  c.input = ml_collections.ConfigDict()
  c.input.name = "spatial"      # input transform: spatial (pixels, normalised) | dct (paper 1)
  c.input.normalize = True      # per-channel mean/std from the train split

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "adam"     # sgd | adam | adamw
  c.optimizer.learning_rate = 1e-3  # peak learning rate
  c.optimizer.schedule = "cosine"   # constant | cosine | step
  c.optimizer.warmup_steps = 0  # linear warm-up steps
  c.optimizer.boundaries = (0.5, 0.75)  # step schedule: fractions of num_steps where lr decays
  c.optimizer.decay_factor = 0.1  # step schedule: multiplier at each boundary
  c.optimizer.momentum = 0.9    # sgd momentum
  c.optimizer.nesterov = False  # sgd Nesterov momentum
  c.optimizer.weight_decay = 0.0  # L2 (sgd/adam) or decoupled (adamw) weight decay
  c.optimizer.grad_clip_norm = 0.0  # clip the global gradient norm (0 = off)

  # Analog noise (DESIGN.md): None = noiseless products. Training and evaluation noise are
  # separate so a checkpoint never changes the eval noise silently.
  c.train_noise = ml_collections.config_dict.placeholder(dict)
  c.eval_noise = ml_collections.config_dict.placeholder(dict)
  c.evals = ()                  # extra evaluators run at the end (freqnoise.robust.evaluators)
  return c
