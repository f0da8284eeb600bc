"""Defaults shared by every experiment config; each config overrides what it changes.

Every field is commented here once; configs comment only the values they set. Config arguments
(`--config=configs/X.py:ARG`) are parsed one way, by `parse_arg`.
"""

import math
import os

import ml_collections

from freqnoise import adversarial
from freqnoise.analog import pcm, product_quant
from freqnoise.cli import dct_channels_field

_TRUE, _FALSE = ("true", "1"), ("false", "0")
# The checkout configs/ is installed from (`pip install -e .`); the datasets lie beside it.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shared_data(name: str) -> str:
  """The dataset folder `REPO_ROOT/../shared/data/NAME`, relative to the working directory: from
  the repository root, where the README's commands run, it is `../shared/data/NAME`, the text the
  recorded results and workdirs hold; from any other directory it names the same folder."""
  return os.path.relpath(os.path.join(REPO_ROOT, "..", "shared", "data", name))


def _describe(spec: dict) -> str:
  return ", ".join(f"{k} ({type(v).__name__}, default {v!r})" for k, v in spec.items())


def _convert(key: str, text: str | None, default, spec: dict):
  """`text` (None for a bare `key`) as the type of `default`."""
  kind = type(default)
  if kind not in (bool, int, float, str):
    raise TypeError(f"config argument {key!r}: default {default!r} must be bool, int, float or str")
  if kind is bool:
    word = "true" if text is None else text.lower()
    if word in _TRUE + _FALSE:
      return word in _TRUE
  elif text is None:
    raise ValueError(f"config argument {key!r} needs a value ({key}=...); known keys: "
                     f"{_describe(spec)}")
  else:
    try:
      return kind(text)  # float() reads inf and -inf
    except ValueError:
      pass
  raise ValueError(f"config argument {key}={text!r} cannot be read as {kind.__name__}; known keys: "
                   f"{_describe(spec)}")


def parse_arg(arg: str | None, **spec) -> ml_collections.ConfigDict:
  """The config argument `arg` (after the ':' of `--config=configs/X.py:ARG`) as a ConfigDict.

  `arg` is comma-separated `key=value` tokens; a bare `key` means `key=True`. Every key must be in
  `spec`, whose values are the defaults; a value is converted to its default's type (bool accepts
  true/false/1/0, float accepts inf). Example: `parse_arg("snr=inf,tiny", snr=0.0, tiny=False)`
  -> `{snr: inf, tiny: True}`. Unknown or repeated keys and unconvertible values raise ValueError
  naming the key and listing the known ones.
  """
  args = ml_collections.ConfigDict(spec)
  seen = set()
  for token in (arg or "").split(","):
    token = token.strip()
    if not token:
      continue
    key, eq, value = token.partition("=")
    key = key.strip()
    if key not in spec:
      raise ValueError(f"unknown config argument {key!r} in {arg!r}; known keys: {_describe(spec)}")
    if key in seen:
      raise ValueError(f"config argument {key!r} given twice in {arg!r}")
    seen.add(key)
    args[key] = _convert(key, value.strip() if eq else None, spec[key], spec)
  return args


def check_choice(key: str, value, choices) -> None:
  """Raises ValueError unless the parsed config argument `key=value` is one of `choices`."""
  if value not in choices:
    known = ", ".join(f"{c:g}" if isinstance(c, float) else str(c) for c in choices)
    raise ValueError(f"config argument {key}={value!r} is not one of: {known}")


