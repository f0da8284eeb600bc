"""Deep Noise Injection sweep: train at SNR {inf, 20, 10, 5, 0} dB, evaluate over {-5..inf} dB.

  PYTHONPATH=. python experiments/deep_noise_injection/run.py --task seqmnist   # RNN and LSTM
  PYTHONPATH=. python experiments/deep_noise_injection/run.py --task ptb        # LSTM LM
Each run is `freqnoise.train.train_and_evaluate` on configs/dni_seqmnist.py or configs/dni_ptb.py
with `train_noise.snr_db` set, followed by Monte Carlo evaluation of the final weights at every eval
SNR (the library's `montecarlo` evaluator: accuracy over draws + voting; `mc_perplexity` for the LM,
both in freqnoise/evaluators).
Finished runs are reused (the workdir holds their results), so the script can be re-run to redraw.
Writes RESULTS_<task>.md (table) and <task>.png (figure) next to this file.
"""

from __future__ import annotations

import argparse
import json
import math
import os

import matplotlib
import ml_collections
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from configs import dni_ptb, dni_seqmnist  # noqa: E402
from freqnoise.train import train_and_evaluate  # noqa: E402

TRAIN_SNRS = (math.inf, 20.0, 10.0, 5.0, 0.0)
EVAL_SNRS = (-5.0, 0.0, 5.0, 10.0, 20.0, math.inf)
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")  # where report() writes


def run_one(task: str, cell: str, train_snr: float, args) -> dict:
  workdir = os.path.join(args.workroot, f"{task}_{cell}_train{train_snr:g}{args.tag}")
  if task == "seqmnist":
    config = dni_seqmnist.get_config(f"cell={cell}")
    config.evals = ml_collections.ConfigDict({"montecarlo": {
        "type": "montecarlo", "snrs_db": EVAL_SNRS, "num_draws": args.draws, "batch_size": 1000}})
    out_file = "montecarlo.json"
  else:
    config = dni_ptb.get_config("quick")  # Adam: far lower perplexity than SGD in a few hundred steps
    # 20 test streams keep 99.4% of the test tokens (81,900 of 82,430) as 2,340 rows of 35, run
    # 20 streams at a time with the LSTM state carried from row block to row block.
    config.data.eval_batch_size = 20
    config.evals = ml_collections.ConfigDict({"mc_perplexity": {
        "type": "mc_perplexity", "snrs_db": EVAL_SNRS, "num_draws": args.draws}})
    out_file = "mc_perplexity.json"
  config.num_epochs = args.epochs
  if args.steps:
    config.num_epochs, config.num_steps = 0, args.steps
  config.eval_every = 10 ** 9  # evaluate once, at the end
  config.tensorboard = False
  config.train_noise.snr_db = train_snr
  config.train_noise.power_gradient = args.power_gradient
  config.train_noise.layers = config.eval_noise.layers = args.layers
  done = os.path.join(workdir, "final_metrics.json")
  if not (os.path.isfile(done) and os.path.isfile(os.path.join(workdir, out_file))):
    train_and_evaluate(config, workdir)
  with open(done) as f:
    final = json.load(f)
  with open(os.path.join(workdir, out_file)) as f:
    mc = json.load(f)
  return {"cell": cell, "train_snr_db": train_snr, "epochs": args.epochs, "steps": final["steps"],
          "train_seconds": final["train_seconds"], "clean_test": final.get("test_accuracy"),
          "clean_perplexity": final.get("test_perplexity"), "mc": mc}


def _x(snrs):
  """Plot positions: finite SNRs as they are, inf one grid step right of the largest."""
  finite = [s for s in snrs if math.isfinite(s)]
  return [s if math.isfinite(s) else max(finite) + 10 for s in snrs]


