"""Where an experiment script writes, and when it may write into `experiments/<paper>/results/`.

One rule for every script under experiments/ (the benchmarks only print):
* outputs go to the run folder, or `--out DIR` (each script's default is a folder under its run
  root), never into `experiments/<paper>/results/`, whose files the README tables are made from;
* `--record` writes there instead, and is refused before any work when the run's settings differ
  from the paper's recorded protocol (`--set` / config overrides / flags that change it): the
  error names every differing setting;
* an existing result is skipped only with the printed line `recorded result exists: FILE (use
  --force to rerun)`, and never when the settings differ from the protocol;
* files are written atomically (temp file + rename): a reader never sees half of one.

    recording.add_arguments(parser, "RUNS/results")
    differs = recording.differences(settings, PROTOCOLS, key, "--tag _x")   # [] = the protocol
    out = recording.destination(args, "frequency_domain", default, differs)  # raises if refused
    if not recording.skip_existing(path, args.force or bool(differs)): ...write_json(path, row)
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any, Iterator, Mapping

from freqnoise import workdir as run_folder

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_ROOT = "runs"  # scripts without a run folder write under runs/<paper>/ (from the working dir)


class RecordingError(SystemExit):
  """A refused write: the script exits with this message (status 1) before doing any work."""


def add_arguments(parser, default_out: str) -> None:
  """`--out`, `--record` and `--force`, the same for every script."""
  parser.add_argument("--out", default="", help=f"output folder (default: {default_out}); never "
                      "experiments/<paper>/results/, which needs --record")
  parser.add_argument("--record", action="store_true",
                      help="write into experiments/<paper>/results/ (the README's files); refused "
                      "when the run's settings differ from the recorded protocol")
  parser.add_argument("--force", action="store_true", help="rerun a result that exists")


def results_dir(paper: str) -> str:
  return os.path.join(REPO, "experiments", paper, "results")


def is_results_path(path: str) -> bool:
  """Whether `path` is, or lies inside, an `experiments/<paper>/results/` folder of this repo."""
  experiments = os.path.realpath(os.path.join(REPO, "experiments"))
  parts = os.path.relpath(os.path.realpath(path), experiments).split(os.sep)
  return len(parts) >= 2 and parts[0] != ".." and parts[1] == "results"


def _text(value: Any) -> str:
  return json.dumps(list(value) if isinstance(value, tuple) else value)


def differences(settings: Mapping[str, Any], protocols: Mapping, key, what: str) -> list[str]:
  """'NAME: this run's VALUE, the recorded protocol's VALUE' for every setting in `settings` that
  differs from `protocols[key]` (a dict of the same names); a `key` without a protocol is one
  difference naming `what` and the recorded ones."""
  if key not in protocols:
    known = ", ".join(" ".join(str(p) for p in k if p) if isinstance(k, tuple) else str(k)
                      for k in protocols)
    return [f"{what}: no recorded protocol (recorded: {known})"]
  protocol = protocols[key]
  return [f"{name}: {_text(value)} in this run, {_text(protocol.get(name))} in the recorded "
          "protocol" for name, value in settings.items()
          if _text(value) != _text(protocol.get(name))]


def config_differences(workdir: str, protocol, label: str) -> list[str]:
  """'LABEL FIELD: RUN -> PROTOCOL' for every field where the run in `workdir` (its config.json)
  differs from the config `protocol`: the checks of a resume (freqnoise.workdir.differences) and,
  exactly, the step and epoch counts and the evaluator blocks, which a resume may change."""
  with open(os.path.join(workdir, "config.json")) as f:
    run = json.load(f)
  proto = json.loads(run_folder.config_text(protocol))
  exact = lambda k: k in run_folder.EXTEND_ONLY or k.startswith("evals.")  # noqa: E731
  lines = [d for d in run_folder.differences(run, proto) if not exact(d.split(":", 1)[0])]
  run_flat, proto_flat = run_folder.flatten(run), run_folder.flatten(proto)
  for k in sorted(k for k in set(run_flat) | set(proto_flat) if exact(k)):
    if k not in run_flat or k not in proto_flat:
      if run_flat.get(k) or proto_flat.get(k):  # a field only one side has counts when not off
        lines.append(f"{k}: {_text(run_flat.get(k, '(absent)'))} -> "
                     f"{_text(proto_flat.get(k, '(absent)'))}")
    elif _text(run_flat[k]) != _text(proto_flat[k]):
      lines.append(f"{k}: {_text(run_flat[k])} -> {_text(proto_flat[k])}")
  return [f"{label} {line}" for line in sorted(lines)]


def destination(args, paper: str, default: str, differs: list[str]) -> str:
  """The folder this run writes into: experiments/<paper>/results/ with `args.record` (refused when
  `differs` is not empty), else `args.out` or `default` (refused when that is a results folder).
  Raises RecordingError before any work."""
  if args.record:
    if args.out:
      raise RecordingError(f"--record writes experiments/{paper}/results/; give --record or "
                           "--out, not both")
    _refuse_if(differs, paper, args.out or default)
    return results_dir(paper)
  out = args.out or default
  if is_results_path(out):
    raise RecordingError(f"--out {out} is a recorded results folder: writing there needs "
                         "--record (refused when the run's settings differ from the recorded "
                         "protocol)")
  return out


def check_file(path: str, record: bool, paper: str, differs: list[str]) -> None:
  """`destination` for a script given its output file: one inside experiments/*/results/ needs
  `record`, which needs such a file and no `differs`."""
  if record and not is_results_path(path):
    raise RecordingError(f"--record writes into experiments/{paper}/results/; {path} is not there")
  if not record and is_results_path(path):
    raise RecordingError(f"{path} is in a recorded results folder: writing there needs --record "
                         "(refused when the run's settings differ from the recorded protocol)")
  if record:
    _refuse_if(differs, paper, "a file outside experiments/*/results/")


