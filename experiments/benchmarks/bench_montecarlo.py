"""Monte Carlo noise evaluation: `mc_accuracy` (one compiled computation) against a Python loop over
jitted single-draw evaluations, and against its limit, the noiseless forward pass of the same model.

    python experiments/benchmarks/bench_montecarlo.py [--data idx:../shared/data/mnist | digits]
        [--draws 16] [--snrs 4] [--limit 2000] [--batch 500] [--chunk 2] [--no_static]
        [--loop_draws 2] [--workdir RUN] [--write experiments/benchmarks/RESULTS.md]

Model: the noisy-MNIST CNN of configs/noisy_mnist.py (every product analog, output noise), random
weights unless `--workdir` restores a trained run (whose own config and data are then used). The
Monte Carlo run is the `montecarlo` evaluator's: `freqnoise.evaluators.montecarlo.NoisyPredict`
over `Experiment.predict`, keys `draw_noise_key` / `draw_program_key`, SNRs
linspace(-5, 30, snrs - 1) dB and inf.

Columns
* ours: `mc_accuracy` steady time (a second, compiled call) and first call (compile included);
  cells/s = snrs x draws x images / s (the inf row counts `draws` passes even when the
  `static_at_inf` shortcut computes it once; `--no_static` turns the shortcut off).
* loop: jitted single-draw, single-batch calls over the first `--loop_draws` draws of every SNR,
  time scaled to all draws (each cell is the same sequence of identical calls). Its accuracy
  cells must equal ours exactly; the parent checks this before printing any row.
* forward: the noiseless forward pass of the same model, batch and machine (a jitted scan over the
  same batches, argmax hits included), images/s; measured in the same process as ours.
* limit ratio = ours' cells/s / forward images/s: 1.0 would mean noise and Monte Carlo
  bookkeeping cost nothing. `noisy-pass ratio` counts only passes actually computed.

Each method runs in its own subprocess so its peak resident memory is its own. The cores may be
shared with training jobs: os.getloadavg() is printed before and after, and times are then
inflated (both methods alike, roughly).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
DEFAULT_DATA = "idx:" + os.path.join(ROOT, "..", "shared", "data", "mnist")


def _load(args):
  """(experiment, variables, apply_fn, images, labels, snrs, key, static) of the benchmark."""
  import jax
  import numpy as np
  from freqnoise.evaluators.montecarlo import NoisyPredict, deterministic_at_inf
  from freqnoise.experiment import Experiment
  if args.workdir:
    from freqnoise.evaluate import load_run_config
    config = load_run_config(args.workdir)
    workdir = args.workdir
  else:
    from configs.noisy_mnist import get_config
    config = get_config()
    config.data.source = args.data
    config.evals = {}
    workdir = tempfile.mkdtemp(prefix="bench_mc_")
  config.num_devices = 1
  experiment = Experiment(config, workdir)
  state = experiment.restore() if args.workdir else experiment.initial_state()
  test = experiment.splits.test
  if args.limit and args.limit < len(test):
    test = test.sample(args.limit, seed=0)
  images = test.arrays[experiment.input_key]
  labels = test.arrays[experiment.label_key]
  spec = experiment.eval_noise_spec
  snrs = list(np.linspace(-5.0, 30.0, args.snrs - 1)) + [float("inf")]
  static = deterministic_at_inf(spec) and not args.no_static
  return (experiment, experiment.variables(state), NoisyPredict(experiment, spec), images, labels,
          snrs, jax.random.key(args.seed), static)


def run_ours(args):
  import jax
  import jax.numpy as jnp
  import numpy as np
  from freqnoise.robust import mc_accuracy
  from freqnoise.robust.montecarlo import _batched
  experiment, variables, apply_fn, images, labels, snrs, key, static = _load(args)
  kw = dict(snrs_db=snrs, num_draws=args.draws, key=key, batch_size=args.batch,
            draws_per_chunk=args.chunk, mesh=experiment.mesh, static_at_inf=static)
  t0 = time.perf_counter()
  mc_accuracy(apply_fn, variables, images, labels, **kw)
  first = time.perf_counter() - t0
  t0 = time.perf_counter()
  result = mc_accuracy(apply_fn, variables, images, labels, **kw)
  steady = time.perf_counter() - t0

  # The limit: the same model, batches and hit counting, noiseless (Python inf: nothing drawn).
  xb, yb = (jax.device_put(a) for a in _batched(images, labels, args.batch))

  @jax.jit
  def forward(variables, xb, yb):
    def step(total, batch):
      x, y = batch
      mask = (y >= 0).astype(jnp.float32)
      logits = apply_fn(variables, x, math.inf, key, key, mask)
      return total + jnp.sum((jnp.argmax(logits, -1) == y) & (y >= 0)), None
    return jax.lax.scan(step, jnp.int32(0), (xb, yb))[0]

  hits = int(forward(variables, xb, yb))
  rounds, t0 = 0, time.perf_counter()
  while rounds < 3 or time.perf_counter() - t0 < 3.0:  # at least 3 passes and 3 s
    forward(variables, xb, yb).block_until_ready()
    rounds += 1
  forward_s = (time.perf_counter() - t0) / rounds
  inf_row = np.isposinf(np.asarray(snrs))
  return {"accuracy": result.accuracy.tolist(), "first_s": first, "steady_s": steady,
          "forward_s": forward_s, "static": static, "num_images": len(labels),
          "forward_matches_inf_row": bool(np.all(result.accuracy[inf_row] == hits / len(labels)))}


def _loop_draws(args) -> int:
  return args.draws if not args.loop_draws else min(args.loop_draws, args.draws)


def run_loop(args):
  import jax
  import jax.numpy as jnp
  import numpy as np
  from freqnoise.robust import draw_noise_key, draw_program_key
  from freqnoise.robust.montecarlo import _batched
  _, variables, apply_fn, images, labels, snrs, key, _ = _load(args)

  @jax.jit
  def correct(variables, x, y, snr, k, pk):  # one draw, one batch
    logits = apply_fn(variables, x, snr, k, pk, (y >= 0).astype(jnp.float32))
    return jnp.sum((jnp.argmax(logits, -1) == y) & (y >= 0))

  xb, yb = _batched(images, labels, args.batch)

  def loop():
    acc = np.zeros((len(snrs), _loop_draws(args)))
    for s, snr in enumerate(snrs):
      for d in range(_loop_draws(args)):
        pk = draw_program_key(key, d)
        total = 0
        for b in range(len(xb)):
          total = total + correct(variables, xb[b], yb[b], jnp.float32(snr),
                                  draw_noise_key(key, d, b), pk)
        acc[s, d] = int(total) / len(labels)
    return acc

  t0 = time.perf_counter()
  correct(variables, xb[0], yb[0], jnp.float32(0.0), draw_noise_key(key, 0, 0),
          draw_program_key(key, 0)).block_until_ready()
  first = time.perf_counter() - t0
  t0 = time.perf_counter()
  acc = loop()
  steady = (time.perf_counter() - t0) * args.draws / _loop_draws(args)
  return {"accuracy": acc.tolist(), "first_s": first, "steady_s": steady}


def child(args):
  out = {"ours": run_ours, "loop": run_loop}[args.method](args)
  out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  print(json.dumps(out))


def _jax_version() -> str:
  import jax
  return jax.__version__


def _load_text() -> str:
  return "load average (1, 5, 15 min) " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--data", default=DEFAULT_DATA, help="data source: idx:DIR (MNIST) or digits")
  p.add_argument("--draws", type=int, default=16)
  p.add_argument("--snrs", type=int, default=4, help="SNRs: linspace(-5, 30, n-1) dB and inf")
  p.add_argument("--limit", type=int, default=2000,
                 help="test images used (a seeded sample; 0 = all)")
  p.add_argument("--batch", type=int, default=500)
  p.add_argument("--chunk", type=int, default=2,
                 help="draws per chunk in mc_accuracy (2: fastest and smallest in our sweep)")
  p.add_argument("--no_static", action="store_true", help="compute the inf row draws times")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--loop_draws", type=int, default=2,
                 help="time the loop on this many draws per SNR and scale (0 = all draws)")
  p.add_argument("--skip_loop", action="store_true", help="ours and the forward limit only")
  p.add_argument("--workdir", default="", help="trained run to restore (else random weights)")
  p.add_argument("--write", default="", help="append the result rows to this markdown file")
  p.add_argument("--method", default="", help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.method:
    return child(args)
  load_before = _load_text()
  print(f"{load_before}; {os.cpu_count()} CPU cores, shared with other jobs: times are inflated "
        "by whatever else runs", flush=True)
  out = {}
  for method in ("ours",) + (() if args.skip_loop else ("loop",)):
    cmd = [sys.executable, os.path.abspath(__file__), "--method", method] + sys.argv[1:]
    if "--write" in cmd:
      i = cmd.index("--write")
      del cmd[i:i + 2]
    cmd = [c for c in cmd if not c.startswith("--write=")]
    env = dict(os.environ, XLA_FLAGS=os.environ.get("BENCH_XLA_FLAGS", ""))  # one CPU device
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode:
      sys.exit(f"{method} failed:\n{proc.stderr[-3000:]}")
    out[method] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{method}: steady {out[method]['steady_s']:.1f} s, first call "
          f"{out[method]['first_s']:.1f} s, peak RSS {out[method]['peak_rss_mb']:.0f} MB",
          flush=True)
  load_after = _load_text()
  import numpy as np
  ours = out["ours"]
  n = ours["num_images"]
  k = _loop_draws(args)
  identical = None
  if "loop" in out:
    ours_checked = np.array(ours["accuracy"])[:, :k]
    identical = bool(np.array_equal(ours_checked, np.array(out["loop"]["accuracy"])))
    if not identical:
      diff = np.abs(ours_checked - np.array(out["loop"]["accuracy"]))
      sys.exit(f"results differ: {np.count_nonzero(diff)} cells, max |diff| {diff.max()}")
  cells = args.draws * args.snrs * n
  static_rows = 1 if ours["static"] else 0
  computed = args.draws * (args.snrs - static_rows) * n + static_rows * n
  forward_rate = n / ours["forward_s"]
  ratio = cells / ours["steady_s"] / forward_rate
  noisy_ratio = computed / ours["steady_s"] / forward_rate
  source = args.workdir or args.data
  lines = [
      f"\n### {args.draws} draws x {args.snrs} SNRs x {n} test images of {source} "
      f"({'trained' if args.workdir else 'random weights'})\n",
      f"Command: `python experiments/benchmarks/bench_montecarlo.py --data {args.data} --draws "
      f"{args.draws} --snrs {args.snrs} --limit {args.limit} --batch {args.batch} --chunk "
      f"{args.chunk}{' --no_static' if args.no_static else ''}"
      f"{' --workdir ' + args.workdir if args.workdir else ''} --loop_draws {args.loop_draws}"
      f"{' --skip_loop' if args.skip_loop else ''}`; {platform.machine()}, {os.cpu_count()} CPU "
      f"cores shared with other jobs ({load_before}; after: {load_after.split(') ')[1]}), jax "
      f"{_jax_version()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; inf row computed "
      f"{'once (static_at_inf)' if ours['static'] else f'{args.draws} times'}"
      + ("" if identical is None else f"; identical accuracy[snr, draw] cells (first {k} draws "
         f"of every SNR, loop time scaled by {args.draws / k:g}): {identical}") + ".\n",
      "| method | seconds (steady) | first call (compile incl.) | cells/s | peak RSS MB | "
      "speed-up vs loop | limit ratio |",
      "|---|---|---|---|---|---|---|",
  ]
  loop_s = out["loop"]["steady_s"] if "loop" in out else math.nan
  for method, name in (("ours", "mc_accuracy (vmap SNR x draws, scan batches)"),
                       ("loop", "Python loop of jitted single-draw evals")):
    if method not in out:
      continue
    r = out[method]
    speedup = "—" if math.isnan(loop_s) else f"{loop_s / r['steady_s']:.2f}x"
    lines.append(f"| {name} | {r['steady_s']:.1f} | {r['first_s']:.1f} | "
                 f"{cells / r['steady_s']:.0f} | {r['peak_rss_mb']:.0f} | "
                 f"{speedup} | "
                 f"{cells / r['steady_s'] / forward_rate:.2f} |")
  lines.append(f"| noiseless forward pass (the limit) | {ours['forward_s']:.2f} per pass | — | "
               f"{forward_rate:.0f} images/s | (in ours) | — | 1.00 |")
  lines.append("\nMean single-pass accuracy per SNR: "
               + ", ".join(f"{a:.4f}" for a in np.array(ours["accuracy"]).mean(1))
               + f". Noisy-pass ratio (only passes computed, {computed:,} of {cells:,}): "
               f"{noisy_ratio:.2f}. The forward pass's accuracy equals every inf cell: "
               f"{ours['forward_matches_inf_row']}.\n")
  text = "\n".join(lines)
  print(text)
  print(f"limit ratio: {ratio:.2f}")
  if args.write:
    with open(args.write, "a") as f:
      f.write(text + f"\nlimit ratio: {ratio:.2f}\n")
    raw = os.path.join(os.path.dirname(os.path.abspath(args.write)), "results", "montecarlo.json")
    os.makedirs(os.path.dirname(raw), exist_ok=True)
    with open(raw + ".tmp", "w") as f:  # the raw figures behind the appended table
      json.dump({"args": vars(args), "load_before": load_before, "load_after": load_after,
                 "limit_ratio": ratio, "noisy_pass_ratio": noisy_ratio, "cells": cells,
                 "computed_passes": computed, "forward_images_per_s": forward_rate,
                 "date_utc": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), **out}, f, indent=1)
    os.replace(raw + ".tmp", raw)


if __name__ == "__main__":
  main()
