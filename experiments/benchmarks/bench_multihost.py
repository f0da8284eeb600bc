"""What the cross-process path costs: Monte Carlo image-passes/s of the same devices in 1 process
and spread over several processes (jax.distributed, gloo on CPU).

    python experiments/benchmarks/bench_multihost.py [--layouts 1x2,2x1] [--data digits | idx:DIR]
        [--draws 16] [--snrs 4] [--limit 0] [--batch 500] [--chunk 0] [--repeats 3]
        [--output experiments/benchmarks/results/multihost.json]

Each layout PxD runs P processes on 127.0.0.1 with D fake CPU devices each (each process a
subprocess with its own XLA_FLAGS), one global mesh of P*D devices. Every process builds the same
run (configs/noisy_mnist.py's CNN, every product analog, random weights of seed 0, `--data`) and
calls `mc_accuracy` exactly as the `montecarlo` evaluator does: draws sharded over the global mesh,
counts gathered once. Timed: `--repeats` steady calls after a first (compiling) one, median.
image-passes/s = SNRs x draws x images / s (the inf row counted `draws` times although the
`static_at_inf` shortcut computes it once).

The table: the first layout is the peer (the same device count in one process), every other
layout is ours; ratio = ours / peer image-passes/s (1.0: the processes cost nothing). The
accuracy[snr, draw] arrays of every layout must be identical (checked before the table prints).

On a GPU cluster (one process per host, `jax.distributed` reading SLURM / Cloud TPU environment):

    srun --ntasks=H --gpus-per-task=G python experiments/benchmarks/bench_multihost.py --cluster \
        --data idx:DIR --draws 64 --snrs 8 --output results/multihost_H{H}xG{G}.json

prints one row for H hosts x G devices; run it for H = 1, 2, 4, ... and compare each row with the
1-host row (the scaling table in RESULTS.md has the columns to fill).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)


def worker(args) -> None:
  """One process of one layout: prints a JSON line (process 0) with times and accuracies."""
  import jax
  import numpy as np
  from ml_collections import ConfigDict
  from configs.noisy_mnist import get_config
  from freqnoise import distributed
  from freqnoise.evaluators.montecarlo import NoisyPredict, deterministic_at_inf
  from freqnoise.experiment import Experiment
  from freqnoise.robust import mc_accuracy
  config = get_config()
  config.data.source = args.data
  config.evals = ConfigDict()
  if not args.cluster:
    config.num_processes, config.process_id = args.processes, args.process_id
    config.coordinator_address = args.coordinator
  else:
    config.num_processes = int(os.environ.get("SLURM_NTASKS", 1))
  config.distributed_timeout = 60
  distributed.initialize(config)
  experiment = Experiment(config, args.workdir)
  state = experiment.initial_state()
  test = experiment.splits.test
  if args.limit and args.limit < len(test):
    test = test.sample(args.limit, seed=0)
  images, labels = test.arrays[experiment.input_key], test.arrays[experiment.label_key]
  spec = experiment.eval_noise_spec
  snrs = list(np.linspace(-5.0, 30.0, args.snrs - 1)) + [float("inf")]
  kw = dict(snrs_db=snrs, num_draws=args.draws, key=jax.random.key(0),
            batch_size=min(args.batch, len(labels)), draws_per_chunk=args.chunk or None,
            mesh=experiment.mesh, static_at_inf=deterministic_at_inf(spec, experiment.quant))
  apply_fn, variables = NoisyPredict(experiment, spec), experiment.variables(state)
  t0 = time.perf_counter()
  result = mc_accuracy(apply_fn, variables, images, labels, **kw)
  first = time.perf_counter() - t0
  times = []
  for _ in range(args.repeats):
    t0 = time.perf_counter()
    again = mc_accuracy(apply_fn, variables, images, labels, **kw)
    times.append(time.perf_counter() - t0)
    assert np.array_equal(again.accuracy, result.accuracy)
  if distributed.is_writer():
    row = {
        "processes": jax.process_count(), "devices": jax.device_count(),
        "local_devices": jax.local_device_count(), "platform": jax.default_backend(),
        "first_s": first, "steady_s": statistics.median(times), "times_s": times,
        "passes": len(snrs) * args.draws * len(labels), "num_images": len(labels),
        "accuracy": result.accuracy.tolist()}
    print("RESULT " + json.dumps(row), flush=True)
    if args.cluster:
      print(table([row]), flush=True)
      if args.output:
        from freqnoise.workdir import write_atomically
        write_atomically(args.output, json.dumps({"command": " ".join(sys.argv), "rows": [row]},
                                                 indent=1) + "\n")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def run_layout(args, processes: int, devices: int, workdir: str) -> dict:
  port = free_port()
  env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
         "JAX_PLATFORMS": "cpu"}  # the worker (this file) puts ROOT on its own path
  common = [sys.executable, os.path.abspath(__file__), "--worker", f"--processes={processes}",
            f"--coordinator=127.0.0.1:{port}", f"--workdir={workdir}", f"--data={args.data}",
            f"--draws={args.draws}", f"--snrs={args.snrs}", f"--limit={args.limit}",
            f"--batch={args.batch}", f"--chunk={args.chunk}", f"--repeats={args.repeats}"]
  procs = [subprocess.Popen(common + [f"--process_id={i}"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for i in range(processes)]
  outs = []
  try:
    for p in procs:
      outs.append(p.communicate(timeout=args.timeout))
  except subprocess.TimeoutExpired:
    for p in procs:
      p.kill()
    raise SystemExit(f"layout {processes}x{devices} did not finish within {args.timeout} s")
  for p, (_, err) in zip(procs, outs):
    if p.returncode:
      raise SystemExit(f"layout {processes}x{devices}: a process failed:\n{err[-3000:]}")
  line = next(l for l in outs[0][0].splitlines() if l.startswith("RESULT "))
  return json.loads(line[len("RESULT "):])


def table(rows: list[dict]) -> str:
  peer = rows[0]
  rate = lambda r: r["passes"] / r["steady_s"]
  lines = ["| layout (processes x devices) | role | steady s (median) | first call s | "
           "image-passes/s | ratio vs peer |", "|---|---|---|---|---|---|"]
  for i, r in enumerate(rows):
    lines.append(f"| {r['processes']} x {r['local_devices']} | {'peer' if i == 0 else 'ours'} | "
                 f"{r['steady_s']:.3f} | {r['first_s']:.2f} | {rate(r):,.0f} | "
                 f"{rate(r) / rate(peer):.3f} |")
  return "\n".join(lines)


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--layouts", default="1x2,2x1", help="PxD,...: the first is the peer")
  p.add_argument("--data", default="digits", help="digits or idx:DIR (MNIST)")
  p.add_argument("--draws", type=int, default=16)
  p.add_argument("--snrs", type=int, default=4, help="SNRs: linspace(-5, 30, n-1) dB and inf")
  p.add_argument("--limit", type=int, default=0, help="test images (0 = the whole test split)")
  p.add_argument("--batch", type=int, default=500)
  p.add_argument("--chunk", type=int, default=0, help="draws per chunk (0 = all at once)")
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--timeout", type=int, default=600)
  p.add_argument("--output", default="", help="write the rows (and machine) as JSON here")
  p.add_argument("--cluster", action="store_true",
                 help="be one process of a cluster job (jax.distributed reads the environment)")
  p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--processes", type=int, default=1, help=argparse.SUPPRESS)
  p.add_argument("--process_id", type=int, default=0, help=argparse.SUPPRESS)
  p.add_argument("--coordinator", default="", help=argparse.SUPPRESS)
  p.add_argument("--workdir", default="", help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.worker or args.cluster:
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="bench_multihost_")
    return worker(args)
  import jax
  machine = {"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores", "python":
             platform.python_version(), "jax": jax.__version__, "date": time.strftime("%Y-%m-%d"),
             "load_before": os.getloadavg()}
  print(f"{machine['machine']}; jax {machine['jax']}; load average before "
        + ", ".join(f"{x:.2f}" for x in machine["load_before"]), flush=True)
  rows = []
  for layout in args.layouts.split(","):
    processes, devices = (int(x) for x in layout.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="bench_multihost_") as workdir:
      rows.append(run_layout(args, processes, devices, workdir))
    print(f"  {layout}: {rows[-1]['steady_s']:.3f} s", flush=True)
  same = all(r["accuracy"] == rows[0]["accuracy"] for r in rows)
  if not same:
    raise SystemExit("the layouts' accuracy[snr, draw] arrays differ: not the same computation")
  machine["load_after"] = os.getloadavg()
  r0 = rows[0]
  print(f"\n{args.snrs} SNRs x {args.draws} draws x {r0['num_images']} images ({args.data}); "
        f"identical accuracy[snr, draw] in every layout: {same}; load average after "
        + ", ".join(f"{x:.2f}" for x in machine["load_after"]))
  print(table(rows))
  if args.output:
    from freqnoise.workdir import write_atomically
    write_atomically(args.output, json.dumps({"command": " ".join(sys.argv), **machine,
                                              "settings": {k: getattr(args, k) for k in (
                                                  "layouts", "data", "draws", "snrs", "limit",
                                                  "batch", "chunk", "repeats")},
                                              "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
  main()