def noise_block() -> ml_collections.ConfigDict:
  """A noise config block (freqnoise.analog.noise.NoiseConfig), noiseless until a field is set."""
  n = ml_collections.ConfigDict()
  n.snr_db = float("inf")       # output SNR in dB of every analog product (inf = no output noise)
  n.kind = "output"             # output (additive Gaussian, set by snr_db) | none
  n.power = "per_example"       # signal power P over a product's units per example | per_unit
  n.layers = "all"              # analog products: all | all_but_first | all_but_last | all_but_first_last
  n.weight_noise = "none"       # none | additive (sigma*max|W|*eps) | multiplicative (W*(1+sigma*eps))
                                # | pcm (aihwkit's PCM programming noise and drift, per tile)
  n.weight_sigma = 0.0          # weight-noise level sigma_w
  n.t_inference = 0.0           # pcm: seconds after programming (drift and 1/f read noise)
  # pcm: aihwkit's PCMLikeNoiseModel + GlobalDriftCompensation (freqnoise.analog.pcm.DEFAULTS)
  n.pcm = ml_collections.ConfigDict(pcm.DEFAULTS)
  n.snr_db_range = ml_collections.config_dict.placeholder(tuple)  # (lo, hi): SNR ~ U per step
  n.power_gradient = False      # let the gradient see P (see NoiseConfig.power_gradient)
  return n


# Training SNRs (dB) of the noisy-inference configs' variants: clean, 10, 5 and 0 dB.
NOISE_TRAIN_SNRS = (math.inf, 10.0, 5.0, 0.0)


def noise_args(arg: str | None) -> ml_collections.ConfigDict:
  """Arguments of a noisy-inference config: `snr` (training SNR in dB, one of NOISE_TRAIN_SNRS,
  default 0; inf = clean) and `tiny` (the seconds-long test version), e.g. `snr=inf,tiny`."""
  args = parse_arg(arg, snr=0.0, tiny=False)
  check_choice("snr", args.snr, NOISE_TRAIN_SNRS)
  return args


def montecarlo_block(num_draws: int = 8, batch_size: int = 500) -> ml_collections.ConfigDict:
  """A `config.evals` entry for the Monte Carlo evaluator: only what differs from its defaults
  (freqnoise/evaluators/montecarlo.py; split, limit and output keep theirs)."""
  m = ml_collections.ConfigDict()
  m.type = "montecarlo"          # registered evaluator that reads this block
  m.snrs_db = (-5.0, 0.0, 5.0, 10.0, 20.0, float("inf"))  # eval SNR grid (dB)
  m.num_draws = num_draws        # noise draws per SNR; voting uses K = 1..num_draws
  m.draws_per_chunk = 4          # draws at once (bounds memory: SNRs x 4 x batch_size activations)
  m.batch_size = batch_size      # test examples per Monte Carlo batch
  return m


def variant_input(variant: str) -> ml_collections.ConfigDict:
  """The frequency configs' input block: 'spatial...' -> normalised pixels; 'dctN' -> the N-channel
  preset of the block DCT; 'gate' -> all 192 channels (for the learned gate)."""
  block = ml_collections.ConfigDict()
  if variant.startswith("spatial"):
    block.name = "spatial"       # normalised pixels
    block.normalize = True       # per-channel mean/std from the train split
    return block
  block.name = "dct"             # 8x8 block DCT of YCbCr (freqnoise.freq)
  # preset size or a list of indices (--config.input.channels='[0,1,8]')
  block.channels = dct_channels_field(192 if variant == "gate" else int(variant[3:]))
  block.chroma = "444"           # full-resolution chroma (DCTNet's upscaled pipeline)
  block.pad = False              # image sides are multiples of 8
  block.normalize = True         # per-channel mean/std of the coefficients, train split
  return block


def adamw_cosine(c: ml_collections.ConfigDict, warmup_steps: int) -> None:
  """The frequency configs' optimizer: AdamW 2e-3, weight decay 5e-4, warm-up, cosine to 0."""
  c.optimizer.name = "adamw"         # decoupled weight decay
  c.optimizer.learning_rate = 2e-3   # peak rate after warm-up
  c.optimizer.schedule = "cosine"    # to 0 at the end
  c.optimizer.warmup_steps = warmup_steps  # linear warm-up
  c.optimizer.weight_decay = 5e-4    # decoupled weight decay


