"""Train-step time of our noisy LSTM (noise off / on) vs Flax's own LSTM cells and PyTorch nn.LSTM.

Every JAX variant is the same program: one LSTM layer under the same `nn.scan` (params broadcast,
`noise` rng split per step), a Dense readout of the last state, softmax cross-entropy, Adam, one
jitted step; only the cell differs. PyTorch runs nn.LSTM (batch_first) + Linear + Adam with the same
thread count. Timing: median over `--steps` steps after `--warmup` steps, `block_until_ready` on the
new params (JAX) — wall-clock per train step in milliseconds. The JAX variants are timed
round-robin (one step of each in turn) so that load from other processes hits them alike.

  python experiments/benchmarks/bench_rnn.py     # prints a markdown table
  python experiments/benchmarks/bench_rnn.py --out experiments/benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from freqnoise.analog.noise import NoiseConfig
from freqnoise.analog.recurrent import NoisyLSTMCell


class ScanLSTMClassifier(nn.Module):
  """LSTM layer under nn.scan + Dense readout; the per-step cell is `cell_cls(hidden, **cell_kwargs)`."""

  cell_cls: type
  cell_kwargs: tuple  # (name, value) pairs
  hidden: int
  num_classes: int = 10

  @nn.compact
  def __call__(self, x):
    scan = nn.scan(self.cell_cls, variable_broadcast="params",
                   split_rngs={"params": False, "noise": True}, in_axes=1, out_axes=1)
    zeros = jnp.zeros_like(x[:, 0, :1]) + jnp.zeros((self.hidden,), x.dtype)
    (_, h), _ = scan(self.hidden, name="cell", **dict(self.cell_kwargs))((zeros, zeros), x)
    return nn.Dense(self.num_classes)(h)


def jax_train_step(cell, batch, seq_len, features, hidden):
  """A compiled train step of `cell` = (cell class, kwargs) and a closure running one step."""
  model = ScanLSTMClassifier(cell[0], tuple(cell[1].items()), hidden)
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.random((batch, seq_len, features), np.float32))
  y = jnp.asarray(rng.integers(0, 10, batch))
  state = {"params": model.init(jax.random.key(0), x)["params"]}
  tx = optax.adam(1e-3)
  state["opt"] = tx.init(state["params"])

  @jax.jit
  def step(params, opt, key):
    def loss_fn(p):
      logits = model.apply({"params": p}, x, rngs={"noise": key})
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    grads = jax.grad(loss_fn)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt

  def run(i):
    state["params"], state["opt"] = step(state["params"], state["opt"], jax.random.key(i))
    jax.block_until_ready(state["params"])

  return run


def interleaved_ms(runs: dict, steps: int, warmup: int) -> dict[str, float]:
  """Median ms per call of each closure, timed round-robin so machine load hits all alike."""
  times = {name: [] for name in runs}
  for i in range(warmup + steps):
    for name, run in runs.items():
      t0 = time.perf_counter()
      run(i)
      if i >= warmup:
        times[name].append(time.perf_counter() - t0)
  return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def torch_step_ms(batch, seq_len, features, hidden, steps, warmup, threads):
  import torch
  torch.set_num_threads(threads)
  torch.manual_seed(0)
  lstm = torch.nn.LSTM(features, hidden, batch_first=True)
  head = torch.nn.Linear(hidden, 10)
  opt = torch.optim.Adam(list(lstm.parameters()) + list(head.parameters()), lr=1e-3)
  x = torch.rand(batch, seq_len, features)
  y = torch.randint(0, 10, (batch,))
  times = []
  for i in range(warmup + steps):
    t0 = time.perf_counter()
    opt.zero_grad()
    out, _ = lstm(x)
    loss = torch.nn.functional.cross_entropy(head(out[:, -1]), y)
    loss.backward()
    opt.step()
    if i >= warmup:
      times.append(time.perf_counter() - t0)
  return 1e3 * statistics.median(times), torch.__version__


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--shapes", default="128x28x28x128,32x35x200x200",
                      help="comma list of BATCHxSTEPSxFEATURESxHIDDEN")
  parser.add_argument("--steps", type=int, default=50)
  parser.add_argument("--warmup", type=int, default=5)
  parser.add_argument("--snr_db", type=float, default=10.0)
  parser.add_argument("--out", default="", help="append the table to this markdown file")
  args = parser.parse_args()
  noise_on = NoiseConfig(snr_db=args.snr_db)
  variants = {
      "flax OptimizedLSTMCell": (nn.OptimizedLSTMCell, {}),
      "flax LSTMCell": (nn.LSTMCell, {}),
      "ours, noise off": (NoisyLSTMCell, {"noise": None}),
      f"ours, noise on ({args.snr_db:g} dB)": (NoisyLSTMCell, {"noise": noise_on}),
  }
  threads = len(os.sched_getaffinity(0))
  lines = [f"\n### {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {platform.processor() or 'cpu'}, "
           f"{threads} CPU threads, jax {jax.__version__} ({jax.default_backend()}), median of "
           f"{args.steps} train steps (ms)\n",
           "| shape B x T x F x H | variant | ms / step | vs flax OptimizedLSTMCell |",
           "|---|---|---|---|"]
  for shape in args.shapes.split(","):
    b, t, f, h = (int(v) for v in shape.split("x"))
    runs = {name: jax_train_step(cell, b, t, f, h) for name, cell in variants.items()}
    results = interleaved_ms(runs, args.steps, args.warmup)
    base = results["flax OptimizedLSTMCell"]
    for name, ms in results.items():
      lines.append(f"| {shape} | {name} | {ms:.2f} | {ms / base:.2f}x |")
      print(lines[-1], flush=True)
    try:
      ms, version = torch_step_ms(b, t, f, h, args.steps, args.warmup, threads)
      lines.append(f"| {shape} | PyTorch {version} nn.LSTM | {ms:.2f} | {ms / base:.2f}x |")
    except ImportError:
      lines.append(f"| {shape} | PyTorch nn.LSTM | not installed | |")
    print(lines[-1], flush=True)
  if args.out:
    with open(args.out, "a") as fh:
      fh.write("\n".join(lines) + "\n")
  print("\n".join(lines))


if __name__ == "__main__":
  main()
