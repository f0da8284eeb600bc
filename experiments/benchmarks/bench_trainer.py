"""Trainer overhead: steps/s of `train_and_evaluate` vs a minimal hand-written jitted loop.

Both train the same model with the same optimizer and batch size; the peer loop keeps one batch on
the device and does nothing but `state = step(state, batch)`. Ours also gathers a shuffled batch per
step on the host, shards it, accumulates metrics and checks them for NaN. Runs alternate (ours,
peer, ours, peer, ...) so a busy machine hurts both alike; the table gives medians.

  python experiments/benchmarks/bench_trainer.py                      # MNIST LeNet + digits MLP
  python experiments/benchmarks/bench_trainer.py --steps=300 --repeats=3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402

from configs import digits_mlp, mnist_cnn  # noqa: E402
from freqnoise.experiment import Experiment  # noqa: E402
from freqnoise.losses import cross_entropy  # noqa: E402
from freqnoise.rng import stream_keys  # noqa: E402
from freqnoise.train import train_and_evaluate  # noqa: E402


def ours(config, steps: int) -> float:
  config.num_epochs, config.num_steps = 0, steps
  config.eval_every = config.checkpoint_every = 10 * steps  # only the final eval/checkpoint
  config.log_every = 50
  config.tensorboard = False
  with tempfile.TemporaryDirectory() as workdir:
    return train_and_evaluate(config, workdir)["train_steps_per_sec"]


def peer(config, steps: int) -> float:
  """The hand-written loop: same model, optimizer, batch size; one device-resident batch."""
  config.num_epochs, config.num_steps = 0, steps
  with tempfile.TemporaryDirectory() as workdir:
    task = Experiment(config, workdir)
  state = task.init_state(jax.random.PRNGKey(0))
  params, opt_state = state.params, state.opt_state
  n = config.data.batch_size
  x = task.transform(task.stats, jnp.asarray(task.splits.train.arrays["image"][:n]))
  y = jnp.asarray(task.splits.train.arrays["label"][:n])

  @jax.jit
  def step(params, opt_state, key):
    def loss_fn(p):
      logits = task.model.apply({"params": p}, x, train=True, rngs=stream_keys(key))
      total, count = cross_entropy(logits, y)
      return total / count
    grads = jax.grad(loss_fn)(params)
    updates, opt_state = task.tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  key = jax.random.PRNGKey(1)
  params, opt_state = step(params, opt_state, key)  # compile
  jax.block_until_ready(params)
  t0 = time.perf_counter()
  for i in range(steps - 1):
    params, opt_state = step(params, opt_state, jax.random.fold_in(key, i))
  jax.block_until_ready(params)
  return (steps - 1) / (time.perf_counter() - t0)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--mnist", default="../shared/data/mnist", help="folder with the MNIST IDX files")
  args = parser.parse_args()
  cases = [("digits MLP (batch 64)", digits_mlp.get_config, None)]
  if os.path.isdir(args.mnist):
    cases.insert(0, ("MNIST LeNet (batch 128)", mnist_cnn.get_config, f"idx:{args.mnist}"))
  else:
    print(f"(no MNIST at {args.mnist}: LeNet case skipped)")
  rows = []
  for name, get_config, source in cases:
    ours_rates, peer_rates = [], []
    for _ in range(args.repeats):
      for fn, out in ((ours, ours_rates), (peer, peer_rates)):
        config = get_config()
        if source:
          config.data.source = source
        config.num_devices = 1
        out.append(fn(config, args.steps))
    rows.append((name, statistics.median(ours_rates), statistics.median(peer_rates)))
  print(f"\njax {jax.__version__} on {jax.devices()[0].platform} ({os.cpu_count()} cores), "
        f"{args.steps} steps x {args.repeats} alternating repeats, medians")
  print("| case | ours (steps/s) | hand-written loop (steps/s) | ours / peer | overhead |")
  print("|---|---|---|---|---|")
  for name, o, p in rows:
    print(f"| {name} | {o:.1f} | {p:.1f} | {o / p:.3f} | {100 * (p / o - 1):+.1f}% |")


if __name__ == "__main__":
  main()
