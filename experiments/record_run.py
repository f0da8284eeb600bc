"""Runs a training command and keeps its result as `experiments/<paper>/results/<name>.json`.

    python experiments/record_run.py experiments/quickstart/results/digits_mlp.json -- \
        python -m freqnoise.main --config=configs/digits_mlp.py --workdir=/tmp/freqnoise_digits

The command must take a fresh `--workdir=DIR` (a resumed run's timing is not a run's timing); after
it exits, DIR's `final_metrics.json` and `config.json` are copied into the result file together
with the command, seed, date, machine and run length, so a README number can be checked against
it (`experiments/tables.py` writes the README tables from these files).

An evaluation of an existing run is recorded the same way, with `--evaluation OUTPUT`: the command
(e.g. `python -m freqnoise.evaluate --workdir=DIR ... --config.evals.montecarlo.output=OUTPUT`)
must write DIR/OUTPUT, which goes into the result file under "montecarlo":

    python experiments/record_run.py experiments/noisy_inference/results/mnist_snr0_k32.json \
        --evaluation mc_0db_k32.json --note "..." -- python -m freqnoise.evaluate --workdir=DIR \
        --snrs_db=0 --num_draws=32 --config.evals.montecarlo.output=mc_0db_k32.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import time


def _workdir(command: list[str]) -> str:
  for i, arg in enumerate(command):
    if arg.startswith("--workdir="):
      return os.path.expanduser(arg.split("=", 1)[1])
    if arg == "--workdir" and i + 1 < len(command):
      return os.path.expanduser(command[i + 1])
  raise SystemExit("the command has no --workdir")


def code_commit() -> str | None:
  """The repository's commit (with '+dirty' if tracked files differ from it), or None outside a
  git checkout: which code a recorded number came from."""
  import subprocess
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", root, "diff", "--quiet", "HEAD"]).returncode != 0
  except (OSError, subprocess.CalledProcessError):
    return None
  return head + ("+dirty" if dirty else "")


def machine() -> dict:
  """What the run ran on: CPU model and count, load at the start (cores may be shared), versions."""
  cpu = platform.processor()
  try:
    with open("/proc/cpuinfo") as f:
      names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    cpu = names[0] if names else cpu
  except OSError:
    pass
  import jax  # the run's own process imports it too; here only for versions and devices
  return {"cpu": cpu, "cpu_count": os.cpu_count(), "platform": platform.platform(),
          "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
          "python": platform.python_version(), "jax": jax.__version__,
          "devices": sorted({d.platform for d in jax.devices()}), "commit": code_commit()}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("out", help="result file, experiments/<paper>/results/<name>.json")
  parser.add_argument("--evaluation", default="", help="the command evaluates an existing run and "
                      "writes this file in its workdir (kept under 'montecarlo')")
  parser.add_argument("--note", default="", help="free text kept with the result (e.g. provenance)")
  parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the training command")
  args = parser.parse_args()
  command = args.command[1:] if args.command[:1] == ["--"] else args.command
  if not command:
    raise SystemExit("give the command after --")
  workdir = _workdir(command)
  if os.path.exists(workdir) and not args.evaluation:
    raise SystemExit(f"{workdir} exists: record a fresh run, not a resumed one")
  if args.evaluation and not os.path.isdir(workdir):
    raise SystemExit(f"--evaluation needs an existing run folder, {workdir} is none")
  record = {"command": shlex.join(command), "recorded_by": "experiments/record_run.py",
            **({"note": args.note} if args.note else {}),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine()}
  start = time.perf_counter()
  subprocess.run(command, check=True)
  record["run_wall_seconds"] = round(time.perf_counter() - start, 2)
  if args.evaluation:
    with open(os.path.join(workdir, args.evaluation)) as f:
      record["montecarlo"] = json.load(f)
  metrics = os.path.join(workdir, "final_metrics.json")
  if os.path.isfile(metrics):
    with open(metrics) as f:
      record["final_metrics"] = json.load(f)
  with open(os.path.join(workdir, "config.json")) as f:
    config = json.load(f)
  record["seed"] = config.get("seed")
  record["config"] = config
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out + ".tmp", "w") as f:
    json.dump(record, f, indent=1)
    f.write("\n")
  os.replace(args.out + ".tmp", args.out)
  print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
  main()
