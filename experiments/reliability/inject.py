"""`python -m freqnoise.main` with one fault injected at an exact moment (used by run.py).

    FREQNOISE_FAULT=KIND:STEP python experiments/reliability/inject.py --config=... --workdir=...

KIND: the process kills itself with SIGKILL, as `kill -9` would, at a moment of step STEP:
  during_checkpoint  right after the asynchronous save of STEP started (the write in flight)
  during_eval        inside the test-set evaluation of STEP, before it returns
  mid_row            after writing half of the metrics.jsonl row of STEP (no newline)
  at_row             just before writing the train row of STEP (before any checkpoint if early)
or, without a kill, no_space:N: the disk reports 0 bytes free once N checkpoints exist (the full
disk case where a tmpfs cannot be mounted).
An external `kill -9` at a wall-clock moment cannot hit these reliably on a run of seconds.
"""

from __future__ import annotations

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from freqnoise import checkpoint, evaluators, main, metrics  # noqa: E402


def _die() -> None:
  sys.stdout.flush()
  sys.stderr.flush()
  os.kill(os.getpid(), signal.SIGKILL)


def install(kind: str, step: int) -> None:
  if kind == "during_checkpoint":
    save = checkpoint.Checkpointer.maybe_save

    def maybe_save(self, s, state, *, force=False):
      saved = save(self, s, state, force=force)
      if saved and s == step:
        pending = [n for n in os.listdir(self.directory) if checkpoint.TMP_SUFFIX in n]
        print(f"inject: killed with {pending} in flight", flush=True)
        _die()
      return saved
    checkpoint.Checkpointer.maybe_save = maybe_save
  elif kind == "during_eval":
    call = evaluators.SplitEvaluator.__call__

    def evaluate(self, state, split="test"):
      scores = call(self, state, split)
      if int(state.step) == step:
        _die()
      return scores
    evaluators.SplitEvaluator.__call__ = evaluate
  elif kind in ("mid_row", "at_row"):
    write = metrics.MetricWriter.write

    def write_row(self, s, split, scalars):
      if int(s) == step and split == "train":
        if kind == "mid_row":
          row = metrics.strict_json({"step": int(s), "split": split,
                                     **{k: float(v) for k, v in scalars.items()}})
          with open(self.path, "a") as f:
            f.write(row[:len(row) // 2])
        _die()
      write(self, s, split, scalars)
    metrics.MetricWriter.write = write_row
  elif kind == "no_space":
    usage = checkpoint.shutil.disk_usage

    def disk_usage(path):
      real = usage(path)
      steps = [n for n in os.listdir(path) if n.isdigit()] if os.path.isdir(path) else []
      return type(real)(real.total, real.total, 0) if len(steps) >= step else real
    checkpoint.shutil.disk_usage = disk_usage
  else:
    raise SystemExit(f"unknown FREQNOISE_FAULT kind {kind!r}")


if __name__ == "__main__":
  fault = os.environ.get("FREQNOISE_FAULT", "")
  if fault:
    kind, _, at = fault.partition(":")
    install(kind, int(at))
  main.run()
