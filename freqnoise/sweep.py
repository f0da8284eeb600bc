"""One sweep launcher for any config: a grid of config values x seeds, one workdir per cell, then
one table and one figure across the cells (freqnoise.sweep_summary).

  python -m freqnoise.sweep --config=configs/noisy_mnist.py --grid 'train_noise.snr_db=0,5,inf' \
      --seeds 0-3 --root /tmp/sweep [--parallel 2] [--config.num_epochs=2] [--metric test_loss]

`--grid FIELD=V1,V2,...` sets a config field as `--config.FIELD=V` would; `--grid :KEY=V1,V2,...`
a config argument (appended to `--config=FILE:ARG`, e.g. `:snr=0,inf` for configs/noisy_mnist.py).
Values are split at commas outside brackets (`input.channels=[0,1,8],24` has two). `--seeds 0-3`
(or `0,2,5`) sets `config.seed`; without it every cell keeps the config's seed. Other
`--config.FIELD=V` flags apply to every cell. The cells are the product of the grids and the seeds;
cell `ROOT/<name>` (e.g. `train_noise.snr_db=inf_seed=2`) runs `python -m freqnoise.main`, its
output in `ROOT/logs/<name>.log`, one cell at a time or `--parallel N`. Before anything runs, every
cell's config is built and its evaluator blocks checked (a bad field or value is an error naming
the cell) and compared with its workdir's: a cell finished under the same config is not run again;
one trained under another is refused (freqnoise.workdir's rule); any other resumes from its
checkpoint. Interrupted (Ctrl-C), the sweep stops its running cells; rerun it to resume them.
Then `ROOT/summary.md` (also printed): per grid point the metric's mean over seeds, its 95% Student
t interval, the values per seed and the mean train time; `ROOT/summary.png`: the metric against the
first grid's values, one line per combination of the others. A failed cell is named with its log.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
import warnings

import ml_collections
from absl import flags
from ml_collections import config_flags

from freqnoise import evaluators, sweep_summary, workdir as workdir_lib

MAIN = (sys.executable, "-m", "freqnoise.main")


def parse_seeds(text: str) -> list[int]:
  """'0-7' or '0,2,5' or '3' -> sorted seeds; a malformed or negative seed is an error naming it."""
  seeds = set()
  for part in [p for p in text.split(",") if p]:
    lo, _, hi = part.partition("-")
    if not lo.isdigit() or (hi and not hi.isdigit()):
      raise ValueError(f"--seeds: {part!r} is not a seed (N) or a range (N-M) of seeds >= 0")
    lo, hi = int(lo), int(hi or lo)
    if hi < lo:
      raise ValueError(f"--seeds: the range {part!r} is empty")
    seeds.update(range(lo, hi + 1))
  if not seeds:
    raise ValueError("--seeds: no seed given")
  return sorted(seeds)


def split_values(text: str) -> list[str]:
  """'0,5,inf' -> ['0', '5', 'inf']; commas inside [], () or {} stay: '[0,1],2' -> ['[0,1]',
  '2']."""
  values, depth, start = [], 0, 0
  for i, ch in enumerate(text + ","):
    depth += (ch in "([{") - (ch in ")]}")
    if ch == "," and depth == 0:
      values.append(text[start:i].strip())
      start = i + 1
  return values


def parse_grid(specs: list[str]) -> list[tuple[str, list[str]]]:
  """`--grid` flags -> [(key, values)]; a key is a config field `a.b` or a config argument `:k`."""
  grid = []
  for spec in specs:
    key, eq, text = spec.partition("=")
    key, values = key.strip(), split_values(text)
    if not eq or not re.fullmatch(r":?\w+(\.\w+)*", key) or not all(values):
      raise ValueError(f"--grid {spec!r}: expected FIELD=V1,V2,... or :ARGUMENT=V1,V2,... "
                       "(e.g. train_noise.snr_db=0,5,inf)")
    if key == "seed":
      raise ValueError("--grid seed=...: give seeds with --seeds (e.g. --seeds 0-3)")
    if key in dict(grid):
      raise ValueError(f"--grid: {key} is given twice")
    if len(set(values)) != len(values):
      raise ValueError(f"--grid {spec!r}: a value is repeated")
    grid.append((key, values))
  return grid


@dataclasses.dataclass(frozen=True)
class Cell:
  """One run of the sweep: its grid values (as typed), seed (None: the config's) and flags."""
  name: str
  values: tuple[tuple[str, str], ...]
  seed: int | None
  config_flags: tuple[str, ...]  # --config=FILE[:ARG] and --config.FIELD=V, as freqnoise.main reads
  workdir: str


def make_cells(config: str, grid, seeds, root: str, fixed=()) -> list[Cell]:
  """The product of the grid's values and the seeds (the seed varies fastest)."""
  cells = []
  keys = [k for k, _ in grid]
  for combo in itertools.product(*[v for _, v in grid], *([seeds] if seeds else [])):
    values = tuple(zip(keys, combo[:len(keys)]))
    seed = combo[-1] if seeds else None
    file, _, arg = config.partition(":")
    args = [arg] * bool(arg) + [f"{k[1:]}={v}" for k, v in values if k.startswith(":")]
    flags_ = [f"--config={file}" + (":" + ",".join(args) if args else ""), *fixed]
    flags_ += [f"--config.{k}={v}" for k, v in values if not k.startswith(":")]
    flags_ += [f"--config.seed={seed}"] * (seed is not None)
    parts = [f"{k.lstrip(':')}={v}" for k, v in values] + [f"seed={seed}"] * (seed is not None)
    name = re.sub(r"[^\w.=+-]", "-", "_".join(parts)) or "run"
    cells.append(Cell(name, values, seed, tuple(flags_), os.path.join(root, name)))
  names = [c.name for c in cells]
  if len(set(names)) != len(names):
    raise ValueError(f"two cells would share a workdir name: {sorted(names)}")
  return cells


def load_config(config_flags_: tuple[str, ...]) -> ml_collections.ConfigDict:
  """The config freqnoise.main builds from these flags, parsed the same way (ml_collections)."""
  argv = ["freqnoise.main", *config_flags_]
  values = flags.FlagValues()
  holder = config_flags.DEFINE_config_file("config", None, "", flag_values=values,
                                           lock_config=True, sys_argv=argv)
  with warnings.catch_warnings():  # ml_collections' own use of importlib's load_module
    warnings.simplefilter("ignore", DeprecationWarning)
    values(argv)
  return holder.value


def plan(cells: list[Cell]) -> list[Cell]:
  """The cells to run: each config built and checked against its workdir before anything runs."""
  todo = []
  for cell in cells:
    try:
      config = load_config(cell.config_flags)
      evaluators.check_config(config)  # (the trainer's other checks need devices: not here)
    except (flags.Error, ValueError, TypeError, KeyError, AttributeError) as e:
      lines = str(e).strip().splitlines()  # an error in get_config comes with its traceback
      raise ValueError(f"cell {cell.name}: {lines[-1] if 'Traceback' in str(e) else e}") from None
    new = json.loads(workdir_lib.config_text(config))
    old = None
    if os.path.isfile(saved := os.path.join(cell.workdir, "config.json")):
      with open(saved) as f:
        old = json.load(f)
    if old is not None and workdir_lib.has_checkpoint(cell.workdir):
      diff = workdir_lib.differences(old, new)
      if diff:
        raise ValueError(f"cell {cell.name}: {cell.workdir} was trained under another config:\n  "
                         + "\n  ".join(diff) + "\nNothing was run. Use another --root.")
    if old == new and os.path.isfile(os.path.join(cell.workdir, "final_metrics.json")):
      print(f"finished: {cell.workdir} (same config; not run again)", flush=True)
      continue
    todo.append(cell)
  return todo


def run_cells(cells: list[Cell], root: str, parallel: int = 1,
              command=MAIN) -> dict[str, int]:
  """Runs each cell's `command` (freqnoise.main), `parallel` at a time; its output goes to
  ROOT/logs/NAME.log (and to this terminal when one runs at a time). Returns {name: exit status}."""
  os.makedirs(os.path.join(root, "logs"), exist_ok=True)
  status, running, pending = {}, [], list(cells)

  def copy(proc, log, echo):
    for line in proc.stdout:
      log.write(line)
      log.flush()
      if echo:
        sys.stdout.write(line)
        sys.stdout.flush()

  try:
    while pending or running:
      while pending and len(running) < parallel:
        cell = pending.pop(0)
        print(f"[{len(cells) - len(pending)}/{len(cells)}] {cell.name}", flush=True)
        log = open(os.path.join(root, "logs", cell.name + ".log"), "w")
        proc = subprocess.Popen([*command, *cell.config_flags, f"--workdir={cell.workdir}"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        thread = threading.Thread(target=copy, args=(proc, log, parallel == 1), daemon=True)
        thread.start()
        running.append((cell, proc, log, thread, time.time()))
      done = [item for item in running if item[1].poll() is not None]
      if not done:
        time.sleep(0.2)
      for item in done:
        cell, proc, log, thread, start = item
        thread.join()
        proc.stdout.close()
        log.close()
        running.remove(item)
        status[cell.name] = proc.returncode
        print(f"{cell.name}: " + (f"failed (exit {proc.returncode}); its log: {log.name}"
                                  if proc.returncode else f"done in {time.time() - start:.0f} s"),
              flush=True)
  finally:  # interrupted: stop the cells still running (their workdirs resume on the next sweep)
    for _, proc, _, _, _ in running:
      proc.terminate()
    for _, proc, log, thread, _ in running:
      try:
        proc.wait(timeout=10)
      except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
      thread.join()
      proc.stdout.close()
      log.close()
  return status


def main(argv: list[str] | None = None, command=MAIN) -> int:
  parser = argparse.ArgumentParser(prog="python -m freqnoise.sweep", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter,
                                   allow_abbrev=False)
  parser.add_argument("--config", required=True, help="configs/X.py[:ARG], as freqnoise.main's")
  parser.add_argument("--grid", action="append", default=[], help="FIELD=V1,V2 or :ARG=V1,V2")
  parser.add_argument("--seeds", default="", help="e.g. 0-3 or 0,2 (default: the config's seed)")
  parser.add_argument("--root", required=True, help="folder of the cells' workdirs and summary")
  parser.add_argument("--parallel", type=int, default=1, help="cells run at once")
  parser.add_argument("--metric", default="", help="final_metrics key (default: test_accuracy, "
                      "test_perplexity or test_box_AP, whichever the runs report)")
  args, fixed = parser.parse_known_args(argv)
  try:
    bad = [f for f in fixed if not f.startswith("--config.")]
    if bad:
      raise ValueError(f"unknown arguments {bad} (only --config.FIELD=V passes to every cell)")
    if args.parallel < 1:
      raise ValueError(f"--parallel {args.parallel}: at least 1")
    grid = parse_grid(args.grid)
    seeds = parse_seeds(args.seeds) if args.seeds else []
    fields = {f.partition("=")[0][len("--config."):] for f in fixed}
    twice = sorted(fields & ({k for k, _ in grid} | ({"seed"} if seeds else set())))
    if twice:
      raise ValueError(f"--config.{twice[0]} is also given by --grid or --seeds")
    root = os.path.abspath(os.path.expanduser(args.root))
    cells = make_cells(args.config, grid, seeds, root, fixed)
    todo = plan(cells)
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  status = run_cells(todo, root, args.parallel, command) if todo else {}
  results = sweep_summary.read_results(cells)
  metric = sweep_summary.choose_metric(results, args.metric)
  rows = sweep_summary.summarize(cells, results, metric)
  text = sweep_summary.table(rows, [k for k, _ in grid], metric, max(len(seeds), 1))
  print(text)
  workdir_lib.write_atomically(os.path.join(root, "summary.md"), text + "\n")
  sweep_summary.plot(rows, [k for k, _ in grid], metric, os.path.join(root, "summary.png"))
  print(f"wrote {os.path.join(root, 'summary.md')} and summary.png")
  failed = sorted(name for name, rc in status.items() if rc)
  if failed:
    print(f"error: {len(failed)} cell(s) failed: {', '.join(failed)} (logs in {root}/logs)",
          file=sys.stderr)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
