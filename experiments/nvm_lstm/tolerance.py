"""ADC-noise and weight-noise tolerance of a trained run, Monte Carlo over noise draws (paper 4).

  python experiments/nvm_lstm/tolerance.py WORKDIR OUT.json \
      [--adc_lsb 0,0.25,0.5,1,2] [--weight_sigma 0,0.02,0.05,0.1,0.2] [--draws 8] \
      [--reference FLOAT_RESULT.json] [--record] [--force]

WORKDIR is a finished training run (e.g. the 4/4/4 QAT LSTM); its last checkpoint is evaluated,
never retrained. Each level is `--draws` independent noise draws over the whole test split:
* ADC noise: `config.quant.adc_noise_lsb` = the level (Gaussian, std in LSBs of each product's
  ADC, drawn afresh at every product call, before the ADC unless the run says 'after'); weight
  noise off. Needs a run with an ADC.
* weight noise: `config.eval_noise` additive weight noise W̃ = Q_w(W) + σ_w·max|Q_w(W)|·ε, one
  programming draw per chip (draw), the same for every batch and time step of that pass; ADC
  noise off (also for a run trained with it), output noise off, so each curve isolates one noise.
Classifiers are scored with the `montecarlo` evaluator (accuracy), language models with
`mc_perplexity` (the LSTM state carried over the test stream as in training). Writes OUT (every
per-draw value, mean, std and a 95% t-interval of the mean per level, the run's command and
machine) atomically, and OUT with .png: the two curves, the reference (float) run as a line.
An OUT in experiments/nvm_lstm/results/ (the README's files) needs `--record`, refused when the
levels, draws or reference differ from the recorded protocol of the task (`PROTOCOLS`, run.sh's);
an existing OUT is kept, with a printed line, unless `--force` (experiments/recording.py).

  python experiments/nvm_lstm/tolerance.py compare OUT.png A.json B.json ... [--record] [--force]
draws the curves of several result files in one figure.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from record_run import machine  # noqa: E402  (experiments/record_run.py)

from experiments import recording  # noqa: E402
from freqnoise.workdir import write_atomically  # noqa: E402

PAPER = "nvm_lstm"
# The recorded protocol per task (run.sh): noise levels and draws; the reference is a recorded run.
PROTOCOLS = {
    "seqmnist": {"adc_lsb": [0.0, 0.25, 0.5, 1.0, 2.0],
                 "weight_sigma": [0.0, 0.02, 0.05, 0.1, 0.2], "draws": 8},
    "ptb": {"adc_lsb": [0.0, 0.5, 1.0, 2.0], "weight_sigma": [0.0, 0.05, 0.1, 0.2], "draws": 4},
}


def parse_levels(text: str, name: str) -> list[float]:
  """Non-negative noise levels from '0,0.5,1' (an error naming `name` otherwise)."""
  try:
    levels = [float(t) for t in text.split(",") if t.strip()]
  except ValueError:
    raise SystemExit(f"--{name}: cannot read {text!r} as comma-separated numbers") from None
  if not levels or any(not math.isfinite(v) or v < 0 for v in levels):
    raise SystemExit(f"--{name}: levels must be finite numbers >= 0, got {text!r}")
  return levels


def summarize(values: list[float]) -> dict:
  """Mean, std and the 95% Student-t interval of the mean of per-draw values."""
  from scipy import stats
  v = np.asarray(values, np.float64)
  std = float(v.std(ddof=1)) if len(v) > 1 else 0.0
  half = float(stats.t.ppf(0.975, len(v) - 1) * std / math.sqrt(len(v))) if len(v) > 1 else 0.0
  return {"values": v.tolist(), "mean": float(v.mean()), "std": std, "ci95": half,
          "min": float(v.min()), "max": float(v.max())}


def evaluate_level(base, workdir: str, kind: str, level: float, draws: int, lm: bool) -> list[float]:
  """Per-draw test accuracy (or perplexity) of the run at one noise level."""
  import ml_collections
  from freqnoise.evaluate import evaluate_checkpoint
  config = ml_collections.ConfigDict(base.to_dict())
  config.eval_noise.snr_db = math.inf
  config.eval_noise.weight_noise = "none"
  if kind == "adc":
    config.quant.adc_noise_lsb = level
  else:
    config.quant.adc_noise_lsb = 0.0
    config.eval_noise.weight_noise = "additive" if level else "none"
    config.eval_noise.weight_sigma = level
    config.eval_noise.weight_draw = "programming"
  out = f"tolerance_{kind}_{level:g}.json"
  name = "mc_perplexity" if lm else "montecarlo"
  block = {"type": name, "snrs_db": (math.inf,), "num_draws": draws, "output": out}
  config.evals = ml_collections.ConfigDict({name: block})
  evaluate_checkpoint(config, workdir, name)
  with open(os.path.join(workdir, out)) as f:
    saved = json.load(f)
  return saved["perplexity"][0] if lm else saved["accuracy"][0]


def _task_name(result: dict) -> str:
  return "sequential MNIST" if "mnist" in result["task"] else "PTB"


def plot(results: list[dict], path: str) -> None:
  """The ADC-noise and weight-noise curves of `results` (one line per run), the float reference
  of the first as a dashed line, written atomically to `path`."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  first = results[0]
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
  titles = {"adc": "ADC noise (std in ADC LSBs)", "weight": "weight noise σ_w (× max|W|)"}
  for ax, kind in zip(axes, ("adc", "weight")):
    for result in results:
      rows = result[kind]
      if not rows:
        continue
      x = [r["level"] for r in rows]
      mean = np.array([r["mean"] for r in rows])
      lo, hi = mean - [r["min"] for r in rows], [r["max"] for r in rows] - mean
      ax.errorbar(x, mean, yerr=[lo, hi], marker="o", capsize=3,
                  label=f"{result['label']} (mean, min-max of {result['draws']} draws)")
    if first.get("reference") is not None:
      ax.axhline(first["reference"]["value"], color="gray", ls="--",
                 label=f"{first['reference']['label']}, noiseless")
    ax.set_xlabel(titles[kind])
    ax.set_ylabel(f"test {first['metric']}")
    if first["metric"] == "perplexity":
      ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.suptitle(f"{_task_name(first)}: noise tolerance of the LSTM")
  fig.tight_layout()
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=110)
  plt.close(fig)
  os.replace(tmp, path)


