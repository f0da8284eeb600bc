"""The assembled run: data, input transform, models, optimizer, mesh, input statistics, and the one
`predict` that the trainer's eval, every evaluator, `freqnoise.evaluate` and the experiment scripts
call (raw input -> transform -> model with a given noise and key -> logits).

`Experiment(config, workdir)` is built once per run; it reads data and fits (or reloads) the input
statistics. Randomness follows `freqnoise.rng`.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from freqnoise import input_stats, objectives, rng, sharding
from freqnoise.detection import model as _maskrcnn, sources as detection_sources  # (they register)
from freqnoise.adversarial import training_settings
from freqnoise.analog.bits_schedule import check_bits_schedule, parse_bits_schedule, with_bits
from freqnoise.analog.noise import NoiseConfig, noise_from_config
from freqnoise.analog.product_quant import quant_from_config
from freqnoise.checkpoint import Checkpointer, CheckpointError
from freqnoise.data import Splits, load_splits
from freqnoise.data.pipeline import ORDERS
from freqnoise.data.streaming import PIPELINES
from freqnoise.data.transforms import build_transform, check_image_size
from freqnoise.models import build_model, check_input_grid, resnet
from freqnoise.optim import build_optimizer

# The collection holding a model's recurrent state carried across batches (lstm_lm(carry_state=True)
# writes it; config.data.order='sequential' feeds the batches it needs).
CARRY = "carry"
# Collections a model writes during a pass that are not state to carry over.
TRANSIENT_COLLECTIONS = ("losses", "intermediates")
# Not a Flax collection: the input statistics travel with the variables given to `predict`.
INPUT_STATS = "input_stats"


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training; a pytree (checkpointed as a whole)."""

  step: jax.Array
  params: Any
  model_state: Any  # non-parameter collections: batch_stats, gate_stats, quantizer ranges, carry
  opt_state: Any


def split_state(variables: dict) -> tuple[Any, dict]:
  """(params, model_state) from a variables dict, dropping transient collections."""
  variables = dict(variables)
  params = variables.pop("params", {})
  return params, {k: v for k, v in variables.items() if k not in TRANSIENT_COLLECTIONS}


def check_config(config: ml_collections.ConfigDict):
  """Every check of `config` that needs no data: input transform (and a DCT's image size), noise
  blocks, converters (config.quant), batch order and input pipeline, mesh and batch sizes, data
  source name (and reading JPEG coefficients, config.data.jpeg_coefficients; a detection source's
  sizes, and one for config.loss='maskrcnn'), model name and fields, optimizer and step counts.
  The trainer calls it before it touches the workdir, so a bad field costs no data loading and
  leaves no file.

  Returns (transform, train_noise, eval_noise, mesh, quant), which the Experiment keeps.
  """
  from freqnoise.data import check_source
  from freqnoise.data.jpeg_input import check_jpeg_coefficients
  transform = build_transform(config.get("input"))
  train_noise = noise_from_config(config.get("train_noise"))
  eval_noise = noise_from_config(config.get("eval_noise"))
  noise_from_config(config.get("eval_noise"), keep_off=True)
  quant = quant_from_config(config.get("quant"))  # DAC / Q_w / ADC: in training and evaluation
  check_bits_schedule(*_bits_schedule(config), quant, config.get("num_steps") or None)
  order = config.data.get("order", "shuffled")
  if order not in ORDERS:
    raise ValueError(f"unknown config.data.order {order!r}; expected one of {', '.join(ORDERS)}")
  pipeline = config.data.get("pipeline", "memory")
  if pipeline not in PIPELINES:
    raise ValueError(f"unknown config.data.pipeline {pipeline!r}; expected one of "
                     f"{', '.join(PIPELINES)}")
  workers = config.data.get("num_workers", 0)
  if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
    raise ValueError(f"config.data.num_workers must be a non-negative integer, got {workers!r}")
  if config.model.get("carry_state", False) and order != "sequential":
    raise ValueError("config.model.carry_state needs config.data.order = 'sequential' (a state "
                     "carried into a shuffled batch would continue the wrong rows)")
  mesh = sharding.make_mesh(config.get("num_devices", 0))
  sharding.check_batch_size(config.data.batch_size, mesh, "config.data.batch_size")
  sharding.check_batch_size(config.data.get("eval_batch_size") or config.data.batch_size, mesh,
                            "config.data.eval_batch_size")
  check_source(config.data)
  check_image_size(transform, config.data)  # a DCT's block multiple, before 50k images decode
  check_jpeg_coefficients(config)  # config.data.jpeg_coefficients: source, pipeline, input, augment
  model = build_model(config.model, num_classes=2, noise=train_noise, quant=quant)  # (any classes)
  check_input_grid(model, transform, config.model.name)  # a detector's image grid: input.upscale
  objective = objectives.name_of(config)
  objectives.lookup(objective)  # config.loss
  detection_sources.check_for_objective(config.data, objective)  # sizes; maskrcnn needs one
  if training_settings(config) is not None and objective != "cross_entropy":  # config.adversarial
    raise ValueError(f"config.adversarial (adversarial training) needs config.loss="
                     f"'cross_entropy', not {objective!r}")
  for field in ("log_every", "eval_every", "checkpoint_every", "keep_checkpoints"):
    value = config.get(field, 1)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
      raise ValueError(f"config.{field} must be a positive integer, got {value!r}")
  steps, epochs = config.get("num_steps", 0) or 0, config.get("num_epochs", 0) or 0
  if not (steps > 0 or epochs > 0):
    raise ValueError(f"set config.num_steps or config.num_epochs to a positive number (got "
                     f"num_steps={steps!r}, num_epochs={epochs!r})")
  # Name, learning rate, schedule fields; the warm-up against the real step count comes later.
  build_optimizer(config.optimizer, steps or 10**9, steps_per_epoch=1)
  return transform, train_noise, eval_noise, mesh, quant


