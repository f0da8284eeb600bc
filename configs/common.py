"""Defaults shared by every experiment config; each config overrides what it changes.

Every field is commented here once; configs comment only the values they set.
"""

import ml_collections


def noise_block() -> ml_collections.ConfigDict:
  """A noise config block (freqnoise.analog.noise.NoiseConfig), noiseless until a field is set."""
  n = ml_collections.ConfigDict()
  n.snr_db = float("inf")       # output SNR in dB of every analog product (inf = no output noise)
  n.kind = "output"             # output (additive Gaussian, set by snr_db) | none
  n.power = "per_example"       # signal power P over a product's units per example | per_unit
  n.layers = "all"              # analog products: all | all_but_first | all_but_last | all_but_first_last
  n.weight_noise = "none"       # none | additive (sigma*max|W|*eps) | multiplicative (W*(1+sigma*eps))
  n.weight_sigma = 0.0          # weight-noise level sigma_w
  n.snr_db_range = ml_collections.config_dict.placeholder(tuple)  # (lo, hi): SNR ~ U per step
  n.power_gradient = False      # let the gradient see P (see NoiseConfig.power_gradient)
  return n


NOISE_TRAIN_SNRS = {"clean": float("inf"), "snr10": 10.0, "snr5": 5.0, "snr0": 0.0}


def noise_variant(arg: str | None) -> tuple[float, bool]:
  """(training SNR in dB, tiny?) from a noisy-inference variant: clean|snr10|snr5|snr0[_tiny]|tiny."""
  arg = arg or "snr0"
  name = "snr0" if arg == "tiny" else arg.removesuffix("_tiny")
  if name not in NOISE_TRAIN_SNRS:
    raise ValueError(f"unknown config variant {arg!r}; known: {', '.join(NOISE_TRAIN_SNRS)}, "
                     "tiny, <variant>_tiny")
  return NOISE_TRAIN_SNRS[name], arg.endswith("tiny")


def montecarlo_block(num_draws: int = 8, batch_size: int = 500) -> ml_collections.ConfigDict:
  """Settings of the 'montecarlo' evaluator (freqnoise.robust.evaluators)."""
  m = ml_collections.ConfigDict()
  m.snrs_db = (-5.0, 0.0, 5.0, 10.0, 20.0, float("inf"))  # eval SNR grid (dB)
  m.num_draws = num_draws        # noise draws per SNR; voting uses K = 1..num_draws
  m.draws_per_chunk = 4          # draws at once (bounds memory: SNRs x 4 x batch_size activations)
  m.batch_size = batch_size      # test images per Monte Carlo batch
  m.split = "test"               # split to evaluate
  m.limit = 0                    # 0 = the whole split
  m.output = "montecarlo.json"   # full arrays, in the workdir
  return m


def shrink_to_tiny_noisy_cnn(c: ml_collections.ConfigDict) -> None:
  """The seconds-long test variant of a noisy-inference CNN config: digits, 10 steps, 4 draws."""
  c.data.source = "digits"
  c.data.batch_size = 32
  c.data.eval_batch_size = 64
  c.data.augment.crop_padding = 0
  c.data.augment.flip = False
  c.model.conv_features = (4, 8)
  c.model.dense_features = (16,)
  c.num_epochs = 0
  c.num_steps = 10
  c.log_every = 5
  c.checkpoint_every = 10
  c.tensorboard = False
  c.montecarlo = montecarlo_block(num_draws=4, batch_size=128)


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
  c.data.order = "shuffled"     # training batches: shuffled per epoch | sequential (carried state)
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
  c.data.augment.resized_crop_min_scale = 0.0  # random resized crop: min area fraction (0 = off)

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

  # Analog noise of every product (DESIGN.md); SNR inf = noiseless. Training and evaluation noise
  # are separate blocks so a checkpoint never changes the eval noise silently.
  c.train_noise = noise_block()
  c.eval_noise = noise_block()
  c.evals = ()                  # extra evaluators run at the end (freqnoise.robust.evaluators)
  return c
