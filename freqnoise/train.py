"""The one trainer: init -> jitted, sharded train step -> eval cadence -> checkpoints -> metrics.

`train_and_evaluate(config, workdir)` is what the CLI, the tests and the notebooks call. A run
restarted with the same workdir resumes from its latest checkpoint and ends with the same result as
an uninterrupted run (the batch of step s and every random draw are functions of (seed, s) only).
What a run is (data, models, statistics, `predict`) lives in `freqnoise.experiment`; evaluation in
`freqnoise.evaluators`; randomness follows `freqnoise.rng`; adversarial training inputs in
`freqnoise.adversarial`; a bits schedule's stages in `freqnoise.analog.bits_schedule`.
"""

from __future__ import annotations

import functools
import time
from typing import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from freqnoise import (distributed, evaluators, final_metrics, objectives, rng, sharding,
                       workdir as run_folder)
from freqnoise.adversarial import training_inputs, training_settings
from freqnoise.analog import bits_schedule
from freqnoise.init_from import initialize_from
from freqnoise.analog.noise import sample_training_noise
from freqnoise.checkpoint import Checkpointer, CheckpointError
from freqnoise.data.pipeline import TrainBatches, prefetch
from freqnoise.data.streaming import StreamingBatches
from freqnoise.experiment import (CARRY, INPUT_STATS, TRANSIENT_COLLECTIONS, Experiment, TrainState,
                                  check_config, past_end_message)
from freqnoise.metrics import MetricWriter, Progress


class NonFiniteLossError(FloatingPointError):
  """The training loss became NaN or Inf."""


def make_train_step(experiment: Experiment) -> Callable:
  objective = objectives.lookup(experiment.objective)
  settings = {"label_key": experiment.label_key,
              "label_smoothing": experiment.config.get("label_smoothing", 0.0)}
  adversarial = training_settings(experiment.config)  # None: clean training

  def train_step(state: TrainState, batch: dict, stats: dict, train_key: jax.Array):
    model_state = state.model_state
    if CARRY in model_state:  # every epoch starts from a zero recurrent state
      fresh = state.step % experiment.steps_per_epoch == 0
      model_state = {**model_state, CARRY: jax.tree.map(
          lambda c: jnp.where(fresh, jnp.zeros_like(c), c), model_state[CARRY])}
    step_key = jax.random.fold_in(train_key, state.step)
    rngs = rng.stream_keys(step_key)
    noise = sample_training_noise(rng.named_key(rngs["noise"], "snr"), experiment.train_noise)

    def grads_of(params, model=None):  # model: a bits-schedule stage's (None: the configured one)
      variables = {"params": params, **model_state, INPUT_STATS: stats}
      x = training_inputs(experiment, adversarial, variables, batch, noise, step_key, model)

      def loss_fn(params):
        forward = functools.partial(experiment.forward, {**variables, "params": params},
                                    train=True, noise=noise, rngs=rngs, model=model,
                                    mutable=[*model_state, *TRANSIENT_COLLECTIONS])
        loss, metrics, updates = objective(forward, batch, x, settings)
        return loss, (metrics, updates)

      return jax.grad(loss_fn, has_aux=True)(params)

    grads, (metrics, updates) = bits_schedule.by_stage(
        state.step, experiment.bits_stages, experiment.stage_models, grads_of, state.params)
    param_updates, opt_state = experiment.tx.update(grads, state.opt_state, state.params)
    new_state = state.replace(
        step=state.step + 1, params=optax.apply_updates(state.params, param_updates),
        model_state={k: updates.get(k, v) for k, v in model_state.items()}, opt_state=opt_state)
    return new_state, metrics

  return train_step


def _check_finite(losses: list[tuple[int, jax.Array]]) -> None:
  values = np.asarray(jax.device_get([v for _, v in losses]))
  bad = np.flatnonzero(~np.isfinite(values))
  if bad.size:
    step, value = losses[bad[0]][0], values[bad[0]]
    raise NonFiniteLossError(f"training loss is {value} at step {step}; lower the learning rate, "
                             "check the input scaling, or enable optimizer.grad_clip_norm")