def report(task: str, runs: list[dict], args) -> None:
  cells = sorted({r["cell"] for r in runs}, key=["rnn", "lstm"].index)
  metric = "accuracy" if task == "seqmnist" else "perplexity"
  header = " | ".join(("∞" if math.isinf(s) else f"{s:g}") for s in EVAL_SNRS)
  lines = [f"# Deep Noise Injection, {task}: test {metric} (mean over {args.draws} noise draws) "
           f"vs eval SNR (dB); {runs[0]['steps']} train steps per run"
           + (f"; analog products: {args.layers}" if args.layers != "all" else "") + "\n"]
  fig, axes = plt.subplots(1, len(cells), figsize=(5 * len(cells), 3.8), squeeze=False)
  for ax, cell in zip(axes[0], cells):
    lines += [f"\n## {cell.upper()}\n", f"| train SNR | {header} | spread, all | spread, ≥ 5 dB | train s |",
              "|---" * (len(EVAL_SNRS) + 4) + "|"]
    for r in [r for r in runs if r["cell"] == cell]:
      values = np.asarray(r["mc"][metric])  # [S, D]
      mean = values.mean(1)
      scale = 100.0 if metric == "accuracy" else 1.0
      cells_txt = " | ".join(f"{scale * m:.2f}" for m in mean)
      spread = scale * (mean.max() - mean.min())
      high = mean[np.asarray(EVAL_SNRS) >= 5.0]  # where a usable model still works
      spread_high = scale * (high.max() - high.min())
      label = "∞ (clean)" if math.isinf(r["train_snr_db"]) else f"{r['train_snr_db']:g} dB"
      lines.append(f"| {label} | {cells_txt} | {spread:.2f} | {spread_high:.2f} | "
                   f"{r['train_seconds']:.0f} |")
      ax.errorbar(_x(EVAL_SNRS), scale * mean, yerr=scale * values.std(1), marker="o",
                  capsize=2, label=f"train {label}")
      if metric == "accuracy":
        vote = 100.0 * np.asarray(r["mc"]["majority"])[:, -1]
        r["vote"] = vote
    ax.set_xticks(_x(EVAL_SNRS), [("∞" if math.isinf(s) else f"{s:g}") for s in EVAL_SNRS])
    ax.set_xlabel("evaluation SNR (dB)")
    ax.set_ylabel("test accuracy (%)" if metric == "accuracy" else "test perplexity")
    if metric == "perplexity":
      ax.set_yscale("log")
    ax.set_title(f"{task}: {cell.upper()}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if metric == "accuracy":
      lines += [f"\nMajority vote over {args.draws} noisy passes (%):\n",
                f"| train SNR | {header} |", "|---" * (len(EVAL_SNRS) + 1) + "|"]
      for r in [r for r in runs if r["cell"] == cell]:
        label = "∞ (clean)" if math.isinf(r["train_snr_db"]) else f"{r['train_snr_db']:g} dB"
        lines.append(f"| {label} | " + " | ".join(f"{v:.2f}" for v in r["vote"]) + " |")
  fig.tight_layout()
  fig.savefig(os.path.join(HERE, f"{task}{args.tag}.png"), dpi=120)
  with open(os.path.join(HERE, f"RESULTS_{task}{args.tag}.md"), "w") as f:
    f.write("\n".join(lines) + "\n")
  with open(os.path.join(HERE, f"{task}{args.tag}.json"), "w") as f:
    json.dump(runs, f, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
  print("\n".join(lines))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--task", choices=("seqmnist", "ptb"), required=True)
  parser.add_argument("--cells", default="", help="comma list (default rnn,lstm / lstm for ptb)")
  parser.add_argument("--train_snrs", default=",".join(f"{s:g}" for s in TRAIN_SNRS))
  parser.add_argument("--epochs", type=int, default=3)
  parser.add_argument("--steps", type=int, default=0, help="train steps per run (overrides --epochs)")
  parser.add_argument("--draws", type=int, default=5)
  parser.add_argument("--workroot", default="/tmp/dni_runs")
  parser.add_argument("--power_gradient", action="store_true",
                      help="train with the gradient through the noise power (NoiseConfig)")
  parser.add_argument("--tag", default="", help="suffix of run folders and result files")
  parser.add_argument("--layers", default="all",
                      help="which products are analog in training and evaluation: all, "
                           "all_but_last (e.g. keep the LM's softmax layer digital), ...")
  args = parser.parse_args()
  cells = args.cells.split(",") if args.cells else (["rnn", "lstm"] if args.task == "seqmnist"
                                                    else ["lstm"])
  snrs = [float(s) for s in args.train_snrs.split(",")]
  runs = [run_one(args.task, cell, snr, args) for cell in cells for snr in snrs]
  report(args.task, runs, args)


if __name__ == "__main__":
  main()
