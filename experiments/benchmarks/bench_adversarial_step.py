"""Cost of PGD adversarial training: the trainer's own train step (`freqnoise.train.
make_train_step`) with `config.adversarial` on, against the same step without it, same run.

    python experiments/benchmarks/bench_adversarial_step.py [--steps 20] [--warmup 2] [--quick]

Model and batch: the MNIST target of configs/noisy_defense.py (LeNet (16, 32) + 512, batch 128) on
random uint8 28x28 images (no data is read). Variants: clean; PGD-k on half of each batch (the
config's); PGD-k on the whole batch (Madry's). Expected cost ≈ 1 + fraction · k forward-backward
passes of the batch (a PGD step is one forward-backward of the attacked rows), so the table gives
the measured ratio to the clean step beside that expectation. Timed round-robin, medians.
Writes experiments/benchmarks/results/adversarial_step.json (atomically).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import jax
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from bench_rnn import interleaved_ms  # noqa: E402  (this folder: the one round-robin timer)
from configs import noisy_defense  # noqa: E402
from freqnoise import sharding  # noqa: E402
from freqnoise.data import ArrayDataset, Splits  # noqa: E402
from freqnoise.experiment import Experiment  # noqa: E402
from freqnoise.train import make_train_step  # noqa: E402
from freqnoise.workdir import write_atomically  # noqa: E402

OUT = os.path.join(ROOT, "experiments", "benchmarks", "results", "adversarial_step.json")


def step_closure(config, splits, workdir: str):
  experiment = Experiment(config, workdir, splits=splits)
  state = {"s": experiment.initial_state()}
  step = jax.jit(make_train_step(experiment), donate_argnums=0)
  batch = sharding.shard_batch({k: v[:config.data.batch_size]
                                for k, v in splits.train.arrays.items()}, experiment.mesh)
  key = experiment.key("train")

  def run(i: int) -> None:
    state["s"], metrics = step(state["s"], batch, experiment.stats_device, key)
    jax.block_until_ready(metrics)

  return run


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--steps", type=int, default=20, help="timed steps per variant (median)")
  p.add_argument("--warmup", type=int, default=2, help="untimed first steps (compilation)")
  p.add_argument("--quick", action="store_true", help="3 steps, writes to a temp file")
  args = p.parse_args()
  if args.quick:
    args.steps, args.warmup = 3, 1
  rng = np.random.default_rng(0)
  arrays = lambda n: {"image": rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8),
                      "label": rng.integers(0, 10, n).astype(np.int32)}
  splits = Splits(ArrayDataset(arrays(1024)), ArrayDataset(arrays(256)), 10, "random")
  base = noisy_defense.get_config("data=mnist")
  base.num_devices = 1
  k = base.adversarial.steps
  variants = {}
  for name, epsilon, fraction in (("clean", 0.0, 0.5), (f"PGD-{k} on half the batch", None, 0.5),
                                  (f"PGD-{k} on the whole batch", None, 1.0)):
    c = noisy_defense.get_config("data=mnist")
    c.num_devices = 1
    c.evals = {}
    if epsilon is not None:
      c.adversarial.epsilon = epsilon
    c.adversarial.fraction = fraction
    expected = 1.0 if epsilon == 0.0 else 1.0 + fraction * k
    variants[name] = (c, expected)
  with tempfile.TemporaryDirectory() as tmp:
    runs = {name: step_closure(c, splits, os.path.join(tmp, str(i)))
            for i, (name, (c, _)) in enumerate(variants.items())}
    ms = interleaved_ms(runs, args.steps, args.warmup)
  load = os.getloadavg()
  lines = [f"train step of the MNIST defense target, batch {base.data.batch_size}, 1 CPU device; "
           f"median of {args.steps} steps; load average {load[0]:.2f}", "",
           "| variant | ms / step | ratio to clean | expected (1 + fraction x k) |", "|---|---|---|---|"]
  rows = {}
  for name, (_, expected) in variants.items():
    rows[name] = {"ms": ms[name], "ratio": ms[name] / ms["clean"], "expected": expected}
    lines.append(f"| {name} | {ms[name]:.1f} | {ms[name] / ms['clean']:.2f}x | {expected:.1f}x |")
  print("\n".join(lines))
  out = os.path.join(tempfile.gettempdir(), "adversarial_step_quick.json") if args.quick else OUT
  record = {"rows": rows, "args": vars(args), "load_average": load, "cpu_count": os.cpu_count(),
            "jax": jax.__version__, "date_utc": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())}
  os.makedirs(os.path.dirname(out), exist_ok=True)
  write_atomically(out, json.dumps(record, indent=1))
  print(f"wrote {out}")


if __name__ == "__main__":
  main()
