"""Evaluator scalars as readable tables: what `freqnoise.evaluate` prints, and the end of a training
run (`freqnoise.main`) instead of a 40-80-key JSON dump (the JSON stays in final_metrics.json).

    SNR dB     mean     ci95  ...   major.    meanp      (keys 'snr_X/<metric>': a row per SNR)
        -5   0.4312   0.0121  ...
             AP     AP50  ...                            (keys '<row>_AP', '<row>_AP50', ...: COCO)
    box    0.0743   0.2107  ...
    steps 10 | train_seconds 6.9917 | ...                (anything else)

A key's part before its 'snr_X' segment names a sub-table ('clean/snr_0/mean': the clean inputs
of an attack evaluator); in a training result the part before the first '/' names the evaluator.
"""

from __future__ import annotations

import math
from typing import Mapping

from freqnoise.detection.coco_eval import STAT_NAMES

# Columns of an SNR table in this order (others follow in the order they come), short names.
SNR_COLUMNS = ("mean", "ci95", "std", "p2.5", "p97.5", "vote_majority", "vote_mean_prob")
SHORT = {"vote_majority": "major.", "vote_mean_prob": "meanp"}
COLUMN_TEXT = {
    "mean": "the metric (accuracy; perplexity for mc_perplexity) averaged over the noise draws",
    "ci95": "half-width of its 95% confidence interval (Student t)",
    "std": "its standard deviation across draws",
    "p2.5": "2.5th percentile of the per-draw values", "p97.5": "97.5th percentile",
    "vote_majority": "accuracy of a majority vote over all draws",
    "vote_mean_prob": "accuracy of the mean probability over all draws"}
WIDTH = 100  # columns of a wrapped line of other scalars


def number(value) -> str:
  """4 decimals (accuracies, AP, losses), 1 above 100 (perplexities, rates); integers as is."""
  if value is None:  # NaN as strict JSON writes it
    return "nan"
  if isinstance(value, bool) or isinstance(value, int):
    return str(value)
  value = float(value)
  if not math.isfinite(value):
    return str(value)
  return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"


def legend(columns) -> str:
  """What the SNR table's `columns` mean (those of COLUMN_TEXT, in its order), in lines of at most
  WIDTH columns broken between entries."""
  return "\n".join(_packed([f"{SHORT.get(c, c)}: {text}" for c, text in COLUMN_TEXT.items()
                            if c in columns], "; "))


def _packed(items: list[str], sep: str) -> list[str]:
  """`items` joined by `sep` into lines of at most WIDTH columns (an item is never broken)."""
  lines, line = [], ""
  for item in items:
    if line and len(line) + len(sep) + len(item) > WIDTH:
      lines.append(line + sep.rstrip())
      line = ""
    line = f"{line}{sep}{item}" if line else item
  return lines + ([line] if line else [])


def _grid(rows: dict[str, dict[str, float]], columns: list[str], corner: str) -> list[str]:
  """Right-aligned rows x columns; a missing cell is nan."""
  names = [SHORT.get(c, c) for c in columns]
  cells = {r: [number(row.get(c, math.nan)) for c in columns] for r, row in rows.items()}
  widths = [max([len(n), 6] + [len(cells[r][j]) for r in rows]) for j, n in enumerate(names)]
  first = max([len(corner)] + [len(r) for r in rows])
  lines = [f"{corner:>{first}} " + " ".join(f"{n:>{w}}" for n, w in zip(names, widths))]
  for r in rows:
    lines.append(f"{r:>{first}} " + " ".join(f"{v:>{w}}" for v, w in zip(cells[r], widths)))
  return lines


def _snr_key(snr: str) -> float:
  return math.inf if snr == "inf" else float(snr)


def block_lines(scalars: Mapping[str, float]) -> tuple[list[str], set[str]]:
  """(The lines of one evaluator's scalars: SNR tables, a COCO table, the rest; the SNR tables'
  columns, which the legend explains)."""
  sweeps: dict[str, dict[str, dict[str, float]]] = {}
  coco: dict[str, dict[str, float]] = {}
  rest: dict[str, float] = {}
  for key, value in scalars.items():
    parts = key.split("/")
    at = next((i for i, p in enumerate(parts) if p.startswith("snr_")), None)
    stat = next((s for s in STAT_NAMES if key.endswith("_" + s)), None)
    if at is not None:
      row = sweeps.setdefault("/".join(parts[:at]), {}).setdefault(parts[at][4:], {})
      row["/".join(parts[at + 1:])] = value
    elif stat is not None:
      coco.setdefault(key[:-len(stat) - 1], {})[stat] = value
    else:
      rest[key] = value
  lines, shown = [], set()
  for prefix, rows in sweeps.items():
    seen = list(dict.fromkeys(m for row in rows.values() for m in row))
    columns = [m for m in SNR_COLUMNS if m in seen] + [m for m in seen if m not in SNR_COLUMNS]
    shown.update(columns)
    if prefix:
      lines.append(f"{prefix}:")
    lines += _grid({s: rows[s] for s in sorted(rows, key=_snr_key)}, columns, "SNR dB")
  if coco:
    lines += _grid(coco, [s for s in STAT_NAMES if any(s in r for r in coco.values())], "")
  return lines + _packed([f"{k} {number(v)}" for k, v in rest.items()], " | "), shown


def format_table(scalars: Mapping[str, float], step: int | None = None) -> str:
  """One evaluator's scalars as tables (an SNR table's legend after them) and, given `step`, the
  checkpoint step evaluated."""
  lines, columns = block_lines(scalars)
  if columns:
    lines.append(legend(columns))
  if step is not None:
    lines.append(f"checkpoint step {step}")
  return "\n".join(lines)


def results_table(result: Mapping[str, float]) -> str:
  """A training run's final result: its own scalars, then each evaluator's ('<name>/...') under
  its name, indented; one legend at the end when there is an SNR table."""
  own = {k: v for k, v in result.items() if "/" not in k}
  lines, columns = block_lines(own)
  groups: dict[str, dict[str, float]] = {}
  for k, v in result.items():
    if "/" in k:
      name, rest = k.split("/", 1)
      groups.setdefault(name, {})[rest] = v
  for name, scalars in groups.items():
    block, shown = block_lines(scalars)
    lines += [f"{name}:"] + ["  " + line for line in block]
    columns |= shown
  if columns:
    lines.append(legend(columns))
  return "\n".join(lines)
