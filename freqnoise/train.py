"""The one trainer: init -> jitted, sharded train step -> eval cadence -> checkpoints -> metrics.

`train_and_evaluate(config, workdir)` is what the CLI, the tests and the notebooks call. A run
restarted with the same workdir resumes from its latest checkpoint and ends with the same result as an
uninterrupted run (the batch of step s and every random draw are functions of (seed, s) only).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from typing import Any, Callable

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from freqnoise import sharding
from freqnoise.analog.noise import NoiseConfig, noise_from_config, sample_training_noise
from freqnoise.checkpoint import Checkpointer
from freqnoise.data import Splits, load_splits
from freqnoise.data.pipeline import ORDERS, TrainBatches, eval_batches, prefetch
from freqnoise.data.transforms import build_transform
from freqnoise.metrics import MetricWriter, Progress
from freqnoise.models import build_model
from freqnoise.optim import build_optimizer

STREAMS = ("params", "dropout", "noise", "gumbel")
# The collection holding a model's recurrent state carried across batches (lstm_lm(carry_state=True)
# writes it; config.data.order='sequential' feeds the batches it needs).
CARRY = "carry"
# Collections a model writes during a pass that are not state to carry over (see `loss_terms`).
TRANSIENT_COLLECTIONS = ("losses", "intermediates")


class NonFiniteLossError(FloatingPointError):
  """The training loss became NaN or Inf."""


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training; a pytree (checkpointed as a whole)."""

  step: jax.Array
  params: Any
  model_state: Any  # non-parameter collections: batch_stats, gate_stats, quantizer ranges, ...
  opt_state: Any


def stream_keys(key: jax.Array) -> dict[str, jax.Array]:
  """One independent key per named RNG stream."""
  return {name: jax.random.fold_in(key, i) for i, name in enumerate(STREAMS)}