@jax.jit
def _all_finite(tree) -> jax.Array:
  """Whether every floating-point leaf of `tree` is finite: one reduction, one bool back."""
  leaves = [jnp.isfinite(x).all() for x in jax.tree.leaves(tree)
            if jnp.issubdtype(x.dtype, jnp.inexact)]
  return jnp.stack(leaves).all() if leaves else jnp.bool_(True)


def _check_finite_state(state: TrainState, step: int) -> None:
  if not bool(_all_finite({"params": state.params, "model_state": state.model_state})):
    raise NonFiniteLossError(f"the parameters or model state are not finite after step {step} "
                             "(its training loss was finite); nothing was checkpointed at this "
                             "step. Lower the learning rate, check the input scaling, or enable "
                             "optimizer.grad_clip_norm")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       stop_after: int | None = None) -> dict[str, float]:
  """Trains `config` in `workdir` (resuming from its latest checkpoint) and returns final metrics.

  Args:
    config: an experiment config (see configs/).
    workdir: run folder: checkpoints/, metrics.jsonl, tensorboard/, config.json, fingerprint.txt,
      input_stats.npz, and .lock while a run uses it. Resuming it under a config that differs
      beyond `freqnoise.workdir.SAFE_FIELDS` is a `ConfigMismatchError`; `config.init_from`
      starts a new workdir from another run's latest parameters instead.
    stop_after: stop after this many steps in this call, as a preempted job would (checkpointing
      first); used by the resume test and by time-sliced jobs.

  Returns:
    `{'test_accuracy', 'test_loss', 'steps', 'train_steps_per_sec', ...}` at the last step reached,
    plus `'<name>/<metric>'` per `config.evals` entry; a finished run's, as stored (final_metrics).
  """
  evaluators.check_config(config)  # a bad evaluator block fails now, not after training
  distributed.initialize(config)  # (its checks, e.g. batch / num_processes, run before joining)
  check_config(config)  # model, optimizer, sizes, source: before any data is read or file written
  # The lock and the config check come before anything is written (see freqnoise.workdir).
  with run_folder.claim(workdir, config):
    return _train(config, workdir, stop_after)