def shrink_to_tiny_freq(c: ml_collections.ConfigDict) -> None:
  """A frequency config's seconds-long test variant (tests point data.source at a small folder)."""
  c.data.image_size = 16           # 16x16 images (2x2 DCT blocks)
  if "width" in c.model:
    c.model.width = 4              # 4 channels at layer1
  c.model.gate_anneal_steps = 4    # anneal over the whole run
  c.optimizer.warmup_steps = 0     # no warm-up
  c.data.batch_size = 8            # small batches
  c.data.eval_batch_size = 16      # small evaluation batches ...
  c.data.limit_test = 32           # ... over 32 images
  brief_run(c, 4)                  # 4 steps, logged twice, evaluated and checkpointed at the end


def brief_run(c: ml_collections.ConfigDict, steps: int, *, logs: int = 2, evals: int = 1,
              checkpoints: int = 1) -> None:
  """The schedule of a seconds-long test variant: `steps` training steps, logged `logs` times,
  evaluated `evals` and checkpointed `checkpoints` times (evenly, the last at the end), no
  TensorBoard files."""
  c.num_epochs = 0                           # train by steps
  c.num_steps = steps                        # training steps
  c.log_every = steps // logs                # progress lines / train metric rows
  c.eval_every = steps // evals              # test-set evaluations
  c.checkpoint_every = steps // checkpoints  # checkpoints
  c.tensorboard = False                      # no event files in tests


def shrink_to_tiny_cnn(c: ml_collections.ConfigDict) -> None:
  """The seconds-long test variant of an image CNN config: digits, a 4/8-filter CNN, 10 steps."""
  c.data.source = "digits"      # sklearn's 8x8 digits, bundled (no download)
  c.data.batch_size = 32        # small batches
  c.data.eval_batch_size = 64   # small evaluation batches
  c.data.augment.crop_padding = 0  # no augmentation
  c.data.augment.flip = False      # (digits are not mirror-symmetric)
  c.model.conv_features = (4, 8)   # 4 and 8 filters
  c.model.dense_features = (16,)   # 16 hidden units
  brief_run(c, 10)              # 10 steps, logged twice, evaluated and checkpointed at the end


