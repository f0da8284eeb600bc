"""Collects a noisy-defense run pair (experiments/noisy_defense/run.sh) into one result file and a
figure: the target's accuracy on each stored black-box set and under EOT white-box PGD, per
inference SNR (mean over noise draws with a 95% interval, and voting), beside the same clean
examples, the substitute's own numbers and the run lengths.

    python experiments/noisy_defense/summarize.py /tmp/defense/mnist [--name mnist] [--record]

Writes <name>.json and <name>.png into the runs folder (or `--out DIR`); `--record` writes them
into experiments/noisy_defense/results/ (the README's files) instead, refused when a run's
config.json differs from the recorded protocol of <name> (`PROTOCOLS`: the config file's own
settings). An existing <name>.json is kept, with a printed line, unless `--force` (or the runs
differ from the protocol).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from configs import noisy_defense  # noqa: E402
from experiments import recording  # noqa: E402
from freqnoise.metrics import strict_json  # noqa: E402
from freqnoise.plots import plot_accuracy_vs_snr  # noqa: E402
from freqnoise.robust import result_from_json  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PAPER = "noisy_defense"
# The recorded protocol of each result name: the `configs/noisy_defense.py` argument both runs
# were trained with (run.sh; `role=` and the target's `substitute=` are added per run).
PROTOCOLS = {"mnist": "data=mnist", "cifar10": "data=cifar10",
             "mnist_snr20": "data=mnist,train_snr=20"}


def _load(path: str):
  with open(path) as f:
    return json.load(f)


def _run_summary(workdir: str) -> dict:
  config, final = _load(os.path.join(workdir, "config.json")), _load(
      os.path.join(workdir, "final_metrics.json"))
  return {"workdir": workdir, "seed": config["seed"], "model": config["model"],
          "data": config["data"]["source"], "epochs": config["num_epochs"], "steps": final["steps"],
          "batch_size": config["data"]["batch_size"],
          # a re-evaluation of a trained run (nothing left to train) records ~0 s: say unknown
          "train_seconds": final["train_seconds"] if final["train_seconds"] >= 1 else None,
          "test_accuracy": final["test_accuracy"], "adversarial_training": config["adversarial"]}


def protocol_differences(name: str, runs: str) -> list[str]:
  """How the target and substitute runs in `runs` differ from the protocol of result `name`."""
  if name not in PROTOCOLS:
    return [f"--name {name}: no recorded protocol (recorded: {', '.join(PROTOCOLS)})"]
  target = _load(os.path.join(runs, "target", "config.json"))
  pgd = target.get("evals", {}).get("blackbox_pgd", {}).get("source", "")
  arg = PROTOCOLS[name]
  if pgd:  # the substitute's path as the target was given it (where it lies is no setting)
    arg += ",substitute=" + pgd.removesuffix("/pgd.npz")
  protocol = noisy_defense.get_config(f"{arg},role=target")
  differs = recording.config_differences(os.path.join(runs, "target"), protocol,
                                         "target/config.json")
  protocol = noisy_defense.get_config(f"{PROTOCOLS[name]},role=substitute")
  return differs + recording.config_differences(os.path.join(runs, "substitute"), protocol,
                                                "substitute/config.json")


def gain(result) -> dict:
  """The best finite SNR's accuracy minus the noiseless row's: single pass (mean over draws, with
  the half-width of its 95% interval) and the vote over all draws."""
  snrs = result.snrs_db
  inf = int(np.flatnonzero(np.isinf(snrs))[0])
  finite = np.flatnonzero(np.isfinite(snrs))
  best = int(finite[np.argmax(result.mean_prob[finite, -1])])
  return {"best_snr_db": float(snrs[best]), "noiseless_vote": float(result.mean_prob[inf, -1]),
          "best_vote": float(result.mean_prob[best, -1]),
          "vote_gain": float(result.mean_prob[best, -1] - result.mean_prob[inf, -1]),
          "single_pass_gain": float(result.mean[best] - result.mean[inf]),
          "single_pass_ci95": float(result.mean_ci95[best])}


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("runs", help="the RUNS_DIR/<task> folder holding substitute/ and target/")
  parser.add_argument("--name", default=None, help="result name (default: the folder's name)")
  parser.add_argument("--note", default="", help="a note kept in the result file (e.g. what was "
                      "rerun and why)")
  recording.add_arguments(parser, "the runs folder")
  args = parser.parse_args(argv)
  name = args.name or os.path.basename(os.path.normpath(args.runs))
  differs = protocol_differences(name, args.runs)
  folder = recording.destination(args, PAPER, args.runs, differs)
  path = os.path.join(folder, f"{name}.json")
  if recording.skip_existing(path, args.force or bool(differs)):
    return
  target, substitute = (os.path.join(args.runs, r) for r in ("target", "substitute"))
  out = {"target": _run_summary(target), "substitute": _run_summary(substitute), "evals": {},
         "note": args.note}
  curves = {}
  for file in sorted(os.listdir(target)):
    if not (file.startswith(("blackbox", "whitebox")) and file.endswith(".json")):
      continue
    saved = _load(os.path.join(target, file))
    label = file[:-5]
    adversarial, clean = (result_from_json(saved[k]) for k in ("adversarial", "clean"))
    out["evals"][label] = {"set": saved["set"], "noise": saved["noise"],
                           "adversarial": saved["adversarial"], "clean": saved["clean"],
                           "gain": gain(adversarial) if np.isinf(adversarial.snrs_db).any()
                           and np.isfinite(adversarial.snrs_db).any() else None}
    curves[f"{label}: adversarial"] = adversarial
    if label.startswith("blackbox_pgd"):
      curves[f"{label}: clean"] = clean
  with recording.atomic_path(os.path.join(folder, f"{name}.png")) as png:
    plot_accuracy_vs_snr(curves, png, title=f"{name}: adversarially trained target vs inference SNR")
  recording.write_text(path, strict_json(out, indent=1))  # last: it marks the result as written
  print(f"wrote {path} and {name}.png")
  for label, e in out["evals"].items():
    g = e["gain"]
    if g:
      print(f"{label}: noiseless vote {100 * g['noiseless_vote']:.2f}%, best {g['best_snr_db']:g} dB "
            f"vote {100 * g['best_vote']:.2f}% (gain {100 * g['vote_gain']:+.2f}; single pass "
            f"{100 * g['single_pass_gain']:+.2f} ± {100 * g['single_pass_ci95']:.2f})")


if __name__ == "__main__":
  main()
