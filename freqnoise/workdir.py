"""The run folder's integrity: one run at a time (`.lock`), one config per run (`config.json`).

`claim(workdir, config)` is entered by the trainer before anything is written to the workdir:
  * it takes `workdir/.lock` (process 0 only; JSON {pid, host, started}), removed on exit, also on
    errors. A lock of a live process is an error naming it; a lock of a process that no longer runs
    on this host is stale and taken over with a printed message;
  * a workdir that holds a checkpoint was started under the config in its `config.json`: the new
    config must equal it field by field except the `SAFE_FIELDS` below, else `ConfigMismatchError`
    lists each difference (old -> new) and nothing is written. To train on under another config,
    start a new workdir with `--config.init_from=OLD` (`freqnoise.init_from`);
  * it then (re)writes `config.json` and `fingerprint.txt`: the sha256 of the canonical JSON of the
    config's non-safe fields, so two runs of the same experiment are recognised by one line.
A `config.json` left by a start that saved no checkpoint describes nothing that a resume would
continue, so it is replaced (with a printed note).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import socket
import tempfile
from typing import Any, BinaryIO, Callable, Iterator

import jax
import ml_collections

# Fields a resume may change: they decide how long, how often and where a run reports, never what
# one step computes or which batches it sees. A prefix ending in "." covers a whole block.
SAFE_FIELDS = (
    "num_steps",         # extending only (see EXTEND_ONLY): train further from the checkpoint
    "num_epochs",        # extending only
    "log_every",         # cadence of progress lines / train rows
    "eval_every",        # cadence of test-set evaluations
    "checkpoint_every",  # cadence of checkpoints
    "keep_checkpoints",  # how many checkpoints are kept
    "tensorboard",       # whether event files are written next to metrics.jsonl
    "evals.",            # evaluators run once after training; they do not shape it
    "coordinator_address",  # how the processes of one run find each other (differs per launch)
    "process_id",        # differs per process of one multi-process run
    "num_processes",     # the layout: the same seed gives the same run on any process count
    "distributed_timeout",  # how long processes wait for each other (freqnoise.distributed)
    "data.pipeline",     # memory and grain serve the same batches (freqnoise.data.streaming)
    "data.num_workers",  # how many processes read them
    "data.lazy_test",    # a detection test split read lazily holds the same examples
)
EXTEND_ONLY = ("num_steps", "num_epochs")  # safe only when not smaller than before
# Blocks added to the configs over time, by the fields that switch them on: a run recorded before
# a block existed equals a config where the block is off (all of its switches off).
OFF_SWITCHES = {
    "adversarial": ("adversarial.epsilon",),
    "quant": ("quant.preset", "quant.weight_bits", "quant.dac_bits", "quant.adc_bits"),
}


class ConfigMismatchError(ValueError):
  """A workdir is resumed under a config that differs from the one it was trained with."""


class WorkdirLockedError(RuntimeError):
  """Another live run holds the workdir's lock."""


def _umask() -> int:
  mask = os.umask(0)  # reading the umask means setting it; put it back at once
  os.umask(mask)
  return mask


def write_atomically(path: str, data: str | bytes | Callable[[BinaryIO], None]) -> None:
  """Writes `data` (text, bytes, or a function writing into a binary file, for large arrays) to
  `path` through a temporary file and a rename: a reader never sees half, and a crash leaves the
  old file (or none), never a truncated one. The file gets the usual permissions (umask)."""
  fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", suffix=".tmp")
  try:
    with os.fdopen(fd, "w" if isinstance(data, str) else "wb") as f:
      if callable(data):
        data(f)
      else:
        f.write(data)
    os.chmod(tmp, 0o666 & ~_umask())  # as open() would create it (mkstemp makes it 0600)
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp)
    raise


# ----------------------------------------------------------------------------- config record
def config_text(config: ml_collections.ConfigDict) -> str:
  return config.to_json_best_effort(indent=2)  # as saved: tuples become lists, inf 'Infinity'


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  """{'a.b.c': leaf} of nested dicts; an empty dict is a leaf (so a removed block still shows)."""
  if isinstance(tree, dict) and tree:
    out = {}
    for k, v in tree.items():
      out.update(flatten(v, f"{prefix}{k}."))
    return out
  return {prefix[:-1]: tree}


def _canonical(value: Any) -> str:
  return json.dumps(value, sort_keys=True)


def is_safe(field: str) -> bool:
  return any(field == s or (s.endswith(".") and field.startswith(s)) for s in SAFE_FIELDS)


def fingerprint(record: dict) -> str:
  """sha256 of the canonical JSON of the non-safe fields of a saved config (a parsed config.json)."""
  kept = {k: v for k, v in flatten(record).items() if not is_safe(k)}
  return hashlib.sha256(_canonical(kept).encode()).hexdigest()


def differences(old: dict, new: dict) -> list[str]:
  """'field: old -> new' of every difference a resume may not make (parsed config.json records).

  A field absent from the old record (added to the configs after the run started) counts only when
  its new value is not off ('', 0, False, empty)."""
  old_flat, new_flat = flatten(old), flatten(new)
  lines = []
  for k in sorted(set(old_flat) | set(new_flat)):
    if k not in old_flat and (not new_flat[k] or _block_off(k, old_flat, new_flat)):
      continue
    o = _canonical(old_flat[k]) if k in old_flat else "(absent)"
    n = _canonical(new_flat[k]) if k in new_flat else "(absent)"
    if o == n:
      continue
    if k in EXTEND_ONLY and k in old_flat and k in new_flat:
      if new_flat[k] >= old_flat[k]:
        continue
      lines.append(f"{k}: {o} -> {n} (may only grow)")
    elif not is_safe(k):
      lines.append(f"{k}: {o} -> {n}")
  return lines


