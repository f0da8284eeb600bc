"""Monte Carlo noise evaluation: `mc_accuracy` (one compiled computation) vs a Python loop over
jitted single-draw evaluations, on the MNIST CNN of configs/noisy_mnist.py.

    python experiments/benchmarks/bench_montecarlo.py --draws 64 --snrs 8 --limit 1000 \
        [--workdir /tmp/noisy/mnist/snr0] [--write experiments/benchmarks/RESULTS.md]

Each method runs in its own subprocess, so its peak resident memory (ru_maxrss) is its own. Both
use the same keys (`draw_key`), so their accuracy[snr, draw] arrays must be identical; the parent
checks this before writing any row. "seconds" is a second, already-compiled run of the whole
problem; "first call" is ours' first full run (compile included) and the loop's compile plus one
batch.

`--loop_draws K` (< draws) times the loop on the first K draws of every SNR only and scales its
time by draws / K: each (SNR, draw) cell of the loop is the same sequence of identically shaped
jitted calls, so its cost is linear in the number of cells. The identity check then covers those
K draws. The table says when this was done.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)


def _load(args):
  import jax
  import numpy as np
  from configs.noisy_mnist import get_config
  from freqnoise.analog import NoiseConfig
  from freqnoise.data import load_splits
  from freqnoise.data.transforms import build_transform
  from freqnoise.models import build_model
  from freqnoise.robust.evaluators import NoisyModelApply
  config = get_config("snr0")
  config.data.source = f"idx:{args.data}"
  splits = load_splits(config.data, seed=config.seed)
  images = splits.test.arrays["image"][:args.limit]
  labels = splits.test.arrays["label"][:args.limit]
  model = build_model(config.model, num_classes=10, noise=None)
  transform = build_transform(config.input)
  stats = transform.fit(splits.train.arrays["image"])
  if args.workdir:
    from freqnoise.checkpoint import Checkpointer
    from freqnoise.train import Task
    task = Task(config, args.workdir, splits=splits)
    state = Checkpointer(args.workdir, every=1).restore(
        jax.jit(task.init_state)(jax.random.key(0)))
    params, model_state, stats = state.params, state.model_state, task.stats
  else:
    variables = model.init(jax.random.key(0), images[:1].astype(np.float32), train=False)
    params, model_state = variables["params"], {}
  apply_fn = NoisyModelApply(model, NoiseConfig(snr_db=0.0), transform)
  variables = {"params": params, "model_state": model_state,
               "stats": {k: jax.numpy.asarray(v) for k, v in stats.items()}}
  snrs = list(np.linspace(-5.0, 30.0, args.snrs - 1)) + [float("inf")]
  return apply_fn, variables, images, labels, snrs


def run_ours(args):
  import jax
  from freqnoise.robust import mc_accuracy
  apply_fn, variables, images, labels, snrs = _load(args)
  kw = dict(snrs_db=snrs, num_draws=args.draws, key=jax.random.key(args.seed),
            batch_size=args.batch, draws_per_chunk=args.chunk)
  t0 = time.perf_counter()
  mc_accuracy(apply_fn, variables, images, labels, **kw)
  first = time.perf_counter() - t0
  t0 = time.perf_counter()
  result = mc_accuracy(apply_fn, variables, images, labels, **kw)
  steady = time.perf_counter() - t0
  return result.accuracy.tolist(), first, steady


def _loop_draws(args) -> int:
  return args.draws if not args.loop_draws else min(args.loop_draws, args.draws)


def run_loop(args):
  import jax
  import jax.numpy as jnp
  import numpy as np
  from freqnoise.robust import draw_key
  apply_fn, variables, images, labels, snrs = _load(args)
  key = jax.random.key(args.seed)

  @jax.jit
  def correct(variables, x, y, snr, k):  # one draw, one batch
    return jnp.sum((jnp.argmax(apply_fn(variables, x, snr, k), -1) == y) & (y >= 0))

  b = args.batch
  nb = -(-len(labels) // b)
  pad = nb * b - len(labels)
  x = np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)])
  y = np.concatenate([labels, -np.ones(pad, labels.dtype)])

  def loop():
    acc = np.zeros((len(snrs), _loop_draws(args)))
    for s, snr in enumerate(snrs):
      for d in range(_loop_draws(args)):
        total = 0
        for i in range(nb):
          total = total + correct(variables, x[i * b:(i + 1) * b], y[i * b:(i + 1) * b],
                                  jnp.float32(snr), draw_key(key, d, i))
        acc[s, d] = int(total) / len(labels)
    return acc

  t0 = time.perf_counter()
  correct(variables, x[:b], y[:b], jnp.float32(0.0), draw_key(key, 0, 0)).block_until_ready()
  first = time.perf_counter() - t0
  t0 = time.perf_counter()
  acc = loop()
  steady = (time.perf_counter() - t0) * args.draws / _loop_draws(args)
  return acc.tolist(), first, steady


def child(args):
  rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  acc, first, steady = {"ours": run_ours, "loop": run_loop}[args.method](args)
  rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  print(json.dumps({"accuracy": acc, "first_s": first, "steady_s": steady,
                    "peak_rss_mb": rss / 1024, "rss_before_mb": rss0 / 1024}))


def _jax_version() -> str:
  import jax
  return jax.__version__


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--draws", type=int, default=64)
  p.add_argument("--snrs", type=int, default=8, help="SNRs: linspace(-5, 30, n-1) dB and inf")
  p.add_argument("--limit", type=int, default=10000, help="test images used")
  p.add_argument("--batch", type=int, default=500)
  p.add_argument("--chunk", type=int, default=8, help="draws per chunk in mc_accuracy")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--loop_draws", type=int, default=0,
                 help="time the loop on this many draws per SNR and scale (0 = all draws)")
  p.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "mnist"))
  p.add_argument("--workdir", default="", help="trained run to restore (else random weights)")
  p.add_argument("--write", default="", help="append the result rows to this markdown file")
  p.add_argument("--method", default="", help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.method:
    return child(args)
  out = {}
  for method in ("ours", "loop"):
    cmd = [sys.executable, os.path.abspath(__file__), "--method", method] + sys.argv[1:]
    cmd = [c for c in cmd if not c.startswith("--write")]
    if "--write" in cmd:
      i = cmd.index("--write")
      del cmd[i:i + 2]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
      sys.exit(f"{method} failed:\n{proc.stderr[-3000:]}")
    out[method] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{method}: steady {out[method]['steady_s']:.1f} s, first call "
          f"{out[method]['first_s']:.1f} s, peak RSS {out[method]['peak_rss_mb']:.0f} MB", flush=True)
  import numpy as np
  k = _loop_draws(args)
  ours_checked = np.array(out["ours"]["accuracy"])[:, :k]
  identical = bool(np.array_equal(ours_checked, np.array(out["loop"]["accuracy"])))
  if not identical:
    diff = np.abs(ours_checked - np.array(out["loop"]["accuracy"]))
    sys.exit(f"results differ: {np.count_nonzero(diff)} cells, max |diff| {diff.max()}")
  speedup = out["loop"]["steady_s"] / out["ours"]["steady_s"]
  passes = args.draws * args.snrs * args.limit
  mean_acc = np.array(out["ours"]["accuracy"]).mean(1)
  lines = [
      f"\n### {args.draws} draws x {args.snrs} SNRs x {args.limit} MNIST test images "
      f"({'trained ' + args.workdir if args.workdir else 'random weights'})\n",
      f"Command: `python experiments/benchmarks/bench_montecarlo.py --draws {args.draws} --snrs "
      f"{args.snrs} --limit {args.limit} --batch {args.batch} --chunk {args.chunk}"
      f"{' --workdir ' + args.workdir if args.workdir else ''}"
      f"{f' --loop_draws {k}' if k < args.draws else ''}`; "
      f"{platform.machine()}, {os.cpu_count()} CPU cores, jax {_jax_version()}, "
      f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; identical accuracy[snr, draw] "
      f"arrays: {identical}"
      + (f" (loop timed on {k} of {args.draws} draws per SNR, its seconds scaled by "
         f"{args.draws / k:g}; identity checked on those {k})" if k < args.draws else "") + ".\n",
      "| method | seconds (steady) | first call (compile incl.) | images/s | peak RSS MB | speed-up |",
      "|---|---|---|---|---|---|",
  ]
  for method, name in (("ours", "mc_accuracy (vmap SNR x draws, scan batches)"),
                       ("loop", "Python loop of jitted single-draw evals")):
    r = out[method]
    lines.append(f"| {name} | {r['steady_s']:.1f} | {r['first_s']:.1f} | "
                 f"{passes / r['steady_s']:.0f} | {r['peak_rss_mb']:.0f} | "
                 f"{out['loop']['steady_s'] / r['steady_s']:.2f}x |")
  lines.append("\nMean single-pass accuracy per SNR: "
               + ", ".join(f"{a:.4f}" for a in mean_acc) + "\n")
  text = "\n".join(lines)
  print(text)
  print(f"speed-up {speedup:.2f}x; identical: {identical}")
  if args.write:
    with open(args.write, "a") as f:
      f.write(text + "\n")


if __name__ == "__main__":
  main()
