"""Paper claims and our verdicts: `experiments/<paper>/results/claims.json`, one rule for all.

Each file holds `{"claims": [ ... ]}` in the format of ../shared/DESIGN.md ("Claims"). The verdict
is decided by the interval, never by taste (DESIGN.md):

- level (the paper reports a value for a method): `reproduced` if ci95[1] >= paper − tolerance,
  `not reproduced` if ci95[1] < paper − tolerance, `inconclusive` only without an interval;
- difference (A − B, the paper's d > 0): `reproduced` if ci95[0] > 0, `contradicted` if
  ci95[1] < 0, `not reproduced` if the interval holds 0 but lies below d, otherwise
  `inconclusive` (it holds both 0 and d).

    python experiments/claims.py           # every claim with its verdict; exit 1 on a bad file

`experiments/tables.py` writes README.md's claims table from the same files.
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = ("level", "difference")
VERDICTS = ("reproduced", "not reproduced", "contradicted", "inconclusive")
OVER = ("seeds", "draws", "images")
REQUIRED = {"id": str, "paper": str, "statement": str, "kind": str, "paper_value": (int, float),
            "ours": (int, float), "ci95": (list, type(None)), "n": int, "over": str, "unit": str,
            "verdict": str, "files": list, "command": str, "differs": str}


def verdict(claim: dict) -> str:
  """The verdict DESIGN.md's rule gives `claim` (its `ci95`, `paper_value`, `tolerance`)."""
  ci, paper = claim.get("ci95"), float(claim["paper_value"])
  if ci is None:
    return "inconclusive"
  low, high = (float(v) for v in ci)
  if claim["kind"] == "level":
    return "reproduced" if high >= paper - float(claim["tolerance"]) else "not reproduced"
  if low > 0:
    return "reproduced"
  if high < 0:
    return "contradicted"
  return "not reproduced" if high < paper else "inconclusive"


def check(claim: dict, where: str) -> None:
  """Raises ValueError naming the field if `claim` does not follow the format, or if its stored
  verdict is not the rule's."""
  name = f"{where}: claim {claim.get('id', '?')!r}"
  for field, types in REQUIRED.items():
    if field not in claim:
      raise ValueError(f"{name} lacks the field {field!r}")
    if isinstance(claim[field], bool) or not isinstance(claim[field], types):
      raise ValueError(f"{name}: {field} must be {types}, got {claim[field]!r}")
  if claim["kind"] not in KINDS:
    raise ValueError(f"{name}: kind must be one of {KINDS}, got {claim['kind']!r}")
  if claim["kind"] == "level" and not isinstance(claim.get("tolerance"), (int, float)):
    raise ValueError(f"{name}: a level claim needs a numeric tolerance (stated up front)")
  if claim["kind"] == "difference" and not claim["paper_value"] > 0:
    raise ValueError(f"{name}: a difference claim states the paper's d > 0 (A − B, A the "
                     f"paper's better method), got {claim['paper_value']!r}")
  if claim["over"] not in OVER:
    raise ValueError(f"{name}: over must be one of {OVER}, got {claim['over']!r}")
  ci = claim["ci95"]
  if ci is not None and not (len(ci) == 2 and all(isinstance(v, (int, float)) and math.isfinite(v)
                                                  for v in ci) and ci[0] <= ci[1]):
    raise ValueError(f"{name}: ci95 must be [low, high] with low <= high, got {ci!r}")
  if ci is None and claim["n"] >= 2:
    raise ValueError(f"{name}: n = {claim['n']} {claim['over']} give an interval; state ci95")
  if claim["verdict"] not in VERDICTS:
    raise ValueError(f"{name}: verdict must be one of {VERDICTS}, got {claim['verdict']!r}")
  if claim["verdict"] != verdict(claim):
    raise ValueError(f"{name}: verdict {claim['verdict']!r} is not the rule's {verdict(claim)!r}")
  missing = [f for f in claim["files"] if not os.path.isfile(os.path.join(ROOT, f))]
  if not claim["files"] or missing:
    raise ValueError(f"{name}: result files {missing or '(none)'} do not exist (paths are "
                     "relative to the repository root)")


def load(root: str | None = None) -> list[tuple[str, dict]]:
  """(paper folder, claim) of every claims file, each claim checked; ids are unique."""
  root = root or ROOT
  out, seen = [], {}
  for path in sorted(glob.glob(os.path.join(root, "experiments", "*", "results", "claims.json"))):
    where = os.path.relpath(path, root)
    with open(path) as f:
      data = json.load(f)
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
      raise ValueError(f"{where}: must hold {{\"claims\": [...]}}")
    for claim in data["claims"]:
      check(claim, where)
      if claim["id"] in seen:
        raise ValueError(f"{where}: claim id {claim['id']!r} also in {seen[claim['id']]}")
      seen[claim["id"]] = where
      out.append((where.split(os.sep)[1], claim))
  return out


def with_verdict(claim: dict) -> dict:
  """`claim` with its `verdict` field set by the rule (for scripts that write claims files)."""
  return {**claim, "verdict": verdict(claim)}


def _files_text(files: list[str]) -> str:
  """Result files, shortly: one folder, seed files folded into `NAME[_seedN].json`."""
  folders = sorted({os.path.dirname(f) for f in files})
  names = []
  for f in files:
    base = os.path.basename(f)
    folded = re.sub(r"_seed\d+\.json$", ".json", base)
    many = sum(re.sub(r"_seed\d+\.json$", ".json", os.path.basename(g)) == folded for g in files)
    name = folded.replace(".json", "[_seedN].json") if many > 1 else base
    if name not in names:
      names.append(name)
  return f"`{folders[0]}/`: " + ", ".join(names) if len(folders) == 1 else ", ".join(files)


def _number(x: float) -> str:
  return f"{x:+.2f}" if abs(x) < 100 else f"{x:+,.0f}"


def markdown_table(claims: list[tuple[str, dict]]) -> str:
  """README.md's claims table: claim, the paper's number, ours with its 95% interval, n, verdict
  (with the seeds a power estimate asks for when inconclusive), result files."""
  lines = ["| claim | paper | ours [95% interval] | n | verdict | result files |",
           "|---|---|---|---|---|---|"]
  for _, c in claims:
    sign = c["kind"] == "difference"
    fmt = _number if sign else (lambda x: f"{x:,.2f}")
    ci = "no interval" if c["ci95"] is None else f"[{fmt(c['ci95'][0])}, {fmt(c['ci95'][1])}]"
    paper = fmt(c["paper_value"]) + ("" if sign else f" (tolerance {c['tolerance']:g})")
    verdict = c["verdict"]
    if c.get("seeds_needed"):
      verdict += f" (≈{c['seeds_needed']} seeds for the paper's d)"
    lines.append(f"| `{c['id']}`: {c['statement']} | {paper} {c['unit']} | {fmt(c['ours'])} {ci} "
                 f"| {c['n']} {c['over'] if c['n'] != 1 else c['over'][:-1]} | {verdict} | {_files_text(c['files'])} |")
  return "\n".join(lines)


def main() -> int:
  try:
    claims = load()
  except ValueError as e:
    print(e, file=sys.stderr)
    return 1
  for paper, c in claims:
    ci = "—" if c["ci95"] is None else f"[{c['ci95'][0]:.2f}, {c['ci95'][1]:.2f}]"
    print(f"{paper:24s} {c['id']:48s} ours {c['ours']:.2f} {ci} n={c['n']} {c['over']}: "
          f"{c['verdict']} (paper {c['paper_value']:g})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
