"""Every bad input and fault of issue 10, run as a user runs them: the message each gets, how long
it takes to appear, and whether anything in the run folder was lost or overwritten.

    python experiments/reliability/run.py              # every case, in order (~15 min, 2 CPU cores)
    python experiments/reliability/run.py --only NAME  # rerun one case (repeatable), merged in
    python experiments/reliability/run.py --list       # case names

Each case (experiments/reliability/cases.py) runs `python -m freqnoise.main` / `freqnoise.evaluate`
as a subprocess (1 CPU device: XLA_FLAGS=) in its own temporary folder, checks what it states it
expects, and records exit code, message, seconds and what changed. Faults at exact moments go
through inject.py. Writes results/faults.json and the table in README.md between its markers.
Cases need root for the full disk (a 2 MB tmpfs) and the read-only run (a read-only bind mount).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cases as case_table  # noqa: E402
import data_cases  # noqa: E402,F401  (adds issue 25's bad data and settings to the table)
from harness import KILL, REPO, TINY, Harness  # noqa: E402

RESULTS = os.path.join(HERE, "results", "faults.json")
README = os.path.join(HERE, "README.md")
START, END = "<!-- faults:start -->", "<!-- faults:end -->"


# ----------------------------------------------------------------------------- records
def run_case(h: Harness, case) -> dict:
  h.begin(case.name)
  t0 = time.perf_counter()
  try:
    out = case.fn(h)
  except Exception as e:  # the harness itself broke: recorded, never hidden
    out = dict(cmd="", rc="", message=f"harness error: {type(e).__name__}: {e}"[:200],
               seconds=0.0, lost="?", failed=["the case ran to its end"], verdict="FAIL")
  finally:
    h.unmount_all()
  out.update(name=case.name, group=case.group, expect=case.expect,
             case_seconds=round(time.perf_counter() - t0, 1))
  return out


def machine() -> str:
  import jax
  return (f"{platform.node()}: {os.cpu_count()} CPU cores, {platform.system()} "
          f"{platform.release()}, Python {platform.python_version()}, jax {jax.__version__} "
          f"(1 CPU device)")


def abbreviate(cmd: str) -> str:
  """A table's command: `main` / `evaluate` for `python -m freqnoise.X`, `tiny` and `KILL` for the
  flags every case shares (the JSON keeps the whole command)."""
  for long, short in ((f"--config={TINY}", "tiny"), (" ".join(KILL), "KILL"),
                      ("freqnoise.main ", "main "), ("freqnoise.evaluate ", "evaluate ")):
    cmd = cmd.replace(long, short)
  return cmd


def cell(text) -> str:
  return str(text).replace("|", "\\|").replace("\n", " ")


def table(records: list[dict], meta: dict) -> str:
  passed = sum(r["verdict"] == "PASS" for r in records)
  skipped = sum(r["verdict"] == "SKIP" for r in records)
  lines = [f"{len(records)} cases: **{passed} PASS**, {len(records) - passed - skipped} FAIL"
           + (f", {skipped} SKIP" if skipped else "") + f"; {meta['total_seconds']:.0f} s in all "
           f"on {meta['machine']}, {meta['date']}, commit {meta['commit']}.", "",
           "| # | case | command (abbreviated, see above) | expected | exit | message the user "
           "gets | s | lost or overwritten | result |", "|---" * 9 + "|"]
  for i, r in enumerate(records, 1):
    verdict = r["verdict"] if r["verdict"] != "FAIL" else "**FAIL**: " + "; ".join(r["failed"])
    verdict += f" ({r['note']})" if r.get("note") else ""
    lines.append("| " + " | ".join(cell(x) for x in (
        i, f"`{r['name']}`", f"`{abbreviate(r['cmd'])}`" if r["cmd"] else "", r["expect"], r["rc"],
        r["message"], f"{r['seconds']:.1f}", r["lost"], verdict)) + " |")
  return "\n".join(lines)


def write_outputs(records: list[dict], meta: dict) -> None:
  os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
  tmp = RESULTS + ".tmp"
  with open(tmp, "w") as f:
    json.dump({"meta": meta, "cases": records}, f, indent=1)
    f.write("\n")
  os.replace(tmp, RESULTS)
  with open(README) as f:
    text = f.read()
  head, rest = text.split(START, 1)
  tail = rest.split(END, 1)[1]
  with open(README + ".tmp", "w") as f:
    f.write(f"{head}{START}\n{table(records, meta)}\n{END}{tail}")
  os.replace(README + ".tmp", README)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--only", action="append", default=[], help="case name (repeatable)")
  parser.add_argument("--list", action="store_true", help="print the case names and exit")
  parser.add_argument("--keep", action="store_true", help="keep the temp folders")
  args = parser.parse_args()
  if args.list:
    for c in case_table.CASES:
      print(f"{c.name:36} {c.expect}")
    return
  names = {c.name for c in case_table.CASES}
  unknown = [n for n in args.only if n not in names]
  if unknown:
    sys.exit(f"unknown case(s) {unknown}; see --list")
  chosen = [c for c in case_table.CASES if not args.only or c.name in args.only]
  old, old_commit = {}, None
  if args.only and os.path.isfile(RESULTS):
    with open(RESULTS) as f:
      saved = json.load(f)
    old, old_commit = {r["name"]: r for r in saved["cases"]}, saved["meta"]["commit"]
  root = tempfile.mkdtemp(prefix="freqnoise_reliability_")
  h = Harness(root)
  t0 = time.perf_counter()
  try:
    for i, case in enumerate(chosen, 1):
      print(f"[{i}/{len(chosen)}] {case.name} ...", flush=True)
      record = run_case(h, case)
      old[case.name] = record
      print(f"[{i}/{len(chosen)}] {case.name}: {record['verdict']} in {record['case_seconds']} s"
            f" (exit {record['rc']}): {record['message'][:110]}"
            + (f"\n    failed: {record['failed']}" if record["failed"] else ""), flush=True)
  finally:
    if not args.keep:
      shutil.rmtree(root, ignore_errors=True)
  total = time.perf_counter() - t0
  commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                          text=True).stdout.strip()
  dirty = subprocess.run(  # (this script's own outputs do not count)
      ["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
       ":!experiments/reliability/README.md", ":!experiments/reliability/results"], cwd=REPO,
      capture_output=True, text=True).stdout.strip()
  commit += " with uncommitted changes to tracked files" if dirty else ""
  for case in chosen:  # each row remembers the commit it ran at
    old[case.name]["commit"] = commit
  records = [old[c.name] for c in case_table.CASES if c.name in old]
  for r in records:  # rows of an earlier full run, before rows carried their commit
    r.setdefault("commit", (old_commit or commit).split(" (")[0])
  by_commit: dict[str, list[str]] = {}
  for r in records:
    by_commit.setdefault(r["commit"], []).append(r["name"])
  main_commit = max(by_commit, key=lambda c: len(by_commit[c]))
  commit = main_commit + "".join(f" ({', '.join(names)} at {c})"
                                 for c, names in by_commit.items() if c != main_commit)
  meta = dict(date=datetime.date.today().isoformat(), machine=machine(), commit=commit,
              total_seconds=round(total if not args.only else sum(r["case_seconds"]
                                                                  for r in records), 1))
  write_outputs(records, meta)
  passed = sum(r["verdict"] == "PASS" for r in records)
  print(f"{passed}/{len(records)} PASS in {total:.0f} s; {RESULTS}, {README}")


if __name__ == "__main__":
  main()
