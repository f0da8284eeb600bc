"""Evaluation of a saved run: restores the latest checkpoint of `--workdir` and runs one of its
evaluators (default: the one that measures what the run was trained for).

    python -m freqnoise.evaluate --workdir=DIR          # the run's own evaluator, default settings
    python -m freqnoise.evaluate --workdir=DIR --config.eval_noise.snr_db=0
    python -m freqnoise.evaluate --workdir=DIR --snrs_db=-5,0,5,10,20,inf --num_draws=32
    python -m freqnoise.evaluate --workdir=DIR --eval=mc_perplexity

The run's own config (DIR/config.json) is loaded and any `--config.a.b=v` overrides it. `--eval`
names a `config.evals` block, or an evaluator type (a block of it with its defaults is added).
Default: the run's first block of the type that fits the run (`run_type`: `coco` for a detector,
`mc_perplexity` for a language model, `montecarlo` otherwise), added when it has none. The eval
noise is `config.eval_noise` (kind, power, layers, weight noise); the SNRs come from `--snrs_db`,
else from an explicit `--config.eval_noise.snr_db`, else from the block's `snrs_db`, else from
`config.eval_noise.snr_db`, else (a run without eval noise) from DEFAULT_SNRS_DB, with a note.
Training noise never leaks into evaluation. The evaluator runs with the same key as at the end of
training (`experiment.key(name)`), so the numbers match. A progress line with the ETA follows each
SNR; the results print as a table, and the full arrays go to DIR/<the block's output>. An output
file that exists (the end of training or an earlier evaluation wrote it) is never overwritten
silently: the default name becomes NAME-2.json (-3, ...), said in a note; a name given with
`--config.evals.<block>.output=` is refused; `--overwrite` replaces either. A bad request is a
one-line error before any data is read.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile

import ml_collections

MONTECARLO = "montecarlo"
# The SNR grid (dB) of an evaluation that names none, of a run that has no eval noise.
DEFAULT_SNRS_DB = "-5,0,5,10,20,inf"


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


def run_type(config) -> str:
  """The evaluator type that measures what a run (config or its dict) was trained for: COCO AP of
  a detector; perplexity of a language model (report_perplexity, or an LSTM state carried across
  batches, which montecarlo cannot evaluate); accuracy under noise otherwise."""
  if config.get("loss") == "maskrcnn":
    return "coco"
  model = config.get("model") or {}
  if config.get("report_perplexity", False) or model.get("carry_state", False):
    return "mc_perplexity"
  return MONTECARLO


def default_eval(config) -> str | None:
  """The name of the run's first `config.evals` block of its `run_type` (None when none is)."""
  kind = run_type(config)
  evals = config.get("evals") or {}
  return next((name for name, block in evals.items() if block.get("type") == kind), None)


def load_run_config(workdir: str, eval_name: str | None = None) -> ml_collections.ConfigDict:
  """The config saved by the trainer in `workdir`, with `eval_noise` and every `config.evals`
  block filled in with their defaults (so command-line overrides can reach every field). A block
  of the run's `run_type` is added when it has none, and one named `eval_name` when that is an
  evaluator type the run has no block of."""
  from freqnoise import evaluators
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} not found: is {workdir!r} a training run folder?")
  with open(path) as f:
    data = _lists_to_tuples(json.load(f))  # JSON has no tuples; models must stay hashable
  from freqnoise.distributed import single_process
  data = single_process(data)  # the launch that trained it is over: one process, unless flags say
  data["eval_noise"] = {**_noise_defaults(), **(data.get("eval_noise") or {})}
  evals = _evals_of(data)
  kind = run_type(data)
  if not any(block.get("type") == kind for block in evals.values()):
    evals[kind] = {"type": kind}
  if eval_name and eval_name not in evals and eval_name in evaluators.known_types():
    evals[eval_name] = {"type": eval_name}
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
  name = name or default_eval(config)
  if name is None:
    raise ValueError(f"config.evals has no {run_type(config)} block; name one with --eval")
  _, values = evaluators.settings(config, name)  # only this block runs: the others are not checked
  from freqnoise import distributed
  distributed.initialize(config)  # a multi-process evaluation: every process runs this
  from freqnoise.experiment import Experiment, check_config
  check_config(config)
  check_has_checkpoint(workdir)
  if evaluators.registry.output_file(values):
    check_output_writable(workdir, name, evaluators.registry.output_file(values))
  import jax
  experiment = Experiment(config, workdir)
  state = experiment.restore()
  step = int(jax.device_get(state.step))
  return evaluators.run(experiment, state, name), step


def evaluate_run(config: ml_collections.ConfigDict, workdir: str,
                 name: str | None = None) -> dict[str, float]:
  """Restores the latest checkpoint in `workdir` and runs the evaluator `name` of `config.evals`
  (default: `default_eval`) with the key of the end-of-training evaluation.

  Returns the evaluator's scalars (full arrays: workdir/<the block's output>).
  """
  return evaluate_checkpoint(config, workdir, name)[0]


