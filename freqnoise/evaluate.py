"""Monte Carlo evaluation of a saved run: restores the latest checkpoint of `--workdir` and runs
the `montecarlo` evaluator (accuracy per SNR x noise draw, voting vs K).

    python -m freqnoise.evaluate --workdir=DIR --config.eval_noise.snr_db=0
    python -m freqnoise.evaluate --workdir=DIR --snrs_db=-5,0,5,10,20,inf --num_draws=32

The run's own config (DIR/config.json) is loaded and any `--config.a.b=v` overrides it. The eval
noise is `config.eval_noise` (kind, power, layers, weight noise; default: output noise on every
product, power per example); its SNRs come from `--snrs_db`, else from an explicit
`--config.eval_noise.snr_db`, else from the run's saved `config.montecarlo.snrs_db`, else from its
`config.eval_noise.snr_db`. Training noise never leaks into evaluation. Results print as a table
and go to DIR/<--output> as JSON (redraw plots with freqnoise.plots).
"""

from __future__ import annotations

import json
import math
import os
import sys

import jax
import ml_collections

EVAL_NOISE_DEFAULTS = {"kind": "output", "snr_db": math.inf, "weight_noise": "none",
                       "weight_sigma": 0.0, "power": "per_example", "layers": "all"}


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  """The config saved by the trainer in `workdir`, with `eval_noise` and `montecarlo` blocks
  filled in with defaults so that command-line overrides can reach every field."""
  from freqnoise.robust.evaluators import MONTECARLO_DEFAULTS
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} not found: is {workdir!r} a training run folder?")
  with open(path) as f:
    data = _lists_to_tuples(json.load(f))  # JSON has no tuples; models must stay hashable
  data["eval_noise"] = {**EVAL_NOISE_DEFAULTS, **(data.get("eval_noise") or {})}
  data["montecarlo"] = {**MONTECARLO_DEFAULTS, **(data.get("montecarlo") or {})}
  data["montecarlo"]["snrs_db"] = ",".join(str(s) for s in data["montecarlo"]["snrs_db"]) \
      if not isinstance(data["montecarlo"]["snrs_db"], str) else data["montecarlo"]["snrs_db"]
  return ml_collections.ConfigDict(data)


def _lists_to_tuples(value):
  if isinstance(value, dict):
    return {k: _lists_to_tuples(v) for k, v in value.items()}
  if isinstance(value, list):
    return tuple(_lists_to_tuples(v) for v in value)
  return value


def evaluate_run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Restores the latest checkpoint in `workdir` and runs the montecarlo evaluator.

  Returns the evaluator's scalars (the full arrays are in workdir/config.montecarlo.output).
  """
  from freqnoise.checkpoint import Checkpointer
  from freqnoise.robust.evaluators import run_evaluator
  from freqnoise.train import Task
  task = Task(config, workdir)
  root_key = jax.random.PRNGKey(config.seed)
  state = jax.jit(task.init_state)(jax.random.fold_in(root_key, 0))
  checkpointer = Checkpointer(workdir, every=max(1, config.checkpoint_every))
  if checkpointer.latest_step() is None:
    raise FileNotFoundError(f"no checkpoint in {checkpointer.directory}")
  state = checkpointer.restore(state)
  checkpointer.close()
  # Same key as the end-of-training evaluation, so the numbers match.
  return run_evaluator("montecarlo", task, state, jax.random.fold_in(root_key, 2))


def format_table(scalars: dict) -> str:
  snrs = sorted({k.split("/")[0] for k in scalars},
                key=lambda s: float(s.split("_", 1)[1]))
  lines = [f"{'SNR dB':>8} {'mean':>7} {'std':>7} {'p2.5':>7} {'p97.5':>7} {'major.':>7} "
           f"{'meanp':>7}"]
  for s in snrs:
    v = [scalars[f"{s}/{k}"] for k in ("mean", "std", "p2.5", "p97.5", "vote_majority",
                                       "vote_mean_prob")]
    lines.append(f"{s.split('_', 1)[1]:>8} " + " ".join(f"{x:7.4f}" for x in v))
  return "\n".join(lines)


def _workdir_from_argv(argv: list[str]) -> str | None:
  for i, arg in enumerate(argv):
    if arg.startswith("--workdir="):
      return arg.split("=", 1)[1]
    if arg == "--workdir" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def run() -> None:
  from absl import app, flags, logging
  from ml_collections import config_flags
  sys.path.insert(0, os.getcwd())
  workdir = _workdir_from_argv(sys.argv)
  if workdir is None:
    sys.exit("usage: python -m freqnoise.evaluate --workdir=DIR [--snrs_db=...] "
             "[--num_draws=N] [--config.eval_noise.snr_db=...]")
  workdir = os.path.expanduser(workdir)
  config_flags.DEFINE_config_dict("config", load_run_config(workdir), "Run config (overridable).")
  flags.DEFINE_string("workdir", None, "Training run folder holding checkpoints/ and config.json.")
  flags.DEFINE_string("snrs_db", None, "Comma-separated eval SNRs in dB, e.g. -5,0,5,10,20,inf.")
  flags.DEFINE_integer("num_draws", None, "Noise draws per SNR (voting uses K = 1..num_draws).")

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    config = flags.FLAGS.config
    if flags.FLAGS.snrs_db is not None:
      config.montecarlo.snrs_db = flags.FLAGS.snrs_db
    elif any(a.startswith("--config.eval_noise.snr_db") for a in sys.argv):
      config.montecarlo.snrs_db = ""  # an explicit single eval SNR beats the run's saved grid
    if flags.FLAGS.num_draws is not None:
      config.montecarlo.num_draws = flags.FLAGS.num_draws
    scalars = evaluate_run(config, workdir)
    print(format_table(scalars))
    print(f"full arrays: {os.path.join(workdir, config.montecarlo.output)}")

  app.run(main)


if __name__ == "__main__":
  run()
