"""Table and plots from a sweep folder (one run folder per training SNR, each with montecarlo.json).

    python experiments/noisy_inference/summarize.py /tmp/noisy/mnist --name mnist

Prints a markdown table (mean single-pass accuracy ± std over draws, and mean-prob / majority
voting over all draws, in %) and writes <name>_acc_vs_snr.png and <name>_acc_vs_k.png into --out
(default: results/ next to this script).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from freqnoise.plots import plot_accuracy_vs_k, plot_accuracy_vs_snr  # noqa: E402
from freqnoise.robust import result_from_json  # noqa: E402

LABELS = {"clean": "clean-trained", "snr10": "trained at 10 dB", "snr5": "trained at 5 dB",
          "snr0": "trained at 0 dB", "snr0_ft": "clean + 2 epochs at 0 dB"}


def load_runs(folder: str) -> dict:
  runs = {}
  for name in LABELS:
    path = os.path.join(folder, name, "montecarlo.json")
    if os.path.isfile(path):
      with open(path) as f:
        runs[LABELS[name]] = result_from_json(json.load(f))
  if not runs:
    raise SystemExit(f"no <variant>/montecarlo.json under {folder}")
  return runs


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


def main():
  p = argparse.ArgumentParser()
  p.add_argument("folder")
  p.add_argument("--name", default="mnist")
  p.add_argument("--k_snr", type=float, default=0.0, help="eval SNR of the accuracy-vs-K plot")
  p.add_argument("--out", default=os.path.join(HERE, "results"), help="folder for the figures")
  args = p.parse_args()
  runs = load_runs(args.folder)
  print(table(runs))
  plot_accuracy_vs_snr(runs, os.path.join(args.out, f"{args.name}_acc_vs_snr.png"),
                       title=f"{args.name}: accuracy vs eval SNR")
  plot_accuracy_vs_k(runs, args.k_snr, os.path.join(args.out, f"{args.name}_acc_vs_k.png"),
                     title=f"{args.name}: voting at {args.k_snr:g} dB")


if __name__ == "__main__":
  main()
