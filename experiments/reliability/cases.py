"""The case table of run.py: every bad input and fault of issue 10 (its 28 and more), each with what
it expects; data_cases.py adds issue 25's bad data and settings. A case gets run.py's Harness `h`
and returns `outcome(...)`: the command whose message and seconds are reported, the checks
(description, passed), and what was lost or overwritten.

Shared runs (made once, copied by the cases that need a finished run):
  base       configs/digits_mlp.py:tiny (20 steps, checkpoints 10 and 20)
  reference  the kill config (harness.KILL), uninterrupted: what a killed-and-resumed run must equal
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from typing import Callable

from harness import KILL, TINY
MNIST = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared",
                                      "data", "mnist"))
NOTHING_WRITTEN = "error names the field; exit != 0; the workdir is not created"
# Runs of a command whose failure (a checkpoint that cannot be restored) can end in orbax's exit
# noise: it comes in about a third of the runs, so one run would often miss it ("5 runs" cases;
# their message check looks at all of stderr, the noise check at what follows the message).
REPEATS = 5
REFUSED = "error lists the field with old -> new; exit != 0; the run folder unchanged byte for byte"


@dataclasses.dataclass
class Case:
  name: str
  group: str
  expect: str
  fn: Callable


CASES: list[Case] = []


def case(name: str, group: str, expect: str):
  def wrap(fn):
    CASES.append(Case(name, group, expect, fn))
    return fn
  return wrap


def outcome(p, checks: list[tuple[str, bool]], lost: str = "nothing", key: str | None = None,
            note: str = "", also=(), cmd: str | None = None) -> dict:
  """The record of a case reported by `p`; every case also checks that stderr holds no exit
  noise after the message (of `p` and the runs in `also`)."""
  runs = (p, *also)
  noisy = [q for q in runs if q.noise()]
  checks = [*checks, (f"no exit noise after the message (in {len(noisy)} of {len(runs)} runs: "
                      f"{', '.join(sorted({n for q in noisy for n in q.noise()}))})", not noisy)]
  failed = [what for what, ok in checks if not ok]
  return dict(cmd=cmd or p.cmd, rc=p.rc, message=p.message(key), seconds=round(p.seconds, 1),
              lost=lost, failed=failed, verdict="FAIL" if failed else "PASS", note=note)


def skip(reason: str) -> dict:
  return dict(cmd="", rc="", message=reason, seconds=0.0, lost="", failed=[], verdict="SKIP",
              note="")


def _fresh_error(h, flags, names, config=TINY) -> dict:
  """A bad input on a workdir that does not exist yet: refused before anything is written."""
  wd = h.path("run")
  p = h.train(wd, *flags, config=config)
  left = sorted(os.listdir(wd)) if os.path.isdir(wd) else []
  return outcome(p, [("exit != 0", p.rc != 0),
                     *[(f"message names {n!r}", n in p.block()) for n in names],
                     ("nothing written", not os.path.exists(wd))],
                 lost=f"nothing; left {', '.join(left) or 'an empty folder'}" if os.path.exists(wd)
                 else "nothing")


def _refused_resume(h, flags, names) -> dict:
  """A finished run resumed with a changed field: refused, and the folder keeps every byte."""
  wd = h.copy_of("base")
  before = h.snapshot(wd)
  p = h.train(wd, *flags)
  lost = h.changes(before, h.snapshot(wd))
  return outcome(p, [("exit != 0", p.rc != 0), *[(f"message names {n!r}", n in p.block())
                                                 for n in names],
                     ("run folder unchanged", lost == "nothing")], lost=lost)


# ----------------------------------------------------------------------------- config checks
for _name, _flags, _names in (
    ("batch_size_zero", ["--config.data.batch_size=0"], ["batch_size"]),
    ("unknown_model", ["--config.model.name=mlpp"], ["mlpp"]),
    ("unknown_optimizer", ["--config.optimizer.name=adamm"], ["adamm"]),
    ("bad_optimizer_field", ["--config.optimizer.schedule=cosin"], ["cosin"]),
    ("negative_weight_sigma", ["--config.train_noise.weight_noise=additive",
                               "--config.train_noise.weight_sigma=-0.5"], ["weight_sigma"]),
    ("unknown_data_source", ["--config.data.source=mnist"],
     ["'mnist'", "seq:", "ptb:", "strokes:"]),
    ("missing_data_folder", ["--config.data.source=idx:/nonexistent/mnist"],
     ["/nonexistent/mnist"]),
    ("config_field_typo", ["--config.optimizer.learning_rat=0.1"], ["learning_rat"]),
    ("zero_training_steps", ["--config.num_steps=0"], ["num_steps"]),
    ("log_every_zero", ["--config.log_every=0"], ["log_every"]),
    ("eval_every_zero", ["--config.eval_every=0"], ["eval_every"]),
    ("checkpoint_every_zero", ["--config.checkpoint_every=0"], ["checkpoint_every"]),
    ("keep_checkpoints_zero", ["--config.keep_checkpoints=0"], ["keep_checkpoints"]),
    ("init_from_missing_folder", ["--config.init_from=/nonexistent/run"], ["/nonexistent/run"]),
):
  case(_name, "config", NOTHING_WRITTEN)(
      lambda h, f=_flags, n=_names: _fresh_error(h, f, n))


@case("config_argument_typo", "config", NOTHING_WRITTEN)
def _(h):
  return _fresh_error(h, [], ["'tiy'"], config="configs/digits_mlp.py:tiy")


@case("missing_workdir_flag", "config", "error names --workdir; exit != 0")
def _(h):
  p = h.train(None)
  return outcome(p, [("exit != 0", p.rc != 0), ("message names workdir", "workdir" in p.block())])


@case("workdir_is_a_file", "config", "error names the path; exit != 0; the file unchanged")
def _(h):
  wd = h.path("notes.txt")
  with open(wd, "w") as f:
    f.write("my notes\n")
  p = h.train(wd)
  with open(wd) as f:
    same = f.read() == "my notes\n"
  return outcome(p, [("exit != 0", p.rc != 0), ("message names the path", wd in p.block()),
                     ("file unchanged", same)], lost="nothing" if same else "the file")


# ----------------------------------------------------------------------------- data
@case("ptb_file_not_utf8", "data", "error names the file and byte offset; exit != 0; no .lock, "
      "no statistics or checkpoint")
def _(h):
  folder = h.path("ptb")
  os.makedirs(folder)
  words = "the cat sat on the mat and the dog sat on the log".split()
  for split, n in (("train", 60), ("valid", 10), ("test", 10)):
    with open(os.path.join(folder, f"ptb.{split}.txt"), "wb") as f:
      for i in range(n):
        f.write((" " + " ".join(words[(i + j) % len(words)] for j in range(5)) + " \n").encode())
        if split == "train" and i == 40:
          f.write(b" caf\xe9 \n")  # Latin-1, not UTF-8
  wd = h.path("run")
  p = h.train(wd, f"--config.data.source=ptb:{folder}", config="configs/dni_ptb.py:tiny")
  left = sorted(os.listdir(wd)) if os.path.isdir(wd) else []
  return outcome(p, [("exit != 0", p.rc != 0),
                     ("names ptb.train.txt", "ptb.train.txt" in p.block()),
                     ("names the byte offset", "byte offset" in p.block()),
                     ("no .lock, stats or checkpoint", not {".lock", "input_stats.npz",
                                                             "checkpoints"} & set(left))],
                 lost=f"nothing; left {', '.join(left)}" if left else "nothing")


@case("tfds_dataset_not_prepared", "data", "error names the dataset and data_dir and how to "
      "prepare it, within 60 s (download=False: no network); exit != 0; no .lock")
def _(h):
  empty = h.path("tfds_empty")
  os.makedirs(empty)
  wd = h.path("run")
  p = h.train(wd, "--config.data.source=tfds:mnist", f"--config.data.data_dir={empty}",
              "--config.data.download=False", timeout=120)
  left = sorted(os.listdir(wd)) if os.path.isdir(wd) else []
  return outcome(p, [("exit != 0", p.rc != 0), ("names mnist", "mnist" in p.block()),
                     ("names data_dir", empty in p.block()),
                     ("says how to prepare", "tfds build" in p.block()),
                     ("within 60 s", p.seconds < 60), ("no .lock", ".lock" not in left)],
                 lost=f"nothing; left {', '.join(left)}" if left else "nothing")


@case("input_stats_of_another_dataset", "data", "a digits start killed before its first "
      "checkpoint, then MNIST in that workdir: refused naming input_stats.npz, or the statistics "
      "refitted on MNIST (never digits' mean/std)")
def _(h):
  if not os.path.isdir(MNIST):
    return skip(f"{MNIST} absent")
  wd = h.path("run")
  killed = h.train(wd, *KILL, fault="at_row:10")
  with open(os.path.join(wd, "input_stats.npz"), "rb") as f:
    digits_stats = f.read()
  p = h.train(wd, f"--config.data.source=idx:{MNIST}", "--config.data.limit_train=2000",
              "--config.data.limit_test=500")
  with open(os.path.join(wd, "input_stats.npz"), "rb") as f:
    refitted = f.read() != digits_stats
  refused = p.rc != 0 and "input_stats" in p.block()
  return outcome(p, [("refused or refitted", refused or refitted)],
                 lost="nothing" if refused or refitted else
                 "MNIST trained with digits' mean/std (input_stats.npz reused)",
                 cmd=f"{killed.cmd}; then {p.cmd}")


# ----------------------------------------------------------------------------- resume
for _name, _flags, _names in (
    ("resume_changed_model_shape", ['--config.model.hidden=(128,64)'], ["model.hidden"]),
    ("resume_changed_learning_rate", ["--config.optimizer.learning_rate=0.01"],
     ["optimizer.learning_rate"]),
    ("resume_changed_noise", ["--config.train_noise.snr_db=10"], ["train_noise.snr_db"]),
    ("resume_changed_data_source", ["--config.data.source=idx:/tmp"], ["data.source"]),
    ("resume_past_num_steps", ["--config.num_steps=10"], ["num_steps", "may only grow"]),
):
  case(_name, "resume", REFUSED)(lambda h, f=_flags, n=_names: _refused_resume(h, f, n))


@case("resume_extended_steps", "resume", "resumes at step 20 and trains to 30; config.json "
      "records 30, fingerprint unchanged; no duplicate rows")
def _(h):
  wd = h.copy_of("base")
  before = h.snapshot(wd)
  p = h.train(wd, "--config.num_steps=30")
  after = h.snapshot(wd)
  with open(os.path.join(wd, "config.json")) as f:
    steps = json.load(f)["num_steps"]
  return outcome(p, [("exit 0", p.rc == 0), ("resumed at 20", "resuming at step 20" in p.out),
                     ("reached 30", h.final(wd)["steps"] == 30),
                     ("config.json says 30", steps == 30),
                     ("fingerprint kept", before["fingerprint.txt"] == after["fingerprint.txt"]),
                     ("no duplicate rows", h.unique_steps(wd)), ("no stray", not h.stray(wd))],
                 lost=h.changes(before, after))


@case("rerun_finished_run", "resume", "exit 0 with the same accuracy; says the stored final "
      "metrics stand; every file unchanged, final_metrics.json too (issue 25: its timing was "
      "rewritten, 4.51 s -> 0.0003 s); final_metrics.json strict JSON")
def _(h):
  wd = h.copy_of("base")
  before, acc = h.snapshot(wd), h.final(wd)["test_accuracy"]
  p = h.train(wd)
  after = h.snapshot(wd)
  try:
    final, strict = h.final(wd), True
  except ValueError:
    final, strict = {}, False
  return outcome(p, [("exit 0", p.rc == 0), ("strict JSON", strict),
                     ("same accuracy", final.get("test_accuracy") == acc),
                     ("says so", "stored final metrics stand" in p.out),
                     ("every file unchanged", before == after)], lost=h.changes(before, after),
                 key="stored final metrics stand")


@case("corrupt_checkpoint", "resume", "error names checkpoints/20; exit != 0; every file kept "
      "(5 runs)")
def _(h):
  wd = h.copy_of("base")
  folder = os.path.join(wd, "checkpoints", "20")
  files = [os.path.join(b, f) for b, _, fs in os.walk(folder) for f in fs]
  victim = max(files, key=os.path.getsize)
  with open(victim, "r+b") as f:
    f.write(b"\0garbage" * (os.path.getsize(victim) // 8))
  before = h.snapshot(wd)
  p, *again = [h.train(wd) for _ in range(REPEATS)]
  lost = h.changes(before, h.snapshot(wd))
  return outcome(p, [("exit != 0", p.rc != 0),
                     ("names checkpoints/20", "checkpoints/20" in p.err),
                     ("every file kept", lost == "nothing")], lost=lost, also=again)


@case("init_from_into_new_workdir", "resume", "a new workdir under a changed learning rate starts "
      "from the old run's parameters; the old run unchanged")
def _(h):
  base = h.shared("base")
  before = h.snapshot(base)
  wd = h.path("finetune")
  p = h.train(wd, f"--config.init_from={base}", "--config.optimizer.learning_rate=0.01")
  lost = h.changes(before, h.snapshot(base))
  return outcome(p, [("exit 0", p.rc == 0), ("says initialised", "initialised from" in p.out),
                     ("old run unchanged", lost == "nothing")], lost=lost)


@case("init_from_other_model", "resume", "init_from a run of another model shape: error names the "
      "checkpoint; exit != 0; old run unchanged (5 runs)")
def _(h):
  base = h.shared("base")
  before = h.snapshot(base)
  p, *again = [h.train(h.path("finetune"), f"--config.init_from={base}",
                       "--config.model.hidden=(128,64)") for _ in range(REPEATS)]
  lost = h.changes(before, h.snapshot(base))
  return outcome(p, [("exit != 0", p.rc != 0),
                     ("names the checkpoint", "checkpoints/20" in p.err),
                     ("old run unchanged", lost == "nothing")], lost=lost, also=again)


# ----------------------------------------------------------------------------- lock
@case("two_runs_started_together", "lock", "one run trains (equal to the reference), the other "
      "gets a clear 'in use' error; no duplicate rows, no stray files")
def _(h):
  wd = h.path("run")
  a, b = h.start(wd, *KILL), h.start(wd, *KILL)
  pa, pb = h.wait(a), h.wait(b)
  won, lost_run = (pa, pb) if pa.rc == 0 else (pb, pa)
  return outcome(lost_run, [("one exit 0, one != 0", [pa.rc, pb.rc].count(0) == 1),
                            ("loser says in use", "in use" in lost_run.block()),
                            ("bitwise equal to the reference", won.rc == 0 and not h.bitwise(wd)),
                            ("no stray", not h.stray(wd))], cmd=f"2 x {pa.cmd}")


@case("second_run_while_first_trains", "lock", "the second run (started once the first holds the "
      "lock) is refused naming the first's pid; the first ends equal to the reference")
def _(h):
  wd = h.path("run")
  a = h.start(wd, *KILL)
  h.wait_for(os.path.join(wd, ".lock"))
  pb = h.train(wd, *KILL)
  pa = h.wait(a)
  return outcome(pb, [("second exit != 0", pb.rc != 0),
                      ("names the pid", str(a.pid) in pb.block()),
                      ("first exit 0", pa.rc == 0), ("first bitwise equal", not h.bitwise(wd)),
                      ("no stray", not h.stray(wd))],
                 cmd=f"{pa.cmd}; the same once .lock exists")


@case("stale_lock_after_kill9", "lock", "a rerun after kill -9 takes the dead run's lock over with "
      "a message and ends equal to the reference")
def _(h):
  wd = h.path("run")
  a = h.start(wd, *KILL)
  h.wait_for(os.path.join(wd, ".lock"))
  a.send_signal(signal.SIGKILL)
  h.wait(a)
  p = h.train(wd, *KILL)
  diff = h.bitwise(wd) if p.rc == 0 else ["did not finish"]
  return outcome(p, [("exit 0", p.rc == 0), ("says stale", "stale lock" in p.out),
                     ("bitwise equal", not diff), ("no stray", not h.stray(wd))],
                 lost="; ".join(diff) or "nothing", key="stale lock",
                 cmd=f"{p.cmd} (kill -9 once .lock exists); then the same")


@case("unreadable_lock_file", "lock", "error names .lock and says to delete it if no run uses the "
      "workdir; exit != 0; folder unchanged")
def _(h):
  wd = h.copy_of("base")
  with open(os.path.join(wd, ".lock"), "w") as f:
    f.write("garbage")
  before = h.snapshot(wd)
  p = h.train(wd)
  lost = h.changes(before, h.snapshot(wd))
  return outcome(p, [("exit != 0", p.rc != 0), ("names .lock", ".lock" in p.block()),
                     ("folder unchanged", lost == "nothing")], lost=lost)


# ----------------------------------------------------------------------------- kill -9 and resume
def _kill_and_resume(h, fault: str | None, check_killed: Callable | None = None) -> dict:
  wd = h.path("run")
  if fault:
    killed = h.train(wd, *KILL, fault=fault)
    first = killed.cmd
  else:  # external kill -9 once checkpoint 20 is committed
    a = h.start(wd, *KILL)
    h.wait_for(os.path.join(wd, "checkpoints", "20"))
    a.send_signal(signal.SIGKILL)
    killed = h.wait(a)
    first = f"{killed.cmd} (kill -9 once checkpoints/20 exists)"
  extra = check_killed(wd, killed) if check_killed else []
  p = h.train(wd, *KILL)
  diff = h.bitwise(wd) if p.rc == 0 else ["did not finish"]
  return outcome(p, [("the first run was killed", killed.rc == "killed (-9)"), *extra,
                     ("resumed exit 0", p.rc == 0), ("bitwise equal to the reference", not diff),
                     ("no stray", not h.stray(wd))], lost="; ".join(diff) or "nothing",
                 key=r"resuming at|starting of", cmd=f"{first}; then {p.cmd}",
                 note="the killed run got to: " + killed.last_line())


RESUMED = ("the rerun resumes and ends bitwise equal to an uninterrupted run (final metrics, "
           "every metrics.jsonl row); no stray files")


@case("kill9_before_first_checkpoint", "kill", RESUMED)
def _(h):
  return _kill_and_resume(h, "at_row:10")


@case("kill9_after_first_checkpoint", "kill", RESUMED + " (external kill -9)")
def _(h):
  return _kill_and_resume(h, None)


@case("kill9_during_checkpoint_write", "kill", RESUMED + "; the half-written step folder removed")
def _(h):
  def tmp_left(wd, killed):
    half = h.stray(os.path.join(wd, "checkpoints"))
    return [("killed with a step folder half-written", bool(half))]
  return _kill_and_resume(h, "during_checkpoint:40", tmp_left)


@case("kill9_during_eval", "kill", RESUMED)
def _(h):
  return _kill_and_resume(h, "during_eval:30")


@case("partial_last_metrics_line", "kill", "killed mid-row: the half row is dropped on resume; "
      + RESUMED)
def _(h):
  def partial(wd, killed):
    with open(os.path.join(wd, "metrics.jsonl")) as f:
      return [("left a partial last row", not f.read().endswith("\n"))]
  return _kill_and_resume(h, "mid_row:50", partial)


# ----------------------------------------------------------------------------- evaluate
def _evaluate_case(h, flags, checks_fn, key=None) -> dict:
  wd = h.copy_of("base")
  before = h.snapshot(wd)
  p = h.evaluate(wd, *flags, *(["--snrs_db=0,inf"] if "--snrs_db" not in str(flags) else []))
  lost = h.changes(before, h.snapshot(wd))
  return outcome(p, checks_fn(p, lost), lost=lost, key=key)


@case("evaluate_a_run", "evaluate", "table with legend and checkpoint step; montecarlo.json "
      "added, nothing else changed")
def _(h):
  return _evaluate_case(h, ["--num_draws=2"], lambda p, lost: [
      ("exit 0", p.rc == 0), ("legend", "confidence interval" in p.out),
      ("checkpoint step 20", "checkpoint step 20" in p.out),
      ("only montecarlo.json added", lost == "added: montecarlo.json")], key="checkpoint step")


for _name, _flags, _names in (
    ("evaluate_bad_num_draws", ["--num_draws=0"], ["num_draws"]),
    ("evaluate_bad_snrs", ["--snrs_db=0,abc"], ["abc"]),
    ("evaluate_unknown_eval", ["--eval=nope"], ["nope"]),
):
  case(_name, "evaluate", "error names the value; exit != 0; run folder unchanged")(
      lambda h, f=_flags, n=_names: _evaluate_case(h, f, lambda p, lost: [
          ("exit != 0", p.rc != 0), *[(f"names {x!r}", x in p.block()) for x in n],
          ("run folder unchanged", lost == "nothing")]))


@case("evaluate_without_checkpoints", "evaluate", "error names checkpoints/; exit != 0; nothing "
      "written into the folder")
def _(h):
  wd = h.path("run")
  os.makedirs(wd)
  with open(os.path.join(h.shared("base"), "config.json")) as f, \
      open(os.path.join(wd, "config.json"), "w") as g:
    g.write(f.read())
  before = h.snapshot(wd)
  p = h.evaluate(wd, "--snrs_db=0,inf")
  lost = h.changes(before, h.snapshot(wd))
  return outcome(p, [("exit != 0", p.rc != 0), ("names checkpoints", "checkpoints" in p.block()),
                     ("nothing written", lost == "nothing" and os.listdir(wd) == ["config.json"])],
                 lost=lost)


@case("evaluate_with_changed_model", "evaluate", "--config.model.hidden override of another shape: "
      "error names the checkpoint; exit != 0; run folder unchanged (5 runs)")
def _(h):
  wd = h.copy_of("base")
  before = h.snapshot(wd)
  p, *again = [h.evaluate(wd, "--snrs_db=0,inf", "--config.model.hidden=(128,64)")
               for _ in range(REPEATS)]
  lost = h.changes(before, h.snapshot(wd))
  return outcome(p, [("exit != 0", p.rc != 0),
                     ("names the checkpoint", "checkpoints/20" in p.err),
                     ("run folder unchanged", lost == "nothing")], lost=lost, also=again)


@case("evaluate_missing_workdir", "evaluate", "error names the folder; exit != 0")
def _(h):
  p = h.evaluate("/nonexistent/run")
  return outcome(p, [("exit != 0", p.rc != 0), ("names it", "/nonexistent/run" in p.block())])


def _read_only_copy(h) -> tuple[str, str]:
  """A copy of the base run behind a read-only bind mount (root ignores file modes); falls back to
  an unwritable path where mounting is not allowed."""
  wd = h.copy_of("base")
  ro = h.path("readonly")
  os.makedirs(ro)
  ok = h.mount("--bind", wd, ro) and h.mount("-o", "remount,ro,bind", ro)
  return (ro, "read-only bind mount") if ok else (wd, "not read-only: mount refused")


@case("evaluate_read_only_run", "evaluate", "error names montecarlo.json and suggests "
      "--config.evals.montecarlo.output= before any computation; exit != 0")
def _(h):
  ro, how = _read_only_copy(h)
  p = h.evaluate(ro, "--num_draws=2", "--snrs_db=0,inf")
  return outcome(p, [(how, how == "read-only bind mount"), ("exit != 0", p.rc != 0),
                     ("names montecarlo.json", "montecarlo.json" in p.block()),
                     ("suggests output=", "--config.evals.montecarlo.output=" in p.block())],
                 note=how)


@case("evaluate_read_only_run_output_elsewhere", "evaluate", "with output= on a writable path: "
      "exit 0, table printed, arrays written there")
def _(h):
  ro, how = _read_only_copy(h)
  out = h.path("mc.json")
  p = h.evaluate(ro, "--num_draws=2", "--snrs_db=0,inf", f"--config.evals.montecarlo.output={out}")
  return outcome(p, [(how, how == "read-only bind mount"), ("exit 0", p.rc == 0),
                     ("table printed", "SNR dB" in p.out), ("arrays written", os.path.isfile(out))],
                 key="checkpoint step", note=how)


# ----------------------------------------------------------------------------- disk, NaN, paths
@case("full_disk", "disk", "one clear 'no space left' line naming the step, no temp folder left; "
      "after freeing space the same command resumes and ends bitwise equal to the reference")
def _(h):
  disk = h.path("disk")
  os.makedirs(disk)
  wd = os.path.join(disk, "run")
  flags = (*KILL[:3], "--config.checkpoint_every=10", "--config.keep_checkpoints=3")
  tmpfs = h.mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", disk)
  # Without root: the disk reports no free space once two checkpoints exist (inject.py).
  p = h.train(wd, *flags, **({} if tmpfs else {"fault": "no_space:2"}))
  errors = [l for l in p.err.splitlines() if l.strip()]
  stray = h.stray(wd)
  if tmpfs:
    h.mount("-o", "remount,size=32m", disk)
  again = h.train(wd, *flags)
  diff = h.bitwise(wd) if again.rc == 0 else ["did not finish after freeing space"]
  return outcome(p, [("exit != 0", p.rc != 0),
                     ("says no space", "no space left" in p.block().lower()),
                     (f"one stderr line (got {len(errors)})", len(errors) == 1),
                     ("no temp folder left", not stray),
                     ("resumed after freeing space", again.rc == 0),
                     ("bitwise equal after resume", not diff)],
                 lost="; ".join(diff) or "nothing", cmd=f"{p.cmd}; then again with space",
                 note="a 2 MB tmpfs, then remounted at 32 MB" if tmpfs else
                 "mount refused: shutil.disk_usage patched to 0 bytes free after 2 checkpoints")


@case("nan_learning_rate_1e30", "other", "error names the step of the first non-finite loss; "
      "every saved checkpoint finite; the rerun stops at the same step")
def _(h):
  wd = h.path("run")
  flags = ("--config.optimizer.learning_rate=1e30", "--config.checkpoint_every=1")
  p = h.train(wd, *flags)
  finite = h.finite_checkpoints(wd)
  again = h.train(wd, *flags)
  return outcome(p, [("exit != 0", p.rc != 0), ("names the step", "at step" in p.block()),
                     (f"checkpoints {sorted(finite)} finite", all(finite.values())),
                     ("rerun stops at the same step", again.message() == p.message())],
                 cmd=f"{p.cmd}; then the same")


@case("config_from_another_directory", "other", "--config=/abs/path/configs/X.py from cwd /tmp "
      "trains (exit 0)")
def _(h):
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  p = h.train(h.path("run"), config=os.path.join(repo, TINY), cwd="/tmp")
  return outcome(p, [("exit 0", p.rc == 0)])
