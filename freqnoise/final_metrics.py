"""A run's `final_metrics.json`: written when a run ends, never rewritten by a rerun of that run.

A workdir trained to its last step holds its result. Running it again (the same command, or a
script looping over runs) trains nothing; it used to evaluate the model again and overwrite the
file with that call's timing (train_seconds 4.51 -> 0.0003, train_steps_per_sec NaN), so the
number a README quoted changed under it. Now the trainer returns the stored metrics as they are and
leaves the file alone; only an evaluator that `config.evals` gained since (none of its
'<name>/...' keys stored) is run, and its keys are added beside the stored ones, which stay as
they were.
"""

from __future__ import annotations

import json
import os

from freqnoise import distributed, evaluators
from freqnoise.metrics import MetricWriter, strict_json
from freqnoise.workdir import write_atomically

FILE = "final_metrics.json"


def write(workdir: str, result: dict) -> None:
  """Saves `result` as strict JSON (a non-finite value as null), atomically."""
  write_atomically(os.path.join(workdir, FILE), strict_json(result, indent=2))


def stored(workdir: str, steps: int) -> dict | None:
  """The final metrics saved in `workdir` by a run that reached step `steps`, else None (no file,
  or the file of a run stopped earlier, e.g. by `stop_after`)."""
  try:
    with open(os.path.join(workdir, FILE)) as f:
      saved = json.load(f)
  except FileNotFoundError:
    return None
  return saved if saved.get("steps") == steps else None


def of_finished_run(experiment, state, workdir: str, saved: dict) -> dict:
  """The result of a finished run run again: `saved` unchanged (the file is not touched), plus the
  scalars of any configured evaluator that `saved` lacks, run on `state` (its last checkpoint)."""
  is_writer = distributed.is_writer()
  step, path = saved["steps"], os.path.join(workdir, FILE)
  missing = [name for name in evaluators.configured(experiment.config)
             if not any(k.startswith(name + "/") for k in saved)]
  if is_writer:
    print(f"{workdir} finished at step {step}: its stored final metrics stand ({path}, not "
          "rewritten; nothing was trained" + (f"; running the evaluators it lacks: "
                                             f"{', '.join(missing)})" if missing else ")"),
          flush=True)
  if not missing:
    return saved
  writer = MetricWriter(workdir, enabled=is_writer,
                        tensorboard=experiment.config.get("tensorboard", True), resume_step=step)
  result = dict(saved)
  try:
    for name in missing:
      scalars = evaluators.run(experiment, state, name)
      writer.write(step, name, scalars)
      result.update({f"{name}/{k}": v for k, v in scalars.items()})
  finally:
    writer.close()
  if is_writer:
    write(workdir, result)
  return result