def cross_entropy(logits: jax.Array, labels: jax.Array, smoothing: float = 0.0,
                  mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """Summed (optionally label-smoothed) cross-entropy and example count over any leading dims.

  logits [..., C], labels [...] int, mask [...] or a prefix of it (1 = counts).
  """
  num_classes = logits.shape[-1]
  targets = jax.nn.one_hot(labels, num_classes, dtype=logits.dtype)
  if smoothing:
    targets = optax.smooth_labels(targets, smoothing)
  losses = optax.softmax_cross_entropy(logits, targets)
  weights = jnp.ones_like(losses) if mask is None else jnp.broadcast_to(
      mask.reshape(mask.shape + (1,) * (losses.ndim - mask.ndim)), losses.shape)
  return jnp.sum(losses * weights), jnp.sum(weights)


def correct_count(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  hits = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  if mask is not None:
    hits = hits * mask.reshape(mask.shape + (1,) * (hits.ndim - mask.ndim))
  return jnp.sum(hits)


def loss_terms(collections: dict) -> jax.Array:
  """Sum of every scalar a module sowed into the 'losses' collection (e.g. gate sparsity)."""
  leaves = jax.tree.leaves(collections.get("losses", {}))
  return sum((jnp.sum(x) for x in leaves), jnp.zeros((), jnp.float32))


def split_state(variables: dict) -> tuple[Any, dict]:
  """(params, model_state) from a variables dict, dropping transient collections."""
  variables = dict(variables)
  params = variables.pop("params", {})
  return params, {k: v for k, v in variables.items() if k not in TRANSIENT_COLLECTIONS}


class Task:
  """What one config trains: data, input transform, train/eval models, optimizer. Built once.

  Everything here is derived from (config, workdir); `train_and_evaluate` and the evaluators use it.
  """

  def __init__(self, config: ml_collections.ConfigDict, workdir: str, splits: Splits | None = None):
    self.config = config
    self.workdir = workdir
    self.input_key = config.data.get("input_key", "image")
    self.label_key = config.data.get("label_key", "label")
    # Cheap checks first: names and fields, before any data is read.
    self.transform = build_transform(config.get("input"))
    self.train_noise = noise_from_config(config.get("train_noise"))
    self.eval_noise = noise_from_config(config.get("eval_noise"))
    # The eval noise's kind / power / layers even when its SNR is inf: the SNR-sweeping evaluators
    # (montecarlo) take the SNR from their grid and everything else from here.
    self.eval_noise_spec = noise_from_config(config.get("eval_noise"), keep_off=True) or NoiseConfig()
    self.order = config.data.get("order", "shuffled")
    if self.order not in ORDERS:
      raise ValueError(f"unknown config.data.order {self.order!r}; expected one of "
                       f"{', '.join(ORDERS)}")
    if config.model.get("carry_state", False) and self.order != "sequential":
      raise ValueError("config.model.carry_state needs config.data.order = 'sequential' (a state "
                       "carried into a shuffled batch would continue the wrong rows)")
    self.splits = splits if splits is not None else load_splits(config.data, seed=config.seed)
    for key in (self.input_key, self.label_key):
      if key not in self.splits.train.arrays:
        raise ValueError(f"data source {self.splits.name} has no field {key!r}; it has "
                         f"{sorted(self.splits.train.arrays)}")
    self.model = build_model(config.model, num_classes=self.splits.num_classes,
                             noise=self.train_noise)
    self.eval_model = self.model.clone(noise=self.eval_noise)
    spe = len(self.splits.train) // config.data.batch_size
    self.steps_per_epoch = spe
    self.num_steps = config.num_steps or config.get("num_epochs", 0) * spe
    if self.num_steps <= 0:
      raise ValueError("set config.num_steps or config.num_epochs to a positive number")
    self.tx = build_optimizer(config.optimizer, self.num_steps)
    self.stats = self._input_stats()
    self.mesh = sharding.make_mesh(config.get("num_devices", 0))
    sharding.check_batch_size(config.data.batch_size, self.mesh)
    sharding.check_batch_size(self.eval_batch_size, self.mesh, "eval_batch_size")
    self.stats_device = sharding.replicate({k: jnp.asarray(v) for k, v in self.stats.items()},
                                           self.mesh)

  @property
  def eval_batch_size(self) -> int:
    return self.config.data.get("eval_batch_size") or self.config.data.batch_size

  def _input_stats(self) -> dict[str, np.ndarray]:
    """Input statistics from the training split, saved in the workdir and reused on resume."""
    path = os.path.join(self.workdir, "input_stats.npz")
    if os.path.isfile(path):
      with np.load(path) as z:
        return {k: z[k] for k in z.files}
    stats = self.transform.fit(self.splits.train.arrays[self.input_key], seed=self.config.seed)
    if jax.process_index() == 0:
      os.makedirs(self.workdir, exist_ok=True)
      fd, tmp = tempfile.mkstemp(dir=self.workdir, suffix=".npz.tmp")
      with os.fdopen(fd, "wb") as f:
        np.savez(f, **stats)
      os.replace(tmp, path)
    return stats

  def init_state(self, key: jax.Array) -> TrainState:
    # A carried state is sized by the batch it is initialised with: use a whole training batch.
    rows = self.config.data.batch_size if self.order == "sequential" else 1
    sample = self.splits.train.arrays[self.input_key][:rows]
    x = self.transform(self.stats, jnp.asarray(sample))
    variables = self.model.init(stream_keys(key), x, train=False)
    params, model_state = split_state(variables)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state=model_state,
                      opt_state=self.tx.init(params))

  def apply(self, model: nn.Module, state: TrainState, batch: dict, stats: dict, rngs: dict, *,
            train: bool, params: Any = None):
    """Runs `model` on a batch; returns (outputs, updated mutable collections). Training updates
    every model-state collection; evaluation only a carried recurrent state."""
    x = self.transform(stats, batch[self.input_key])
    variables = {"params": state.params if params is None else params, **state.model_state}
    if train:
      mutable = [*state.model_state, *TRANSIENT_COLLECTIONS]
    else:
      mutable = [*TRANSIENT_COLLECTIONS, *([CARRY] if CARRY in state.model_state else [])]
    return model.apply(variables, x, train=train, rngs=rngs, mutable=mutable)


def make_train_step(task: Task) -> Callable:
  smoothing = task.config.get("label_smoothing", 0.0)

  def train_step(state: TrainState, batch: dict, stats: dict, root_key: jax.Array):
    if CARRY in state.model_state:  # every epoch starts from a zero recurrent state
      fresh = state.step % task.steps_per_epoch == 0
      carry = jax.tree.map(lambda c: jnp.where(fresh, jnp.zeros_like(c), c),
                           state.model_state[CARRY])
      state = state.replace(model_state={**state.model_state, CARRY: carry})
    rngs = stream_keys(jax.random.fold_in(root_key, state.step))
    noise = sample_training_noise(jax.random.fold_in(rngs["noise"], 0x5EED), task.train_noise)
    model = task.model if noise is task.train_noise else task.model.clone(noise=noise)
    labels = batch[task.label_key]

    def loss_fn(params):
      logits, updates = task.apply(model, state, batch, stats, rngs, train=True, params=params)
      ce_sum, count = cross_entropy(logits, labels, smoothing)
      extra = loss_terms(updates)
      return ce_sum / count + extra, (logits, updates, ce_sum / count, extra)

    grads, (logits, updates, ce, extra) = jax.grad(loss_fn, has_aux=True)(state.params)
    param_updates, opt_state = task.tx.update(grads, state.opt_state, state.params)
    new_state = state.replace(
        step=state.step + 1, params=optax.apply_updates(state.params, param_updates),
        model_state={k: updates.get(k, v) for k, v in state.model_state.items()},
        opt_state=opt_state)
    metrics = {"loss": ce + extra, "cross_entropy": ce,
               "accuracy": correct_count(logits, labels) / labels.size}
    return new_state, metrics

  return train_step


def make_eval_step(task: Task, model: nn.Module | None = None) -> Callable:
  """Sums of loss, correct predictions and examples over one padded batch (noise from eval_noise)."""
  model = task.eval_model if model is None else model

  def eval_step(state: TrainState, batch: dict, stats: dict, key: jax.Array) -> dict:
    logits, updates = task.apply(model, state, batch, stats, stream_keys(key), train=False)
    labels, mask = batch[task.label_key], batch["mask"]
    ce_sum, count = cross_entropy(logits, labels, 0.0, mask)
    out = {"loss_sum": ce_sum, "correct": correct_count(logits, labels, mask), "count": count}
    if CARRY in updates:  # the state the next batch of the split starts from
      out[CARRY] = updates[CARRY]
    return out

  return eval_step


def evaluate(task: Task, state: TrainState, eval_step: Callable, key: jax.Array,
             split: str = "test") -> dict[str, float]:
  """Loss and accuracy over a whole split (padded last batch masked out).

  A carried recurrent state starts at zero and is threaded through the split's batches in order."""
  ds = getattr(task.splits, split)
  totals = None
  if CARRY in state.model_state:
    zero = jax.tree.map(lambda c: jnp.zeros((task.eval_batch_size,) + c.shape[1:], c.dtype),
                        state.model_state[CARRY])
    state = state.replace(model_state={**state.model_state, CARRY: zero})
  for i, batch in enumerate(eval_batches(ds, task.eval_batch_size, process_index=jax.process_index(),
                                         process_count=jax.process_count())):
    out = eval_step(state, sharding.shard_batch(batch, task.mesh), task.stats_device,
                    jax.random.fold_in(key, i))
    if CARRY in out:
      state = state.replace(model_state={**state.model_state, CARRY: out.pop(CARRY)})
    totals = out if totals is None else jax.tree.map(jnp.add, totals, out)
  totals = jax.device_get(totals)
  loss = float(totals["loss_sum"] / totals["count"])
  result = {"loss": loss, "accuracy": float(totals["correct"] / totals["count"])}
  if task.config.get("report_perplexity", False):
    result["perplexity"] = math.exp(min(loss, 50.0))
  return result


def _check_finite(losses: list[tuple[int, jax.Array]]) -> None:
  values = np.asarray(jax.device_get([v for _, v in losses]))
  bad = np.flatnonzero(~np.isfinite(values))
  if bad.size:
    step, value = losses[bad[0]][0], values[bad[0]]
    raise NonFiniteLossError(f"training loss is {value} at step {step}; lower the learning rate, "
                             "check the input scaling, or enable optimizer.grad_clip_norm")


def _save_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  fd, tmp = tempfile.mkstemp(dir=workdir, suffix=".json.tmp")
  with os.fdopen(fd, "w") as f:
    f.write(config.to_json_best_effort(indent=2))
  os.replace(tmp, os.path.join(workdir, "config.json"))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       stop_after: int | None = None) -> dict[str, float]:
  """Trains `config` in `workdir` (resuming from its latest checkpoint) and returns final metrics.

  Args:
    config: an experiment config (see configs/).
    workdir: run folder: checkpoints/, metrics.jsonl, tensorboard/, config.json, input_stats.npz.
    stop_after: stop after this many steps in this call, as a preempted job would (checkpointing
      first); used by the resume test and by time-sliced jobs.

  Returns:
    `{'test_accuracy', 'test_loss', 'steps', 'train_steps_per_sec', ...}` at the last step reached,
    plus whatever the configured evaluators (`config.evals`) return.
  """
  if config.get("evals"):  # a bad evaluator block fails now, not after training
    from freqnoise.robust.evaluators import check_evaluators
    check_evaluators(config)
  sharding.maybe_initialize_distributed(config)
  is_writer = jax.process_index() == 0
  os.makedirs(workdir, exist_ok=True)
  task = Task(config, workdir)
  mesh = task.mesh
  if is_writer:
    _save_config(config, workdir)
    print(task.splits.summary(), flush=True)

  root_key = jax.random.PRNGKey(config.seed)
  init_key, train_key, eval_key = (jax.random.fold_in(root_key, i) for i in range(3))
  replicated = sharding.replicated(mesh)
  state = jax.jit(task.init_state, out_shardings=replicated)(init_key)
  # Every process takes part in saving: orbax coordinates multi-host writes itself.
  checkpointer = Checkpointer(workdir, every=config.checkpoint_every,
                              keep=config.get("keep_checkpoints", 3))
  state = checkpointer.restore(state)
  start = int(jax.device_get(state.step))
  if is_writer:
    n_params = sum(x.size for x in jax.tree.leaves(state.params))
    print(f"model {config.model.name}: {n_params:,} parameters; "
          f"{'resuming at step ' + str(start) if start else 'starting'} of {task.num_steps}", flush=True)

  batch_spec = sharding.batch_sharding(mesh)
  train_step = jax.jit(make_train_step(task), in_shardings=(replicated, batch_spec, replicated, replicated),
                       out_shardings=(replicated, replicated), donate_argnums=0)
  eval_step = jax.jit(make_eval_step(task))
  batches = TrainBatches(task.splits.train, config.data.batch_size, config.seed,
                         process_index=jax.process_index(), process_count=jax.process_count(),
                         augment=dict(config.data.get("augment", {})), order=task.order)
  writer = MetricWriter(workdir, enabled=is_writer, tensorboard=config.get("tensorboard", True))
  progress = Progress(task.num_steps, start)
  stop = task.num_steps if stop_after is None else min(task.num_steps, start + stop_after)
  log_every, eval_every = config.log_every, config.eval_every
  pending: list[tuple[int, dict]] = []
  result: dict[str, float] = {}
  last_eval = -1
  train_rate = float("nan")

  def flush_train_metrics(step: int) -> None:
    _check_finite([(s, m["loss"]) for s, m in pending])
    mean = jax.tree.map(lambda *xs: float(np.mean(xs)), *[m for _, m in jax.device_get(pending)])
    pending.clear()
    writer.write(step, "train", mean)
    if is_writer:
      print(progress.line(step, {k: mean[k] for k in ("loss", "accuracy")}), flush=True)

  step = start
  t_start = time.perf_counter()
  try:
    for batch in prefetch(lambda s: sharding.shard_batch(batches[s], mesh), start, stop):
      state, metrics = train_step(state, batch, task.stats_device, train_key)
      step += 1
      pending.append((step, metrics))
      if step == start + 1:
        jax.block_until_ready(metrics)
        progress.mark_compiled(step)
      if step == stop:  # steady-state rate of the training steps alone, before the final eval
        jax.block_until_ready(state)
        train_rate = progress.steps_per_sec(step)
      if step % log_every == 0 or step == stop:
        flush_train_metrics(step)
      if step % eval_every == 0 or step == task.num_steps:
        result = {f"test_{k}": v for k, v in evaluate(task, state, eval_step, eval_key).items()}
        last_eval = step
        writer.write(step, "test", {k[5:]: v for k, v in result.items()})
        if is_writer:
          print(f"  eval at step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()),
                flush=True)
      checkpointer.maybe_save(step, state, force=step == stop)
    train_wall = time.perf_counter() - t_start
    if last_eval != step:  # stopped early, or nothing left to train: report the model as it is
      result = {f"test_{k}": v for k, v in evaluate(task, state, eval_step, eval_key).items()}
    result.update(steps=step, train_seconds=train_wall, train_steps_per_sec=train_rate)
    if step == task.num_steps:
      result.update(run_evaluators(task, state, eval_key, writer, step))
  finally:  # let an in-flight async checkpoint commit (or fail) before the interpreter exits
    checkpointer.close()
    writer.close()
  if is_writer:
    with open(os.path.join(workdir, "final_metrics.json.tmp"), "w") as f:
      json.dump(result, f, indent=2)
    os.replace(os.path.join(workdir, "final_metrics.json.tmp"),
               os.path.join(workdir, "final_metrics.json"))
  return result


def run_evaluators(task: Task, state: TrainState, key: jax.Array, writer: MetricWriter,
                   step: int) -> dict[str, float]:
  """Runs the evaluators named in `config.evals` (see freqnoise.robust.evaluators)."""
  names = list(task.config.get("evals", ()) or ())
  if not names:
    return {}
  from freqnoise.robust.evaluators import run_evaluator
  out = {}
  for name in names:
    scalars = run_evaluator(name, task, state, key)
    writer.write(step, name, scalars)
    out.update({f"{name}/{k}": v for k, v in scalars.items()})
  return out