class Experiment:
  """What one config trains and evaluates. Everything here derives from (config, workdir)."""

  def __init__(self, config: ml_collections.ConfigDict, workdir: str, splits: Splits | None = None):
    self.config = config
    self.workdir = workdir
    self.input_key = config.data.get("input_key", "image")
    self.label_key = config.data.get("label_key", "label")
    # Cheap checks first (names, fields, sizes): `check_config`, before any data is read.
    self.transform, self.train_noise, self.eval_noise, self.mesh, self.quant = check_config(config)
    # The eval noise's kind / power / layers even when its SNR is inf: the SNR-sweeping evaluators
    # take the SNR from their grid and everything else from here.
    self.eval_noise_spec = noise_from_config(config.get("eval_noise"), keep_off=True) or NoiseConfig()
    self.order = config.data.get("order", "shuffled")
    self.objective = objectives.name_of(config)  # what the train step minimises (config.loss)
    self.splits = splits if splits is not None else load_splits(config.data, seed=config.seed)
    fields = self.splits.train.fields()  # an ArrayDataset's arrays, or a lazy split's fields
    for key in (self.input_key, self.label_key):
      if key not in fields:
        raise ValueError(f"data source {self.splits.name} has no field {key!r}; it has "
                         f"{sorted(fields)}")
    # The converters are part of the model (quantization-aware training and every evaluation);
    # `forward` replaces only the noise.
    self.model = build_model(config.model, num_classes=self.splits.num_classes,
                             noise=self.train_noise, quant=self.quant)
    self.steps_per_epoch = len(self.splits.train) // config.data.batch_size
    self.num_steps = config.num_steps or config.get("num_epochs", 0) * self.steps_per_epoch
    if self.num_steps <= 0:
      raise ValueError(f"config.num_epochs={config.num_epochs} is less than one epoch of "
                       f"{self.steps_per_epoch} steps: set config.num_steps instead")
    # QAT from more bits down (config.quant.bits_schedule): the stages' training models, before
    # the configured bits; the trainer picks one by step, everything else uses `model`.
    self.bits_stages, preset = _bits_schedule(config)
    check_bits_schedule(self.bits_stages, preset, self.quant, self.num_steps)
    self.stage_models = tuple(self.model.clone(quant=with_bits(self.quant, bits))
                              for bits, _ in self.bits_stages)
    # Frozen parameters get no update: a model's own `frozen_mask`, else a ResNet's frozen stages.
    frozen = getattr(self.model, "frozen_mask", None) or resnet.frozen_mask(self.model)
    self.tx = build_optimizer(config.optimizer, self.num_steps, self.steps_per_epoch,
                              frozen=frozen)
    self.stats = input_stats.load_or_fit(self.transform, self.splits.train, self.input_key,
                                         config.seed, workdir)  # fitted, or this run's saved
    self.stats_device = sharding.replicate({k: jnp.asarray(v) for k, v in self.stats.items()},
                                           self.mesh)

  @property
  def eval_batch_size(self) -> int:
    return self.config.data.get("eval_batch_size") or self.config.data.batch_size

  @property
  def root_key(self) -> jax.Array:
    return rng.root_key(self.config.seed)

  def key(self, consumer: str) -> jax.Array:
    """The key of one consumer of this run's randomness (see freqnoise.rng)."""
    return rng.consumer_key(self.root_key, consumer)

  # ----------------------------------------------------------------------------- state
  def init_state(self, key: jax.Array, model: flax.linen.Module | None = None) -> TrainState:
    """A fresh state of this run's model (or of `model`, e.g. a variant without converters)."""
    # A carried state is sized by the batch it is initialised with: use a whole training batch.
    rows = self.config.data.batch_size if self.order == "sequential" else 1
    sample = self.splits.train.head(rows)[self.input_key]
    x = self.transform(self.stats, jnp.asarray(sample))
    variables = (model or self.model).init(rng.stream_keys(key), x, train=False)
    params, model_state = split_state(variables)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state=model_state,
                      opt_state=self.tx.init(params))

  def initial_state(self) -> TrainState:
    """A freshly initialised state, replicated over the mesh (the 'init' consumer key). A model
    with a data-dependent initialisation (`init_from_data(params, inputs_of)`, e.g. fast_cifar's
    patch whitening) then sets its parameters from `inputs_of(n)`: n transformed training inputs,
    the seeded sample `fit_sample(n, config.seed)` (host NumPy, outside jit)."""
    init = jax.jit(self.init_state, out_shardings=sharding.replicated(self.mesh))
    state = init(self.key("init"))
    from_data = getattr(self.model, "init_from_data", None)
    if from_data is None:
      return state
    def inputs_of(n: int) -> np.ndarray:
      sample = self.splits.train.fit_sample(min(n, len(self.splits.train)), self.config.seed)
      return np.asarray(self.transform(self.stats, jnp.asarray(sample[self.input_key])))
    params = from_data(jax.device_get(state.params), inputs_of)
    return jax.device_put(state.replace(params=params, opt_state=self.tx.init(params)),
                          sharding.replicated(self.mesh))

  def restore(self, workdir: str | None = None) -> TrainState:
    """The latest checkpoint of `workdir` (default: this run's) into this experiment's state."""
    workdir = self.workdir if workdir is None else workdir
    checkpointer = Checkpointer(workdir, every=1)
    try:
      if checkpointer.latest_step() is None:
        raise CheckpointError(f"no checkpoint in {checkpointer.directory}")
      state = checkpointer.restore(self.initial_state())
    finally:
      checkpointer.close()
    step = int(jax.device_get(state.step))
    if step > self.num_steps:
      raise CheckpointError(past_end_message(checkpointer.directory, step, self.num_steps))
    return state

  def variables(self, state: TrainState) -> dict:
    """What `predict` takes: params, the model's other collections and the input statistics."""
    return {"params": state.params, **state.model_state, INPUT_STATS: self.stats_device}

  # ----------------------------------------------------------------------------- forward
  def forward(self, variables: dict, x: jax.Array, *, train: bool, noise: NoiseConfig | None,
              rngs: dict, mutable: list | bool = False, model: flax.linen.Module | None = None,
              **model_kwargs):
    """Transform raw input `x`, then run `model` (default: the configured one; a bits-schedule
    stage is one of `stage_models`) with `noise` (None = noiseless); `model_kwargs` go to the
    model's call (a detector's `targets` or image `size`; the content `size` of letterboxed images
    also tells the transform where the padding is, which it sets to 0)."""
    variables = dict(variables)
    stats = variables.pop(INPUT_STATS)
    model = (self.model if model is None else model).clone(noise=noise)
    size = model_kwargs.get("size", (model_kwargs.get("targets") or {}).get("size"))
    x = self.transform(stats, x) if size is None else self.transform(stats, x, size=size)
    return model.apply(variables, x, train=train, rngs=rngs, mutable=mutable, **model_kwargs)

  def predict(self, variables: dict, x: jax.Array, *, noise: NoiseConfig | None, key: jax.Array,
              program_key: jax.Array | None = None, carry: Any = None,
              mask: jax.Array | None = None, **model_kwargs):
    """Evaluation-mode logits of raw inputs `x` [B, ...] under `noise`.

    Args:
      variables: `variables(state)`.
      noise: NoiseConfig (any SNR, traced or not) or None for exactly noiseless products.
      key: this call's key; the `noise`, `dropout` and `gumbel` streams derive from it.
      program_key: key of the programming weight noise (one chip); pass the same key for every
        batch of one evaluation pass. Default: derived from `key` (a new chip per call).
      carry: the recurrent state to start from (models with a `carry` collection); when given,
        returns `(logits, new_carry)`.
      mask: [B] 1 for real rows, 0 for padding; per-unit noise power counts only real rows.
      model_kwargs: to the model's call, as in `forward` (a detector's content `size`).
    Returns:
      logits [B, ..., C] (or `(logits, carry)` when `carry` is given).
    """
    if noise is not None and mask is not None and noise.power == "per_unit":
      noise = noise.replace(valid=mask)
    rngs = rng.stream_keys(key)
    if program_key is not None:
      rngs["program"] = program_key
    if carry is None:
      return self.forward(variables, x, train=False, noise=noise, rngs=rngs, **model_kwargs)
    logits, updates = self.forward({**variables, CARRY: carry}, x, train=False, noise=noise,
                                   rngs=rngs, mutable=[CARRY], **model_kwargs)
    return logits, updates[CARRY]


def _bits_schedule(config: ml_collections.ConfigDict) -> tuple[tuple, str]:
  q = config.get("quant") or {}
  return parse_bits_schedule(q.get("bits_schedule", "")), q.get("preset", "")


def past_end_message(directory: str, step: int, num_steps: int) -> str:
  return (f"checkpoint {directory} is at step {step}, past this config's {num_steps} training "
          "steps: nothing would be trained. Extend config.num_steps / num_epochs, or start a new "
          "--workdir (e.g. to fine-tune from it). Nothing was overwritten.")
