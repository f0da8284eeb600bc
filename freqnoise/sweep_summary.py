"""The summary of a sweep (freqnoise.sweep) across its cells: a markdown table of the metric per
grid point (mean over seeds, 95% Student t interval, each seed, train time) and a figure of the
metric against the first grid's values."""

from __future__ import annotations

import json
import math
import os

from freqnoise import stats
from freqnoise.workdir import write_atomically

METRICS = ("test_accuracy", "test_perplexity", "test_box_AP")  # the default: the first present


def read_results(cells) -> dict[str, dict]:
  """{cell name: its final_metrics.json} for every cell that has one."""
  results = {}
  for cell in cells:
    path = os.path.join(cell.workdir, "final_metrics.json")
    if os.path.isfile(path):
      with open(path) as f:
        results[cell.name] = json.load(f)
  return results


def choose_metric(results: dict[str, dict], metric: str | None) -> str:
  keys = {k for r in results.values() for k in r}
  if metric:
    if results and metric not in keys:
      raise ValueError(f"--metric {metric!r} is in no cell's final_metrics.json; they hold: "
                       f"{', '.join(sorted(keys))}")
    return metric
  return next((m for m in METRICS if m in keys), "test_loss")


def summarize(cells, results: dict[str, dict], metric: str) -> list[dict]:
  """One row per grid point: its values, the metric per seed, mean, 95% t interval, train time."""
  rows = {}
  for cell in cells:
    row = rows.setdefault(cell.values, {"values": dict(cell.values), "per_seed": {}, "seconds": []})
    result = results.get(cell.name, {})
    if result.get(metric) is not None:
      row["per_seed"][cell.seed] = float(result[metric])
      row["seconds"].append(result.get("train_seconds") or 0.0)
  for row in rows.values():
    v = list(row["per_seed"].values())
    row["n"] = len(v)
    row["mean"] = sum(v) / len(v) if v else float("nan")
    row["ci95"] = stats.mean_interval(v) if len(v) >= 2 and all(map(math.isfinite, v)) else None
    row["train_minutes"] = sum(row["seconds"]) / len(row["seconds"]) / 60 if v else float("nan")
  return list(rows.values())


def table(rows: list[dict], keys: list[str], metric: str, expected: int) -> str:
  head = [k.lstrip(":") for k in keys] + ["n", f"{metric} (mean)", "95% interval", "per seed",
                                          "train min"]
  lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
  for r in rows:
    ci = f"[{r['ci95'][0]:.4f}, {r['ci95'][1]:.4f}]" if r["ci95"] else "—"
    seeds = ", ".join(("" if s is None else f"{s}: ") + f"{v:.4f}"
                      for s, v in r["per_seed"].items())
    n = f"{r['n']}" + (f" of {expected}" if r["n"] < expected else "")
    lines.append("| " + " | ".join([*(r["values"][k] for k in keys), n, f"{r['mean']:.4f}", ci,
                                     seeds or "—", f"{r['train_minutes']:.1f}"]) + " |")
  return "\n".join(lines)


def plot(rows: list[dict], keys: list[str], metric: str, path: str) -> None:
  """The metric (mean, 95% interval, each seed) against the first grid's values, as categories."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  x_key, rest = (keys[0], keys[1:]) if keys else (None, [])
  labels = list(dict.fromkeys(r["values"][x_key] for r in rows)) if x_key else ["all"]
  fig, ax = plt.subplots(figsize=(6, 4))
  for group in dict.fromkeys(tuple(r["values"][k] for k in rest) for r in rows):
    line = [r for r in rows if tuple(r["values"][k] for k in rest) == group and r["n"]]
    xs = [labels.index(r["values"][x_key]) if x_key else 0 for r in line]
    means = [r["mean"] for r in line]
    err = [[r["mean"] - r["ci95"][0] if r["ci95"] else 0 for r in line],
           [r["ci95"][1] - r["mean"] if r["ci95"] else 0 for r in line]]
    name = ", ".join(f"{k.lstrip(':')}={v}" for k, v in zip(rest, group)) or None
    drawn = ax.errorbar(xs, means, yerr=err, marker="o", capsize=3, label=name)
    for x, r in zip(xs, line):
      ax.plot([x] * r["n"], list(r["per_seed"].values()), ".", color=drawn[0].get_color(),
              alpha=0.4)
  ax.set_xticks(range(len(labels)), labels)
  ax.set_xlabel(x_key.lstrip(":") if x_key else "")
  ax.set_ylabel(f"{metric} (mean, 95% interval, each seed)")
  ax.grid(alpha=0.3)
  if rest:
    ax.legend(fontsize=8)
  fig.tight_layout()
  write_atomically(path, lambda f: fig.savefig(f, format="png", dpi=120))
  plt.close(fig)
