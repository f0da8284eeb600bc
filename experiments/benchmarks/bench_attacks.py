"""PGD speed: `freqnoise.robust.attacks.attack` (one jitted scan over the steps) against foolbox
3.3.4's `LinfPGD` and a Python loop of jitted one-step calls, on the same JAX model and inputs.

    python experiments/benchmarks/bench_attacks.py [--batch 128] [--steps 40] [--repeats 5]
        [--warmup 1] [--out experiments/benchmarks/results/attacks.json]
    python experiments/benchmarks/bench_attacks.py --quick     # a seconds-long check that it runs

Model: the LeNet of configs/mnist_cnn.py (32 and 64 5x5 filters, 512 hidden units; built with
`freqnoise.models.build_model`, random weights, evaluation mode, noiseless), fed [B, 28, 28, 1]
uniform random pixels in [0, 1] with random labels; no data is read. Attack: MadryLab's MNIST
protocol, L-inf PGD, ε = 0.3, 40 steps of 0.01, clipped to [0, 1], but without the random start,
so that the three methods compute the same iterates (the table reports their largest difference;
the random start is one uniform draw and costs nothing measurable).

Methods (each a function of (variables, x, labels) that returns x_adv, timed to block_until_ready):
* ours: `jax.jit` of `attack(...)` with the variables as arguments: every step in one program;
* ours unrolled: the same with `unroll=True` (the scan unrolled: no XLA while loop, inside which
  CPU convolutions run slower, jax-ml/jax#12868; longer compilation);
* foolbox: `LinfPGD(abs_stepsize, steps, random_start=False).run(JAXModel(jit(model)), ...)`;
  foolbox differentiates the jitted model eagerly, one gradient dispatch per step, plus eagerpy's
  per-op dispatches for the sign / projection / clipping in Python;
* loop: one jitted function per step (gradient, sign step, projection, clipping, the same code as
  ours), called `steps` times from Python: what the scan saves over a hand loop of jitted calls.

Rounds interleave the methods (a load change hits all alike); `--warmup` rounds (compilation
included) are dropped and the table shows medians over `--repeats` rounds. examples/s = batch /
median seconds; ratio = ours' examples/s / the method's. The cores may be shared: the load average
is printed before and after and stored with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from importlib import metadata

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
DEFAULT_OUT = os.path.join(ROOT, "experiments", "benchmarks", "results", "attacks.json")


def _load_text() -> str:
  return "load average (1, 5, 15 min) " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _versions() -> dict[str, str]:
  out = {"python": platform.python_version()}
  for name in ("jax", "jaxlib", "flax", "numpy", "foolbox", "eagerpy"):
    try:
      out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
      out[name] = "not installed"
  return out


def _methods(args):
  """{name: fn(variables, x, labels) -> x_adv} and the model's (variables, x, labels)."""
  import jax
  import jax.numpy as jnp
  from configs.mnist_cnn import get_config
  from freqnoise.models import build_model
  from freqnoise.robust import attacks

  model = build_model(get_config().model, num_classes=10)
  gen_x, gen_y, init = jax.random.split(jax.random.key(args.seed), 3)
  x = jax.random.uniform(gen_x, (args.batch, 28, 28, 1), jnp.float32)
  labels = jax.random.randint(gen_y, (args.batch,), 0, 10)
  variables = jax.jit(lambda k: model.init(k, x[:1], train=False))(init)
  config = attacks.AttackConfig(method="pgd", norm="linf", epsilon=args.epsilon,
                                step_size=args.step_size, steps=args.steps, random_start=False,
                                bounds=(0.0, 1.0))
  key = jax.random.key(args.seed + 1)  # unused by the noiseless model; the attack's key

  def logits_fn_of(variables):
    return lambda z, k: model.apply(variables, z, train=False)

  @jax.jit
  def ours(variables, x, labels):
    return attacks.attack(logits_fn_of(variables), x, labels, config, key)

  @jax.jit
  def one_step(variables, x, x0, labels, t):
    g = attacks.loss_gradient(logits_fn_of(variables), x, labels, attacks.step_key(key, t))
    x = x + config.step_size * jnp.sign(g)
    return jnp.clip(attacks.project(x, x0, config.epsilon, "linf"), *config.bounds)

  def loop(variables, x, labels):
    z = x
    for t in range(config.steps):
      z = one_step(variables, z, x, labels, t)
    return z

  @jax.jit
  def ours_unrolled(variables, x, labels):
    return attacks.attack(logits_fn_of(variables), x, labels, config, key, unroll=True)

  methods = {"ours": ours, "ours_unrolled": ours_unrolled, "loop": loop}
  with warnings.catch_warnings():  # foolbox 3.3.4 imports scipy.ndimage.filters (deprecated)
    warnings.filterwarnings("ignore", message="Please import `gaussian_filter`",
                            category=DeprecationWarning)
    try:
      import foolbox
    except ImportError:
      foolbox = None
  if foolbox is not None:
    peer = foolbox.attacks.LinfPGD(abs_stepsize=config.step_size, steps=config.steps,
                                   random_start=False)

    def fool(variables, x, labels):
      fmodel = foolbox.JAXModel(jitted_logits, bounds=config.bounds)
      return peer.run(fmodel, x, foolbox.criteria.Misclassification(labels),
                      epsilon=config.epsilon)

    # The jitted model is built once (as a user would), outside the timed call.
    jitted_logits = jax.jit(lambda z: model.apply(variables, z, train=False))
    methods["foolbox"] = fool
  return methods, (variables, x, labels)


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--steps", type=int, default=40)
  p.add_argument("--epsilon", type=float, default=0.3)
  p.add_argument("--step_size", type=float, default=0.01)
  p.add_argument("--repeats", type=int, default=5, help="timed rounds (median)")
  p.add_argument("--warmup", type=int, default=1, help="untimed first rounds (compilation)")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--quick", action="store_true",
                 help="batch 8, 3 steps, 2 rounds: checks that it runs; writes to a temp file")
  p.add_argument("--out", default=None,
                 help=f"results JSON (default {os.path.relpath(DEFAULT_OUT, ROOT)}; with --quick "
                      "a file in the temp directory)")
  args = p.parse_args()
  if args.quick:
    args.batch, args.steps, args.repeats = 8, 3, 2
  out_path = args.out or (os.path.join(tempfile.gettempdir(), "attacks_quick.json") if args.quick
                          else DEFAULT_OUT)
  args.out = out_path

  import jax
  import numpy as np
  load_before = _load_text()
  print(f"{load_before}; {os.cpu_count()} CPU cores, possibly shared with other jobs: times are "
        "inflated by whatever else runs", flush=True)
  methods, inputs = _methods(args)
  names = list(methods)
  times = {name: [] for name in names}
  results = {}
  for r in range(args.warmup + args.repeats):
    for name in names:
      t0 = time.perf_counter()
      x_adv = jax.block_until_ready(methods[name](*inputs))
      seconds = time.perf_counter() - t0
      if r < args.warmup:
        times[name + " (first call)"] = times.get(name + " (first call)", []) + [seconds]
      else:
        times[name].append(seconds)
      results[name] = np.asarray(x_adv)
  load_after = _load_text()

  x = np.asarray(inputs[1])
  rows = {}
  for name in names:
    median = statistics.median(times[name])
    rows[name] = {"median_s": median, "examples_per_s": args.batch / median,
                  "first_call_s": times.get(name + " (first call)", [float("nan")])[0],
                  "times_s": times[name],
                  "max_abs_diff_vs_ours": float(np.abs(results[name] - results["ours"]).max()),
                  "linf_distance": float(np.abs(results[name] - x).max())}
  ours_rate = rows["ours"]["examples_per_s"]
  for name in names:
    rows[name]["ours_ratio"] = ours_rate / rows[name]["examples_per_s"]

  title = (f"L-inf PGD-{args.steps} (eps {args.epsilon:g}, step {args.step_size:g}, no random "
           f"start) on the MNIST LeNet of configs/mnist_cnn.py, random weights, batch "
           f"{args.batch}; median of {args.repeats} rounds after {args.warmup} warm-up")
  lines = [title, "",
           "| method | examples/s | median s | first call s | ours / method "
           "| max abs diff vs ours |",
           "|---|---|---|---|---|---|"]
  labels = {"ours": "ours: attack(), one jitted scan",
            "ours_unrolled": "ours, attack(unroll=True): no XLA while loop",
            "foolbox": "foolbox 3.3.4 LinfPGD", "loop": "Python loop of jitted steps"}
  for name in names:
    row = rows[name]
    lines.append(f"| {labels[name]} | {row['examples_per_s']:.1f} | {row['median_s']:.3f} | "
                 f"{row['first_call_s']:.2f} | {row['ours_ratio']:.2f}x | "
                 f"{row['max_abs_diff_vs_ours']:.2g} |")
  if "foolbox" not in methods:
    lines.append("\n(foolbox not installed: `pip install foolbox==3.3.4` for the peer row)")
  print("\n".join(lines))
  print(f"{load_after}")

  record = {"args": vars(args), "title": title, "rows": rows, "load_before": load_before,
            "load_after": load_after, "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "devices": [str(d) for d in jax.devices()], "versions": _versions(),
            "date_utc": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())}
  os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
  tmp = out_path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(record, f, indent=1)
  os.replace(tmp, out_path)
  print(f"wrote {out_path}")


if __name__ == "__main__":
  main()
