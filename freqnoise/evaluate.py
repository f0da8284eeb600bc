"""Evaluation of a saved run: restores the latest checkpoint of `--workdir` and runs one of its
evaluators (default: its Monte Carlo block — accuracy per SNR x noise draw, voting vs K).

    python -m freqnoise.evaluate --workdir=DIR --config.eval_noise.snr_db=0
    python -m freqnoise.evaluate --workdir=DIR --snrs_db=-5,0,5,10,20,inf --num_draws=32
    python -m freqnoise.evaluate --workdir=DIR --eval=mc_perplexity

The run's own config (DIR/config.json) is loaded and any `--config.a.b=v` overrides it. `--eval`
names a `config.evals` block (default: the run's first block of type montecarlo, or a default one
when it has none). The eval noise is `config.eval_noise` (kind, power, layers, weight noise); the
SNRs come from `--snrs_db`, else from an explicit `--config.eval_noise.snr_db`, else from the
block's `snrs_db`, else from `config.eval_noise.snr_db`. Training noise never leaks into
evaluation. The evaluator runs with the same key as at the end of training
(`experiment.key(name)`), so the numbers match. Results print as a table and the full arrays go
to DIR/<the block's output> as JSON (redraw plots with freqnoise.plots).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import tempfile

import ml_collections

MONTECARLO = "montecarlo"


def _noise_defaults() -> dict:
  from freqnoise.analog.noise import NoiseConfig
  return {f.name: f.default for f in dataclasses.fields(NoiseConfig) if f.name != "valid"}


def _lists_to_tuples(value):
  if isinstance(value, dict):
    return {k: _lists_to_tuples(v) for k, v in value.items()}
  if isinstance(value, list):
    return tuple(_lists_to_tuples(v) for v in value)
  return value


def _evals_of(data: dict) -> dict:
  """config.evals as {name: block}; a run saved with the old shape (evals = a tuple of names,
  settings in config.<name>) is read into the new one."""
  evals = data.get("evals") or {}
  if isinstance(evals, (list, tuple)):
    evals = {name: {"type": name, **(data.pop(name, None) or {})} for name in evals}
    if MONTECARLO not in evals and isinstance(data.get(MONTECARLO), dict):
      evals[MONTECARLO] = {"type": MONTECARLO, **data.pop(MONTECARLO)}
  return dict(evals)


def montecarlo_name(config) -> str | None:
  """The name of the first `config.evals` block of type montecarlo (None when there is none)."""
  evals = config.get("evals") or {}
  return next((name for name, block in evals.items() if block.get("type") == MONTECARLO), None)


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  """The config saved by the trainer in `workdir`, with `eval_noise` and every `config.evals`
  block filled in with their defaults (so command-line overrides can reach every field); a
  montecarlo block is added when the run has none."""
  from freqnoise import evaluators
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} not found: is {workdir!r} a training run folder?")
  with open(path) as f:
    data = _lists_to_tuples(json.load(f))  # JSON has no tuples; models must stay hashable
  data["eval_noise"] = {**_noise_defaults(), **(data.get("eval_noise") or {})}
  evals = _evals_of(data)
  if not any(block.get("type") == MONTECARLO for block in evals.values()):
    evals[MONTECARLO] = {"type": MONTECARLO}
  for name, block in evals.items():
    block = {"type": block.get("type"), **evaluators.registry.lookup(block.get("type")).defaults,
             **block}
    if "snrs_db" in block and not isinstance(block["snrs_db"], str):
      # A string, so that --config.evals.NAME.snrs_db=-5,0,inf can override it.
      block["snrs_db"] = ",".join(str(s) for s in block["snrs_db"])
    evals[name] = block
  data["evals"] = evals
  return ml_collections.ConfigDict(data)


def check_has_checkpoint(workdir: str) -> None:
  """Raises FileNotFoundError naming workdir/checkpoints when it holds no checkpoint."""
  from freqnoise.workdir import has_checkpoint
  directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
  if not has_checkpoint(workdir):
    raise FileNotFoundError(f"no checkpoint in {directory}: is {workdir!r} a training run folder "
                            "that saved one? (nothing was written)")


def check_output_writable(workdir: str, name: str, output: str) -> str:
  """The path the evaluator `name` will write its arrays to (workdir/output; an absolute `output`
  stands alone); raises OSError naming it, before any computation, when it cannot be written."""
  path = os.path.abspath(os.path.join(workdir, output))
  folder = os.path.dirname(path)
  hint = (f"write the arrays elsewhere with --config.evals.{name}.output=/some/writable/"
          f"{os.path.basename(path)} (absolute paths allowed), or skip them with "
          f"--config.evals.{name}.output=''")
  if not os.path.isdir(folder):
    raise NotADirectoryError(f"cannot write {path}: {folder} is not an existing folder; {hint}")
  if os.path.exists(path) and not os.path.isfile(path):
    raise IsADirectoryError(f"cannot write {path}: it exists and is not a file; {hint}")
  if not os.access(folder, os.W_OK):
    raise PermissionError(f"cannot write {path}: {folder} is not writable; {hint}")
  try:
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".evaluate-probe-")
    os.close(fd)
    os.remove(probe)
  except OSError as e:
    raise PermissionError(f"cannot write {path}: {e}; {hint}") from None
  return path


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str,
                        name: str | None = None) -> tuple[dict[str, float], int]:
  """`evaluate_run`, also returning the step of the checkpoint it evaluated. Everything that can
  be checked without data (the evaluator blocks, a checkpoint to restore, a writable output path)
  is checked before the Experiment is built, so a bad request writes nothing into `workdir`."""
  from freqnoise import evaluators
  name = name or montecarlo_name(config)
  if name is None:
    raise ValueError("config.evals has no montecarlo block; name one with --eval")
  evaluators.check_config(config)
  _, values = evaluators.settings(config, name)
  from freqnoise import distributed
  distributed.initialize(config)  # a multi-process evaluation: every process runs this
  from freqnoise.experiment import Experiment, check_config
  check_config(config)
  check_has_checkpoint(workdir)
  if values.get("output"):
    check_output_writable(workdir, name, values["output"])
  import jax
  experiment = Experiment(config, workdir)
  state = experiment.restore()
  step = int(jax.device_get(state.step))
  return evaluators.run(experiment, state, name), step


def evaluate_run(config: ml_collections.ConfigDict, workdir: str,
                 name: str | None = None) -> dict[str, float]:
  """Restores the latest checkpoint in `workdir` and runs the evaluator `name` of `config.evals`
  (default: its montecarlo block) with the key of the end-of-training evaluation.

  Returns the evaluator's scalars (full arrays: workdir/<the block's output>).
  """
  return evaluate_checkpoint(config, workdir, name)[0]


LEGEND = ("mean: accuracy averaged over the noise draws; ci95: half-width of its 95% "
          "confidence interval (Student t); std: its standard deviation across draws; p2.5: and "
          "p97.5: 2.5th and 97.5th percentiles of the per-draw accuracy; major.: accuracy of a "
          "majority vote over all draws; meanp: accuracy of the mean probability over all draws")


def format_table(scalars: dict[str, float], step: int | None = None) -> str:
  """One row per SNR of an evaluator's 'snr_X/<metric>' scalars (the montecarlo columns first),
  then a legend of the columns and, given `step`, the checkpoint step evaluated."""
  snrs = sorted({k.split("/")[0] for k in scalars if k.startswith("snr_")},
                key=lambda s: float(s.split("_", 1)[1]))
  metrics = [m for m in ("mean", "ci95", "std", "p2.5", "p97.5", "vote_majority",
                         "vote_mean_prob") if any(f"{s}/{m}" in scalars for s in snrs)]
  short = {"vote_majority": "major.", "vote_mean_prob": "meanp"}
  lines = [f"{'SNR dB':>8} " + " ".join(f"{short.get(m, m):>7}" for m in metrics)]
  for s in snrs:
    lines.append(f"{s.split('_', 1)[1]:>8} " + " ".join(
        f"{scalars.get(f'{s}/{m}', math.nan):7.4f}" for m in metrics))
  if metrics:
    lines.append(LEGEND)
  if step is not None:
    lines.append(f"checkpoint step {step}")
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
    sys.exit("usage: python -m freqnoise.evaluate --workdir=DIR [--eval=NAME] [--snrs_db=...] "
             "[--num_draws=N] [--config.eval_noise.snr_db=...]")
  workdir = os.path.expanduser(workdir)
  config_flags.DEFINE_config_dict("config", load_run_config(workdir), "Run config (overridable).")
  flags.DEFINE_string("workdir", None, "Training run folder holding checkpoints/ and config.json.")
  flags.DEFINE_string("eval", None, "config.evals block to run (default: the montecarlo block).")
  flags.DEFINE_string("snrs_db", None, "Comma-separated eval SNRs in dB, e.g. -5,0,5,10,20,inf.")
  flags.DEFINE_integer("num_draws", None, "Noise draws per SNR (voting uses K = 1..num_draws).")

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    config = flags.FLAGS.config
    name = flags.FLAGS.eval or montecarlo_name(config)
    if name not in config.evals:
      raise app.UsageError(f"--eval={name}: the run has evaluators {sorted(config.evals)}")
    block = config.evals[name]
    if flags.FLAGS.snrs_db is not None:
      block.snrs_db = flags.FLAGS.snrs_db
    elif any(a.startswith("--config.eval_noise.snr_db") for a in sys.argv):
      block.snrs_db = ""  # an explicit single eval SNR beats the run's saved grid
    if flags.FLAGS.num_draws is not None:
      block.num_draws = flags.FLAGS.num_draws
    from freqnoise.cli import clean_exit
    with clean_exit():
      scalars, step = evaluate_checkpoint(config, workdir, name)
    print(format_table(scalars, step), flush=True)  # before anything else that could fail
    if block.get("output"):
      print(f"full arrays: {os.path.join(workdir, block.output)}")

  app.run(main)


if __name__ == "__main__":
  run()