def _block_off(field: str, old_flat: dict, new_flat: dict) -> bool:
  """Whether `field` belongs to a block added after the old run started that is switched off in
  the new config (e.g. every adversarial.* field while adversarial.epsilon is 0)."""
  switches = OFF_SWITCHES.get(field.partition(".")[0], ())
  return bool(switches) and not any(s in old_flat or new_flat.get(s) for s in switches)


def has_checkpoint(workdir: str) -> bool:
  """Whether `workdir/checkpoints` holds a finished step folder (read without orbax)."""
  folder = os.path.join(workdir, "checkpoints")
  return os.path.isdir(folder) and any(
      name.isdigit() and os.path.isdir(os.path.join(folder, name)) for name in os.listdir(folder))


def check_config(config: ml_collections.ConfigDict, workdir: str) -> str:
  """Raises ConfigMismatchError when `workdir` holds a checkpoint of another config; returns the
  text to save as config.json. A start under another config that saved no checkpoint is replaced:
  its input_stats.npz, fitted under that config (perhaps on other data), is removed."""
  text = config_text(config)
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    return text
  with open(path) as f:
    old = json.load(f)
  diff = differences(old, json.loads(text))
  if diff and not has_checkpoint(workdir):
    stats = os.path.join(workdir, "input_stats.npz")
    if jax.process_index() == 0:
      print(f"{path}: replacing the config of a start that saved no checkpoint (and its input "
            "statistics, fitted under that config)", flush=True)
      with contextlib.suppress(FileNotFoundError):
        os.remove(stats)
  elif diff:
    raise ConfigMismatchError(
        f"{workdir} was trained under another config; this one differs in:\n  "
        + "\n  ".join(diff) + "\nNothing was written. Resume with the saved config "
        f"({path}), or train under the new one in a new --workdir with "
        f"--config.init_from={workdir} (starts from its latest parameters, fresh optimizer).")
  return text


def record_config(workdir: str, text: str) -> None:
  write_atomically(os.path.join(workdir, "config.json"), text)
  write_atomically(os.path.join(workdir, "fingerprint.txt"),
                        fingerprint(json.loads(text)) + "\n")


# ----------------------------------------------------------------------------- lock
def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)  # PermissionError: someone else's live process
  except ProcessLookupError:
    return False
  except PermissionError:
    pass
  return True


class WorkdirLock:
  """An exclusive `workdir/.lock` file: created atomically (O_EXCL), removed by `release`."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, ".lock")
    self.record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                              "started": datetime.datetime.now().isoformat(timespec="seconds")})

  def acquire(self) -> None:
    for _ in range(2):  # a second try after a stale lock was removed
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        self._take_over_if_stale()
        continue
      with os.fdopen(fd, "w") as f:
        f.write(self.record)
      return
    raise WorkdirLockedError(f"{self.path}: could not take the lock (another run took it first)")

  def _take_over_if_stale(self) -> None:
    try:
      with open(self.path) as f:
        holder = json.load(f)
      pid, host, started = int(holder["pid"]), holder["host"], holder["started"]
    except FileNotFoundError:
      return  # released meanwhile: try again
    except (ValueError, KeyError, TypeError) as e:
      raise WorkdirLockedError(
          f"{self.path} exists but is unreadable ({e}); if no run uses this workdir, delete it"
      ) from e
    if host == socket.gethostname() and not _alive(pid):
      print(f"{self.path}: taking over the stale lock of process {pid} (started {started}), "
            "which no longer runs", flush=True)
      with contextlib.suppress(FileNotFoundError):
        os.remove(self.path)
      return
    raise WorkdirLockedError(
        f"workdir {os.path.dirname(self.path)} is in use by process {pid} on {host} (started "
        f"{started}); nothing was written. Wait for it, use another --workdir, or delete "
        f"{self.path} if that process is gone.")

  def release(self) -> None:
    with contextlib.suppress(FileNotFoundError):
      with open(self.path) as f:
        mine = f.read() == self.record
      if mine:  # never remove a lock that someone else took over
        os.remove(self.path)


@contextlib.contextmanager
def claim(workdir: str, config: ml_collections.ConfigDict) -> Iterator[None]:
  """Locks `workdir`, checks `config` against its record and saves it; unlocks on exit."""
  source = config.get("init_from", "")
  if source and not os.path.isdir(os.path.join(source, "checkpoints")):
    raise FileNotFoundError(f"config.init_from={source!r} has no checkpoints/ folder: it must be "
                            "the workdir of a finished or interrupted training run")
  os.makedirs(workdir, exist_ok=True)
  lock = WorkdirLock(workdir) if jax.process_index() == 0 else None
  if lock:
    lock.acquire()
  try:
    text = check_config(config, workdir)
    if lock:
      record_config(workdir, text)
    yield
  finally:
    if lock:
      lock.release()


def results_note(workdir: str, config: ml_collections.ConfigDict, done: bool = False) -> str:
  """Where a run's results land, printed when it starts and when it ends."""
  where = os.path.abspath(workdir)
  lines = [f"{'results in' if done else 'writing results to'} {where}/:",
           "  final_metrics.json (at the end), metrics.jsonl (every log/eval row), checkpoints/, "
           "config.json"]
  if config.get("tensorboard", True):
    board = os.path.join(where, "tensorboard")
    lines.append(f"  tensorboard/ (view: tensorboard --logdir {board})")
  return "\n".join(lines)
