"""Writes each paper's `results/claims.json` from its result files, by the paper's claims spec.

A paper folder with claims has `experiments/<paper>/claims_spec.py` defining `claims()`: a list of
claim dicts (DESIGN.md, "Claims") whose numbers come from `results/*.json` through the helpers here
(`difference_over_seeds`, `level_over_seeds`, `level_over_images`, `over_draws`,
`single_run_difference`), never typed by hand. The verdict is then set by the rule in
`experiments/claims.py`.

    python experiments/claims_build.py --write   # rewrite every claims.json from the result files
    python experiments/claims_build.py --check   # exit 1, naming the files, if one is stale

A claims file is written only with `--write` (atomically), so running anything else never changes
`results/`.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import claims as claims_format  # noqa: E402
from freqnoise import stats  # noqa: E402


def results_path(paper: str, name: str) -> str:
  """Repository-relative path of `experiments/<paper>/results/<name>` (as claims list files)."""
  return os.path.join("experiments", paper, "results", name)


def read(path: str) -> dict:
  with open(os.path.join(ROOT, path)) as f:
    return json.load(f)


def per_seed(paper: str, stem: str, key: str, scale: float = 100.0) -> tuple[dict, list[str]]:
  """{seed: value * scale} from `<stem>.json` (seed 0) and `<stem>_seed<s>.json`, with the files.

  A file's own `seed` field, when present, must agree with its name. A dotted `key` reads a
  nested field (`final_metrics.test_accuracy`).
  """
  values, files = {}, []
  pattern = re.compile(re.escape(stem) + r"(?:_seed(\d+))?\.json$")
  for path in sorted(glob.glob(os.path.join(ROOT, "experiments", paper, "results", stem + "*"))):
    match = pattern.fullmatch(os.path.basename(path))
    if not match:
      continue
    seed = int(match.group(1) or 0)
    rel = os.path.relpath(path, ROOT)
    row = read(rel)
    if row.get("seed", seed) != seed:
      raise ValueError(f"{rel}: its seed field {row['seed']} is not the seed {seed} of its name")
    value = row
    for part in key.split("."):
      value = value[part]
    values[seed], files = float(value) * scale, files + [rel]
  return values, files


def difference_over_seeds(base: dict, a: tuple[dict, list], b: tuple[dict, list]) -> dict:
  """A claim of kind 'difference' from per-seed values of A and B (`per_seed`'s output): the
  paired mean difference over the seeds both have, its paired t interval as ci95 (the paired
  bootstrap interval and each variant's mean ± std beside it), and, when the rule says
  inconclusive, the seeds a paired t test would need to tell the paper's d from 0 at the observed
  spread (power 0.8)."""
  (va, fa), (vb, fb) = a, b
  common = sorted(set(va) & set(vb))
  files = sorted(f for f in fa + fb if _seed_of(f) in common)
  claim = {**base, "kind": "difference", "over": "seeds", "files": files}
  if not common:
    raise ValueError(f"{base['id']}: no seed has both variants ({fa + fb})")
  if len(common) == 1:
    (only,) = common
    return {**claim, "ours": round(va[only] - vb[only], 4), "ci95": None, "n": 1}
  r = stats.paired_difference({s: va[s] for s in common}, {s: vb[s] for s in common})
  claim.update(ours=round(r.mean, 4), ci95=[round(v, 4) for v in r.t_ci95], n=r.n,
               bootstrap_ci95=[round(v, 4) for v in r.bootstrap_ci95], seeds=list(r.seeds),
               std_difference=round(r.std, 4), mean_a=round(r.mean_a, 4),
               std_a=round(r.std_a, 4), mean_b=round(r.mean_b, 4), std_b=round(r.std_b, 4))
  if claims_format.verdict(claim) == "inconclusive" and r.std > 0:
    claim["seeds_needed"] = stats.seeds_for_power(r.std, float(base["paper_value"]))
  return claim


def single_run_difference(base: dict, a: float, b: float, files: list[str]) -> dict:
  """A difference measured once (one seed, one run each): no interval, so 'inconclusive'."""
  return {**base, "kind": "difference", "over": "seeds", "ours": round(a - b, 4), "ci95": None,
          "n": 1, "files": files}


def level_over_seeds(base: dict, values: tuple[dict, list]) -> dict:
  """A 'level' claim: the mean over seeds with its t interval (n >= 2), or one seed, no interval."""
  v, files = values
  seeds = sorted(v)
  ci = ([round(x, 4) for x in stats.mean_interval([v[s] for s in seeds])]
        if len(seeds) >= 2 else None)
  return {**base, "kind": "level", "over": "seeds", "files": files, "seeds": seeds,
          "ours": round(sum(v.values()) / len(v), 4), "ci95": ci, "n": len(seeds)}


def level_over_images(base: dict, correct: int, total: int, files: list[str]) -> dict:
  """A 'level' accuracy claim of one trained model: `correct` of `total` test images, with the
  Wilson interval of the test set's sampling (not the spread over seeds: say so in `differs`)."""
  low, high = stats.proportion_interval(int(correct), int(total))
  return {**base, "kind": "level", "over": "images", "files": files, "n": int(total),
          "ours": round(100 * correct / total, 4), "ci95": [round(100 * low, 4),
                                                             round(100 * high, 4)]}


def over_draws(base: dict, values, files: list[str]) -> dict:
  """A claim (`base['kind']`: level or difference) on one trained model whose `ours` is the mean
  of its per-draw `values` (Monte Carlo noise draws, in the claim's unit), with the t interval
  over the draws: the noise's spread, not the test set's nor the seeds' (say so in `differs`)."""
  v = [float(x) for x in values]
  ci = [round(x, 4) for x in stats.mean_interval(v)] if len(v) >= 2 else None
  return {**base, "over": "draws", "files": files, "n": len(v),
          "ours": round(sum(v) / len(v), 4), "ci95": ci}


def _seed_of(path: str) -> int:
  match = re.search(r"_seed(\d+)\.json$", path)
  return int(match.group(1)) if match else 0


def specs() -> dict[str, object]:
  """{paper folder: its claims_spec module} for every experiments/<paper>/claims_spec.py."""
  out = {}
  for path in sorted(glob.glob(os.path.join(HERE, "*", "claims_spec.py"))):
    paper = os.path.basename(os.path.dirname(path))
    spec = importlib.util.spec_from_file_location(f"claims_spec_{paper}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out[paper] = module
  return out


def build(paper: str, module) -> str:
  """The JSON text of `paper`'s claims file: each claim checked, its verdict by the rule."""
  out = []
  for claim in module.claims():
    claim = claims_format.with_verdict(claim)
    claims_format.check(claim, results_path(paper, "claims.json"))
    out.append(claim)
  return json.dumps({"claims": out}, indent=1, ensure_ascii=False) + "\n"


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  mode = parser.add_mutually_exclusive_group(required=True)
  mode.add_argument("--write", action="store_true", help="rewrite every claims.json")
  mode.add_argument("--check", action="store_true", help="exit 1 if a claims.json is stale")
  args = parser.parse_args(argv)
  stale = []
  for paper, module in specs().items():
    text, path = build(paper, module), os.path.join(ROOT, results_path(paper, "claims.json"))
    current = None
    if os.path.isfile(path):
      with open(path) as f:  # closed at once: an open handle is a ResourceWarning under pytest
        current = f.read()
    if text == current:
      continue
    if args.check:
      stale.append(os.path.relpath(path, ROOT))
      continue
    with open(path + ".tmp", "w") as f:
      f.write(text)
    os.replace(path + ".tmp", path)
    print(f"wrote {os.path.relpath(path, ROOT)}")
  if stale:
    print("stale (run python experiments/claims_build.py --write): " + ", ".join(stale),
          file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