def _refuse_if(differs: list[str], paper: str, elsewhere: str) -> None:
  if differs:
    raise RecordingError(
        f"--record refused: this run's settings differ from the recorded protocol of "
        f"experiments/{paper}:\n  " + "\n  ".join(differs) + "\nNothing was run or written. "
        f"Record with the protocol's settings, or run without --record (outputs go to "
        f"{elsewhere}).")


def skip_existing(path: str, rerun: bool) -> bool:
  """Whether the result `path` stands as it is: it exists and `rerun` (`--force` given, or the
  run's settings differ from the protocol) is false. Says so in one line."""
  if os.path.exists(path) and not rerun:
    print(f"recorded result exists: {path} (use --force to rerun)", flush=True)
    return True
  return False


def write_text(path: str, text: str) -> None:
  """Writes `text` to `path` atomically (its folder made if needed)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  run_folder.write_atomically(path, text)


def write_json(path: str, value: Any) -> None:
  write_text(path, json.dumps(value, indent=1, default=lambda o: o.tolist()
                              if hasattr(o, "tolist") else str(o)) + "\n")


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """A temporary name beside `path` (same extension: matplotlib reads the format from it) for a
  function that writes a file by name; renamed to `path` when the block ends without an error,
  removed otherwise."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  root, ext = os.path.splitext(path)
  tmp = f"{root}.tmp{os.getpid()}{ext}"
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)


def train(config, workdir: str) -> tuple[dict, float | None]:
  """`freqnoise.train.train_and_evaluate(config, workdir)` and this call's wall-clock seconds, or
  None when the workdir held a checkpoint already (a resumed or finished run: the call's time is
  not the run's; a finished run returns its stored final metrics)."""
  from freqnoise.train import train_and_evaluate  # (the summaries need no JAX)
  resumed = run_folder.has_checkpoint(workdir)
  start = time.perf_counter()
  metrics = train_and_evaluate(config, workdir)
  return metrics, None if resumed else time.perf_counter() - start