def _train(config: ml_collections.ConfigDict, workdir: str,
           stop_after: int | None) -> dict[str, float]:
  is_writer = distributed.is_writer()  # only process 0 writes logs, metrics and results
  experiment = Experiment(config, workdir)
  mesh = experiment.mesh
  if is_writer:
    print(experiment.splits.summary(), flush=True)

  state = experiment.initial_state()
  # Every process takes part in saving: orbax coordinates multi-host writes itself.
  checkpointer = Checkpointer(workdir, every=config.checkpoint_every,
                              keep=config.get("keep_checkpoints", 3))
  try:
    if checkpointer.latest_step() is None and config.get("init_from"):
      state = initialize_from(experiment, state, config.init_from)
      if is_writer:
        print(f"initialised from the latest checkpoint of {config.init_from}", flush=True)
    state = checkpointer.restore(state)
    start = int(jax.device_get(state.step))
    if start > experiment.num_steps:
      raise CheckpointError(past_end_message(checkpointer.directory, start, experiment.num_steps))
  except BaseException:
    checkpointer.close()
    raise
  if saved := start == experiment.num_steps and final_metrics.stored(workdir, start):
    checkpointer.close()  # a finished run's result stands: returned as stored, never rewritten
    return final_metrics.of_finished_run(experiment, state, workdir, saved)
  if is_writer:
    n_params = sum(x.size for x in jax.tree.leaves(state.params))
    print(f"model {config.model.name}: {n_params:,} parameters; "
          f"{'resuming at step ' + str(start) if start else 'starting'} of {experiment.num_steps}",
          flush=True)
    if experiment.bits_stages:
      print(bits_schedule.describe(experiment.bits_stages), flush=True)
    print(run_folder.results_note(workdir, config), flush=True)

  replicated = sharding.replicated(mesh)
  train_step = jax.jit(make_train_step(experiment),
                       in_shardings=(replicated, sharding.batch_sharding(mesh), replicated,
                                     replicated),
                       out_shardings=(replicated, replicated), donate_argnums=0)
  split_eval = evaluators.split_evaluator(experiment)
  slicing = dict(process_index=jax.process_index(), process_count=jax.process_count(),
                 augment=dict(config.data.get("augment", {})), order=experiment.order)
  if config.data.get("pipeline", "memory") == "grain":  # the same batches, read through Grain
    batches = StreamingBatches(experiment.splits.train, config.data.batch_size, config.seed,
                               num_workers=config.data.get("num_workers", 0),
                               coefficients=config.data.get("jpeg_coefficients", False), **slicing)
  else:
    batches = TrainBatches(experiment.splits.train, config.data.batch_size, config.seed, **slicing)
  # from `start`: rows a killed run logged after its last checkpoint are logged again by this one
  writer = MetricWriter(workdir, enabled=is_writer, tensorboard=config.get("tensorboard", True),
                        resume_step=start)
  progress = Progress(experiment.num_steps, start)
  num_steps = experiment.num_steps
  stop = num_steps if stop_after is None else min(num_steps, start + stop_after)
  train_key = experiment.key("train")
  pending: list[tuple[int, dict]] = []  # (step, metrics) not logged yet
  checked = 0  # how many of `pending` have a finite loss, checked before a checkpoint
  result: dict[str, float] = {}
  last_eval = -1
  train_rate = float("nan")

  def evaluate_test(step: int) -> dict[str, float]:
    jax.block_until_ready(state)  # the training steps in flight are not eval time
    distributed.set_phase("evaluation of the test split at step", step)
    t0 = time.perf_counter()
    scores = {f"test_{k}": v for k, v in split_eval(state, "test").items()}
    progress.exclude(time.perf_counter() - t0)
    writer.write(step, "test", {k[5:]: v for k, v in scores.items()})
    if is_writer:
      print(f"  eval at step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()),
            flush=True)
    return scores

  step = start
  t_start = time.perf_counter()
  try:
    for batch in prefetch(lambda s: sharding.shard_batch(batches[s], mesh), start, stop):
      distributed.set_phase("train step", step + 1, bounded=True)  # (watchdog of several processes)
      state, metrics = train_step(state, batch, experiment.stats_device, train_key)
      step += 1
      pending.append((step, metrics))
      if step == start + 1:
        jax.block_until_ready(metrics)
        progress.mark_compiled(step)
      if step == stop:  # steady-state rate of the training steps alone, before the final eval
        jax.block_until_ready(state)
        train_rate = progress.steps_per_sec(step)
      if step % config.log_every == 0 or step == stop:
        _check_finite([(s, m["loss"]) for s, m in pending[checked:]])
        mean = jax.tree.map(lambda *xs: float(np.mean(xs)),
                            *[m for _, m in jax.device_get(pending)])
        pending.clear()
        checked = 0
        writer.write(step, "train", mean)
        if is_writer:
          shown = ("loss", "accuracy") if "accuracy" in mean else tuple(mean)  # a detector's losses
          print(progress.line(step, {k: mean[k] for k in shown}), flush=True)
      if step % config.eval_every == 0 or step == num_steps:
        result, last_eval = evaluate_test(step), step
      if checkpointer.due(step, force=step == stop):  # a NaN state is never saved (nor resumed)
        _check_finite([(s, m["loss"]) for s, m in pending[checked:]])
        checked = len(pending)
        _check_finite_state(state, step)  # (waits for the state: what follows is save time)
        t0 = time.perf_counter()
        distributed.set_phase("checkpoint save at step", step)
        checkpointer.maybe_save(step, state, force=step == stop)
        progress.exclude(time.perf_counter() - t0)
    train_wall = time.perf_counter() - t_start
    if last_eval != step:  # stopped early, or nothing left to train: report the model as it is
      result = evaluate_test(step)
    result.update(steps=step, train_seconds=train_wall, train_steps_per_sec=train_rate)
    if step == num_steps:
      distributed.set_phase("evaluators of config.evals after step", step)
      result.update(evaluators.run_configured(experiment, state, writer, step))
  finally:  # let an in-flight async checkpoint commit (or fail) before the interpreter exits
    distributed.set_phase("finishing the last checkpoint at step", step)
    checkpointer.close()
    writer.close()
  if is_writer:
    final_metrics.write(workdir, result)
    print(run_folder.results_note(workdir, config, done=True), flush=True)
  return result