def shrink_to_tiny_noisy_cnn(c: ml_collections.ConfigDict) -> None:
  """The seconds-long test variant of a noisy-inference CNN config: digits, 10 steps, 4 draws."""
  shrink_to_tiny_cnn(c)
  c.evals.montecarlo = montecarlo_block(num_draws=4, batch_size=128)  # 4 draws per SNR


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
  c.num_processes = 1           # >1: jax.distributed for multi-host data parallelism (README)
  c.coordinator_address = ""    # host:port of process 0 ("" = from the cluster environment)
  c.process_id = -1             # this process's id (-1 = from the cluster environment)
  # seconds a process waits for the others (num_processes > 1): to join, and in one phase of the
  # run (a train step, an evaluation) while another process is elsewhere; then every process says
  # what it was doing and exits 124 (freqnoise.distributed)
  c.distributed_timeout = 300
  # A finished or interrupted run's workdir whose latest params/model state start this run (step
  # and optimizer state fresh; same model); "" = random init. Used only while this run has no
  # checkpoint of its own.
  c.init_from = ""

  c.data = ml_collections.ConfigDict()
  c.data.source = "digits"      # digits | tfds:NAME | idx:DIR | imagefolder:DIR | seq:... | ptb:DIR
  c.data.batch_size = 128       # global training batch (divisible by devices and processes)
  c.data.eval_batch_size = 0    # global eval batch (0 = batch_size)
  c.data.input_key = "image"    # field fed to the model
  c.data.label_key = "label"    # field holding integer targets
  c.data.order = "shuffled"     # training batches: shuffled per epoch | sequential (carried state)
  c.data.pipeline = "memory"    # training input: memory (TrainBatches) | grain (same, via Grain)
  c.data.num_workers = 0        # grain: worker processes reading examples (0 = this process)
  # imagefolder + grain: `image` holds each JPEG's DCT coefficients [H/8, W/8, 192], read without
  # decoding pixels (input.name='dct_coefficients'; flip only; freqnoise.data.jpeg_input)
  c.data.jpeg_coefficients = False
  c.data.train_split = "train"  # split names for tfds / imagefolder sources
  c.data.test_split = "test"    # (the split evaluated during and after training)
  c.data.data_dir = ""          # TFDS data_dir ("" = TFDS default)
  c.data.download = True        # let TFDS download_and_prepare when the dataset is absent
  c.data.image_size = 0         # imagefolder: resize to this square size (0 = keep)
  c.data.cache_dir = "~/.cache/freqnoise"  # imagefolder: decoded-array cache ("" = none)
  c.data.limit_train = 0        # keep N training examples, a seeded sample of the split (0 = all)
  c.data.limit_test = 0         # keep N test examples, a seeded sample of the split (0 = all)
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
  c.optimizer.schedule = "cosine"   # constant | cosine | step | exponential
  c.optimizer.warmup_steps = 0  # linear warm-up steps
  c.optimizer.boundaries = (0.5, 0.75)  # step schedule: fractions of num_steps where lr decays
  c.optimizer.decay_factor = 0.1  # step / exponential schedule: lr multiplier at each decay
  c.optimizer.decay_begin_epochs = 1.0  # exponential: the first decay comes after this many epochs
  c.optimizer.decay_every_epochs = 1.0  # exponential: then one decay every this many epochs
  c.optimizer.momentum = 0.9    # sgd momentum (0 = plain SGD)
  c.optimizer.nesterov = False  # sgd Nesterov momentum
  c.optimizer.weight_decay = 0.0  # L2 (sgd/adam) or decoupled (adamw) weight decay
  c.optimizer.grad_clip_norm = 0.0  # clip the global gradient norm (0 = off)

  # PGD adversarial training (Madry et al.): the fields and their meaning are
  # freqnoise.adversarial.DEFAULTS; epsilon 0 = off.
  c.adversarial = ml_collections.ConfigDict(adversarial.DEFAULTS)
  # random_start None = the method decides (PGD yes, FGSM no); typed so the CLI can set it.
  c.adversarial.random_start = ml_collections.config_dict.placeholder(bool)

  # Converters of every analog product (paper 4): DAC, weight quantizer, ADC and ADC noise, in
  # training (quantization-aware, straight-through) and every evaluation alike. The fields and
  # their meaning are freqnoise.analog.product_quant.DEFAULTS, and AIHWKIT_DEFAULTS for
  # quant.aihwkit (used with quant.preset='aihwkit').
  c.quant = ml_collections.ConfigDict(product_quant.DEFAULTS)  # off: every *_bits 0
  c.quant.aihwkit = ml_collections.ConfigDict(product_quant.AIHWKIT_DEFAULTS)  # its IOParameters

  # Analog noise of every product (DESIGN.md); SNR inf = noiseless. Training and evaluation noise
  # are separate blocks so a checkpoint never changes the eval noise silently.
  c.train_noise = noise_block()  # noise while training (Deep Noise Injection, noise-aware training)
  c.eval_noise = noise_block()   # noise of the evaluations (kind/power/layers also for Monte Carlo)
  # Extra evaluators run at the end of training: name -> settings with a `type` (the registered
  # evaluator) and the fields that differ from its defaults; empty = none.
  c.evals = ml_collections.ConfigDict()
  return c


def override(config: ml_collections.ConfigDict, assignment: str) -> None:
  """Applies one `a.b.c=value` override (the value read as a Python literal when it is one, else
  kept as a string), as the experiment scripts' `--set` flags give them."""
  import ast
  key, sep, value = assignment.partition("=")
  if not sep or not key:
    raise ValueError(f"an override is key=value, got {assignment!r}")
  *path, leaf = key.split(".")
  node = config
  for p in path:
    node = node[p]
  try:
    value = ast.literal_eval(value)
  except (ValueError, SyntaxError):
    pass
  node[leaf] = value
