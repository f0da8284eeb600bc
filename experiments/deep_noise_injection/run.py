"""Deep Noise Injection sweep: train at SNR {inf, 20, 10, 5, 0} dB, evaluate over {-5..inf} dB.

  python experiments/deep_noise_injection/run.py --task seqmnist --record  # RNN and LSTM
  python experiments/deep_noise_injection/run.py --task ptb --record       # LSTM LM
  python experiments/deep_noise_injection/run.py --task seqmnist --steps 50 --cells lstm  # a try
Each run is `freqnoise.train.train_and_evaluate` on configs/dni_seqmnist.py or configs/dni_ptb.py
with `train_noise.snr_db` set, followed by Monte Carlo evaluation of the final weights at every eval
SNR (the library's `montecarlo` evaluator: accuracy over draws + voting; `mc_perplexity` for the LM,
both in freqnoise/evaluators).
Finished runs are reused (the workdir holds their results), so the script can be re-run to redraw.
Writes <task><tag>.json (every run's arrays), <task><tag>.png (figure) and RESULTS_<task><tag>.md
(table) into `<workroot>/results` (or `--out DIR`); `--record` writes the README's
experiments/deep_noise_injection/results/ instead, refused when the settings differ from the
recorded protocol of that task and tag (`PROTOCOLS`). An existing <task><tag>.json is skipped with
a printed line (`--force` reruns it; never skipped under other settings).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import matplotlib
import ml_collections
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from configs import dni_ptb, dni_seqmnist  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from experiments import recording  # noqa: E402

TRAIN_SNRS = (math.inf, 20.0, 10.0, 5.0, 0.0)
EVAL_SNRS = (-5.0, 0.0, 5.0, 10.0, 20.0, math.inf)
PAPER = "deep_noise_injection"
# The recorded protocol of each result file results/<task><tag>.json (the README's commands);
# `--record` refuses any other setting (to record a new one, add its task and tag here first).
_SWEEP = dict(cells=["lstm", "rnn"], train_snrs=sorted(TRAIN_SNRS), epochs=3, steps=0, draws=5,
              power_gradient=False, layers="all")
_PTB = dict(_SWEEP, cells=["lstm"], train_snrs=[5.0, 10.0, math.inf], epochs=1, draws=2)
PROTOCOLS = {
    ("seqmnist", ""): _SWEEP,
    ("seqmnist", "_pgrad"): dict(_SWEEP, train_snrs=[0.0], power_gradient=True),
    ("ptb", ""): _PTB,
    ("ptb", "_pgrad"): dict(_PTB, train_snrs=[0.0], power_gradient=True),
    ("ptb", "_lstm_only"): dict(_PTB, train_snrs=[10.0, math.inf], layers="all_but_last"),
}


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
  # A finished workdir returns its stored metrics; one under other settings is refused by name.
  final, _ = recording.train(config, workdir)
  with open(os.path.join(workdir, out_file)) as f:
    mc = json.load(f)
  draws = len(mc["accuracy" if task == "seqmnist" else "perplexity"][0])
  if draws != args.draws:  # its evaluator block ran before with another count
    raise SystemExit(f"{workdir}/{out_file} holds {draws} noise draws, not --draws {args.draws}: "
                     "give another --workroot (or --tag), or evaluate the run again with "
                     f"python -m freqnoise.evaluate --workdir={workdir}")
  return {"cell": cell, "train_snr_db": train_snr, "epochs": args.epochs, "steps": final["steps"],
          "train_seconds": final["train_seconds"], "clean_test": final.get("test_accuracy"),
          "clean_perplexity": final.get("test_perplexity"), "mc": mc}


def _x(snrs):
  """Plot positions: finite SNRs as they are, inf one grid step right of the largest."""
  finite = [s for s in snrs if math.isfinite(s)]
  return [s if math.isfinite(s) else max(finite) + 10 for s in snrs]


def report(task: str, runs: list[dict], args, out: str) -> None:
  """Writes `out`/<task><tag>.json, .png and RESULTS_<task><tag>.md, each atomically."""
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
  with recording.atomic_path(os.path.join(out, f"{task}{args.tag}.png")) as path:
    fig.savefig(path, dpi=120)
  plt.close(fig)
  recording.write_text(os.path.join(out, f"RESULTS_{task}{args.tag}.md"), "\n".join(lines) + "\n")
  recording.write_json(os.path.join(out, f"{task}{args.tag}.json"), runs)  # last: the marker
  print("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
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
  recording.add_arguments(parser, "WORKROOT/results")
  args = parser.parse_args(argv)
  cells = args.cells.split(",") if args.cells else (["rnn", "lstm"] if args.task == "seqmnist"
                                                    else ["lstm"])
  snrs = [float(s) for s in args.train_snrs.split(",")]
  settings = dict(cells=sorted(cells), train_snrs=sorted(snrs), epochs=args.epochs,
                  steps=args.steps, draws=args.draws, power_gradient=args.power_gradient,
                  layers=args.layers)
  differs = recording.differences(settings, PROTOCOLS, (args.task, args.tag),
                                  f"--task {args.task} --tag {args.tag!r}")
  out = recording.destination(args, PAPER, os.path.join(args.workroot, "results"), differs)
  if recording.skip_existing(os.path.join(out, f"{args.task}{args.tag}.json"),
                             args.force or bool(differs)):
    return
  runs = [run_one(args.task, cell, snr, args) for cell in cells for snr in snrs]
  report(args.task, runs, args, out)


if __name__ == "__main__":
  main()