def compare(argv: list[str]) -> None:
  """`tolerance.py compare OUT.png A.json B.json ...`: the curves of several runs in one figure."""
  flags = {"--record", "--force"} & set(argv)
  argv = [a for a in argv if a not in flags]
  if len(argv) < 2 or not argv[0].endswith(".png"):
    raise SystemExit("usage: tolerance.py compare OUT.png RESULT.json [RESULT.json ...] "
                     "[--record] [--force]")
  recording.check_file(argv[0], "--record" in flags, PAPER, [])
  if recording.skip_existing(argv[0], "--force" in flags):
    return
  results = []
  for path in argv[1:]:
    with open(path) as f:
      results.append(json.load(f))
  if len({r["metric"] for r in results}) > 1:
    raise SystemExit("compare: the results mix accuracy and perplexity")
  plot(results, argv[0])
  print(f"wrote {argv[0]}")


def main() -> None:
  if sys.argv[1:2] == ["compare"]:
    return compare(sys.argv[2:])
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("workdir", help="a finished training run")
  parser.add_argument("out", help="result file, experiments/nvm_lstm/results/<name>.json")
  parser.add_argument("--adc_lsb", default="0,0.25,0.5,1,2", help="ADC noise levels, LSBs")
  parser.add_argument("--weight_sigma", default="0,0.02,0.05,0.1,0.2",
                      help="additive weight noise levels, fractions of max|W|")
  parser.add_argument("--draws", type=int, default=8, help="noise draws (chips) per level")
  parser.add_argument("--reference", default="", help="a record_run result of the float run")
  parser.add_argument("--label", default="", help="the run's name in the plot (default: its bits)")
  parser.add_argument("--record", action="store_true", help="OUT is in experiments/nvm_lstm/"
                      "results/: refused when the settings differ from the recorded protocol")
  parser.add_argument("--force", action="store_true", help="rerun when OUT exists")
  args = parser.parse_args()
  adc_levels = parse_levels(args.adc_lsb, "adc_lsb") if args.adc_lsb else []
  weight_levels = parse_levels(args.weight_sigma, "weight_sigma") if args.weight_sigma else []
  if args.draws < 2:
    raise SystemExit(f"--draws must be >= 2 (an interval needs two draws), got {args.draws}")
  from freqnoise.evaluate import check_has_checkpoint, load_run_config
  check_has_checkpoint(args.workdir)
  base = load_run_config(args.workdir)
  if adc_levels and not base.get("quant", {}).get("adc_bits"):
    raise SystemExit(f"{args.workdir} has no ADC (config.quant.adc_bits = 0): ADC noise is in "
                     "LSBs of the ADC; give --adc_lsb '' to skip that curve")
  lm = bool(base.get("report_perplexity", False))
  task = "ptb" if lm else "seqmnist"
  differs = recording.differences({"adc_lsb": adc_levels, "weight_sigma": weight_levels,
                                   "draws": args.draws}, PROTOCOLS, task, f"task {task}")
  if args.reference and not recording.is_results_path(args.reference):
    differs.append(f"--reference {args.reference}: not a recorded result (results/)")
  recording.check_file(args.out, args.record, PAPER, differs)
  if recording.skip_existing(args.out, args.force or bool(differs)):
    return
  with open(os.path.join(args.workdir, "final_metrics.json")) as f:
    final = json.load(f)
  q = base.quant
  label = args.label or (f"{q.weight_bits}/{q.dac_bits}/{q.adc_bits}-bit" if q.adc_bits else "float")
  if q.adc_bits and (q.adc_noise_lsb or base.train_noise.weight_noise != "none"):
    label += ", noise-aware QAT"  # trained with ADC noise or weight noise
  result = {"task": base.data.source, "metric": "perplexity" if lm else "accuracy",
            "label": label, "workdir": os.path.abspath(args.workdir), "draws": args.draws,
            "command": " ".join(sys.argv), "recorded_by": "experiments/nvm_lstm/tolerance.py",
            "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), "run_final_metrics": final, "run_quant": q.to_dict(),
            "adc_noise_position": q.adc_noise_position, "adc": [], "weight": [],
            "reference": None}
  if args.reference:
    with open(args.reference) as f:
      ref = json.load(f)
    key = "test_perplexity" if lm else "test_accuracy"
    result["reference"] = {"file": args.reference, "label": "float",
                           "value": ref["final_metrics"][key]}
  start = time.perf_counter()
  for kind, levels in (("adc", adc_levels), ("weight", weight_levels)):
    for level in levels:
      values = evaluate_level(base, args.workdir, kind, level, args.draws, lm)
      row = {"level": level, **summarize(values)}
      result[kind].append(row)
      print(f"{kind} noise {level:g}: {result['metric']} {row['mean']:.4f} ± {row['ci95']:.4f} "
            f"(95% CI of the mean, {args.draws} draws; {time.perf_counter() - start:.0f} s so far)",
            flush=True)
      write_atomically(args.out, json.dumps(result, indent=1) + "\n")  # partial results as it goes
  result["wall_seconds"] = round(time.perf_counter() - start, 1)
  write_atomically(args.out, json.dumps(result, indent=1) + "\n")
  plot([result], os.path.splitext(args.out)[0] + ".png")
  print(f"wrote {args.out} and its .png")


if __name__ == "__main__":
  main()
