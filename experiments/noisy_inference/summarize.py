"""Table and plots from a sweep folder (one run folder per training SNR, each with montecarlo.json).

    python experiments/noisy_inference/summarize.py /tmp/noisy/mnist --name mnist [--record]

Prints a markdown table (mean single-pass accuracy ± std over draws, and mean-prob / majority
voting over all draws, in %) and writes <name>_acc_vs_snr.png and <name>_acc_vs_k.png into the
sweep folder (or `--out DIR`); `--record` writes them into experiments/noisy_inference/results/
(the README's figures) instead, refused when a run's config.json differs from the recorded
protocol of <name> (`PROTOCOLS`). Existing figures are kept, with a printed line, unless `--force`
(or the runs differ from the protocol).
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from configs.common import override  # noqa: E402
from experiments import recording  # noqa: E402
from freqnoise.plots import plot_accuracy_vs_k, plot_accuracy_vs_snr  # noqa: E402
from freqnoise.robust import result_from_json  # noqa: E402

LABELS = {"clean": "clean-trained", "snr10": "trained at 10 dB", "snr5": "trained at 5 dB",
          "snr0": "trained at 0 dB", "snr0_ft": "clean + 2 epochs at 0 dB"}
# sweep.sh (freqnoise.sweep) names the run folders by the config argument; the names above are
# those of the runs made before it, read when present.
SWEEP_FOLDERS = {"clean": "snr=inf", "snr10": "snr=10", "snr5": "snr=5", "snr0": "snr=0"}


def run_folder(folder: str, run: str) -> str:
  """The folder of `run` (a LABELS key) in a sweep folder: the sweep's name unless only the older
  one is present."""
  old, new = (os.path.join(folder, name) for name in (run, SWEEP_FOLDERS.get(run, run)))
  return old if os.path.isdir(old) and not os.path.isdir(new) else new


PAPER = "noisy_inference"
# The recorded protocol of each result name (the README's commands): its config file and, per run
# folder, the config's argument and the overrides its command line gave. `mnist` (the figures of
# the README's "first pass", under a config since changed) has none: it cannot be recorded again.
_CIFAR_SHORT = ["num_epochs=2", "evals.montecarlo.num_draws=4"]  # the 2-epoch CPU runs
PROTOCOLS = {
    "mnist_v2": ("noisy_mnist", {"snr0": ("snr=0", []), "clean": ("snr=inf", [])}),
    "cifar10": ("noisy_cifar10", {"snr0": ("snr=0", _CIFAR_SHORT),
                                  "clean": ("snr=inf", _CIFAR_SHORT),
                                  "snr5": ("snr=5", _CIFAR_SHORT)}),
}


def load_runs(folder: str) -> dict:
  runs = {}
  for name in LABELS:
    path = os.path.join(run_folder(folder, name), "montecarlo.json")
    if os.path.isfile(path):
      with open(path) as f:
        runs[LABELS[name]] = result_from_json(json.load(f))
  if not runs:
    raise SystemExit(f"no <variant>/montecarlo.json under {folder}")
  return runs


def protocol_differences(name: str, folder: str) -> list[str]:
  """How the runs in `folder` (those with a montecarlo.json) differ from the protocol of `name`:
  their config.json field by field, and a run the protocol has that is missing, or vice versa."""
  if name not in PROTOCOLS:
    return [f"--name {name}: no recorded protocol (recorded: {', '.join(PROTOCOLS)})"]
  module, runs = PROTOCOLS[name]
  get_config = importlib.import_module(f"configs.{module}").get_config
  differs = []
  for run in LABELS:
    present = os.path.isfile(os.path.join(run_folder(folder, run), "montecarlo.json"))
    if present != (run in runs):
      differs.append(f"{run}/: {'a run' if present else 'no run'} here, "
                     f"{'one' if run in runs else 'none'} in the recorded protocol")
    elif present:
      arg, assignments = runs[run]
      config = get_config(arg)
      for assignment in assignments:
        override(config, assignment)
      path = run_folder(folder, run)
      differs += recording.config_differences(path, config,
                                              f"{os.path.basename(path)}/config.json")
  return differs


def table(runs: dict) -> str:
  snrs = next(iter(runs.values())).snrs_db
  head = "| model | " + " | ".join("∞ dB" if math.isinf(s) else f"{s:g} dB" for s in snrs) + " |"
  lines = [head, "|---" * (len(snrs) + 1) + "|"]
  for label, r in runs.items():
    k = r.accuracy.shape[1]
    cells = [f"{100 * m:.2f} ± {100 * s:.2f}" for m, s in zip(r.mean, r.std)]
    lines.append(f"| {label}, 1 pass | " + " | ".join(cells) + " |")
    lines.append(f"| {label}, mean-prob vote K={k} | "
                 + " | ".join(f"{100 * v:.2f}" for v in r.mean_prob[:, -1]) + " |")
    lines.append(f"| {label}, majority vote K={k} | "
                 + " | ".join(f"{100 * v:.2f}" for v in r.majority[:, -1]) + " |")
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
  p = argparse.ArgumentParser()
  p.add_argument("folder")
  p.add_argument("--name", default="mnist")
  p.add_argument("--k_snr", type=float, default=0.0, help="eval SNR of the accuracy-vs-K plot")
  recording.add_arguments(p, "the sweep folder")
  args = p.parse_args(argv)
  runs = load_runs(args.folder)
  differs = protocol_differences(args.name, args.folder)
  out = recording.destination(args, PAPER, args.folder, differs)
  print(table(runs))
  by_snr = os.path.join(out, f"{args.name}_acc_vs_snr.png")
  if recording.skip_existing(by_snr, args.force or bool(differs)):
    return
  with recording.atomic_path(os.path.join(out, f"{args.name}_acc_vs_k.png")) as path:
    plot_accuracy_vs_k(runs, args.k_snr, path, title=f"{args.name}: voting at {args.k_snr:g} dB")
  with recording.atomic_path(by_snr) as path:  # last: it marks the figures as written
    plot_accuracy_vs_snr(runs, path, title=f"{args.name}: accuracy vs eval SNR")
  print(f"wrote {by_snr} and {args.name}_acc_vs_k.png")


if __name__ == "__main__":
  main()