def prepare(config: ml_collections.ConfigDict, workdir: str, name: str, *,
            snrs_db: str | None = None, num_draws: int | None = None, eval_snr_set: bool = False,
            output_named: bool = False, overwrite: bool = False) -> list[str]:
  """Applies the command line's requests to the block `name` of `config.evals`, before any work:
  `snrs_db` / `num_draws` (flags; an error for a block without the field), `eval_snr_set` (an
  explicit --config.eval_noise.snr_db beats the block's grid), the default SNR grid where there
  is none, and an output name that overwrites nothing (see the module docstring; `output_named`:
  the user named it). Returns notes saying what was chosen; raises ValueError / FileExistsError
  naming the flag to give."""
  from freqnoise.analog.noise import noise_from_config
  from freqnoise.evaluators.montecarlo import parse_snr_grid
  from freqnoise.evaluators.registry import output_file
  if name not in config.evals:
    from freqnoise.evaluators import known_types
    raise ValueError(f"--eval={name}: the run has evaluators {sorted(config.evals)}, and it is no "
                     f"evaluator type ({', '.join(known_types())})")
  block, notes = config.evals[name], []
  for flag, field, value in (("--snrs_db", "snrs_db", snrs_db),
                             ("--num_draws", "num_draws", num_draws)):
    if value is not None and field not in block:
      raise ValueError(f"{flag} does not apply to config.evals.{name} (type {block.type}: one "
                       "pass under config.eval_noise); set --config.eval_noise.snr_db=... instead")
    if value is not None:
      block[field] = value
  if snrs_db is None and eval_snr_set and "snrs_db" in block:
    block.snrs_db = ""  # an explicit single eval SNR beats the run's saved grid
  if ("snrs_db" in block and not parse_snr_grid(block.snrs_db)
      and noise_from_config(config.get("eval_noise")) is None):
    block.snrs_db = DEFAULT_SNRS_DB
    notes.append(f"no SNR grid given and the run has no eval noise: evaluating at "
                 f"{DEFAULT_SNRS_DB} dB (choose with --snrs_db=...)")
  output = output_file(block)
  if output and os.path.exists(os.path.join(workdir, output)) and not overwrite:
    if output_named:
      raise FileExistsError(f"{os.path.join(workdir, output)} exists (an earlier evaluation's "
                            "output): add --overwrite to replace it, or name another file with "
                            f"--config.evals.{name}.output=...")
    stem, ext = os.path.splitext(output)
    fresh = next(f"{stem}-{i}{ext}" for i in range(2, 10**6)
                 if not os.path.exists(os.path.join(workdir, f"{stem}-{i}{ext}")))
    block.output = fresh
    notes.append(f"{output} exists (the end of training or an earlier evaluation wrote it): "
                 f"writing {fresh} (--overwrite replaces {output})")
  return notes


def _flag_from_argv(argv: list[str], flag: str) -> str | None:
  """The value of `--flag=V` / `--flag V`, read before the flags are defined."""
  for i, arg in enumerate(argv):
    if arg.startswith(f"--{flag}="):
      return arg.split("=", 1)[1]
    if arg == f"--{flag}" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def run() -> None:
  from absl import app, flags, logging
  from ml_collections import config_flags
  sys.path.insert(0, os.getcwd())
  workdir = _flag_from_argv(sys.argv, "workdir")
  if workdir is None:
    sys.exit("usage: python -m freqnoise.evaluate --workdir=DIR [--eval=NAME] [--snrs_db=...] "
             "[--num_draws=N] [--config.eval_noise.snr_db=...] [--overwrite]")
  workdir = os.path.expanduser(workdir)
  try:
    run_config = load_run_config(workdir, _flag_from_argv(sys.argv, "eval"))
  except (OSError, ValueError) as e:
    sys.exit(f"error: {e}")
  config_flags.DEFINE_config_dict("config", run_config, "Run config (overridable).")
  flags.DEFINE_string("workdir", None, "Training run folder holding checkpoints/ and config.json.")
  flags.DEFINE_string("eval", None, "config.evals block or evaluator type to run (default: the "
                      "run's own: coco for a detector, mc_perplexity for a language model, "
                      "montecarlo otherwise).")
  flags.DEFINE_string("snrs_db", None, "Comma-separated eval SNRs in dB, e.g. -5,0,5,10,20,inf.")
  flags.DEFINE_integer("num_draws", None, "Noise draws per SNR (voting uses K = 1..num_draws).")
  flags.DEFINE_bool("overwrite", False, "Replace the block's output file if it exists (default: "
                    "write NAME-2.json beside it, or refuse an output named on the command line).")

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    from freqnoise import evaluators
    from freqnoise.cli import clean_exit
    from freqnoise.evaluators.table import format_table
    config, chosen = flags.FLAGS.config, flags.FLAGS.eval
    name = chosen or default_eval(config)
    given = lambda prefix: any(a.startswith(prefix) for a in sys.argv)
    try:  # the request, checked before any data is read: a mistake is one line
      notes = prepare(config, workdir, name, snrs_db=flags.FLAGS.snrs_db,
                      num_draws=flags.FLAGS.num_draws,
                      eval_snr_set=given("--config.eval_noise.snr_db"),
                      output_named=given(f"--config.evals.{name}.output"),
                      overwrite=flags.FLAGS.overwrite)
      _, values = evaluators.settings(config, name)
      from freqnoise import distributed
      distributed.check_config(config)  # --config.num_processes=2 etc.: the layout of this launch
      check_has_checkpoint(workdir)
      output = evaluators.registry.output_file(values)
      if output:
        check_output_writable(workdir, name, output)
    except (ValueError, TypeError, OSError) as e:
      sys.exit(f"error: {e}")
    print(f"evaluator {name} (type {config.evals[name].type})" +
          ("" if chosen else ", the run's own (--eval=NAME runs another)"), flush=True)
    for note in notes:
      print(f"note: {note}", flush=True)
    with clean_exit():
      scalars, step = evaluate_checkpoint(config, workdir, name)
    print(format_table(scalars, step), flush=True)  # before anything else that could fail
    if output:
      print(f"written: {os.path.join(workdir, output)}")

  app.run(main)


if __name__ == "__main__":
  run()
