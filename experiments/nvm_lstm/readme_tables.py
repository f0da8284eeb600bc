"""The README tables of paper 4's accuracy half (experiments/nvm_lstm/results/*.json).

Loaded by experiments/tables.py, which calls `register(kit)` with its registry and helpers
(`kit.table`, `kit._results`, `kit._read`, `kit._markdown`); they read tables.py's ROOT when
called, so a test that points `tables.ROOT` at a fake repository reaches these tables too.
"""

from __future__ import annotations

import os
import re

import numpy as np

PAPER = "nvm_lstm"
# Result files of runs.sh: <task>_<name>_seed<N>.json, name = float | wBdBaB | wBdBaB_noisy.
RUN = re.compile(r"^(seqmnist|ptb)_(float|w(\d+)d\d+a\d+(?:_noisy)?)_seed(\d+)\.json$")


def _bits_key(name: str) -> tuple:
  """float first, then by decreasing bits."""
  if name == "float":
    return (0, 0, name)
  return (1, -int(re.match(r"w(\d+)", name).group(1)), name)


def _label(name: str) -> str:
  if name == "float":
    return "float"
  w, d, a = re.match(r"w(\d+)d(\d+)a(\d+)", name).groups()
  return f"{w} / {d} / {a}"


def runs(t, task: str) -> dict[str, dict[int, dict]]:
  """{name: {seed: result}} of one task's training runs."""
  out: dict[str, dict[int, dict]] = {}
  for path in t._results(PAPER, f"{task}_*_seed*.json"):
    m = RUN.match(os.path.basename(path))
    if m and m.group(1) == task:
      out.setdefault(m.group(2), {})[int(m.group(4))] = t._read(path)
  return out


def _adc_range(q: dict) -> str:
  return {"dynamic": "each product's own max (dynamic)", "tracked": "EMA of the max (tracked)",
          "fixed": f"fixed ±{q['adc_bound']:g}",
          "learned": f"learned step (LSQ) from ±{q['adc_bound']:g}"}[q["adc_mode"]]


def _training_bits(q: dict) -> str:
  """'4 throughout', or the bits schedule: '8 → 6 → 4 (from steps 0, 312, 624)'."""
  stages = [p.split(":") for p in q.get("bits_schedule", "").split(",") if p]
  if not stages:
    return f"{q['adc_bits']} throughout"
  return (" → ".join([b for b, _ in stages] + [str(q["adc_bits"])]) + " (from steps 0, "
          + ", ".join(u for _, u in stages) + ")")


def _recipe_table(t, task: str, header: list[str], cells) -> str:
  """One row per results/<task>_recipe_*.json: cells(quant config, final metrics), steps, file."""
  header = header + ["steps", "result file"]
  rows = []
  for path in t._results(PAPER, f"{task}_recipe_*.json"):
    r = t._read(path)
    rows.append(cells(r["config"]["quant"], r["final_metrics"])
                + [f"{r['final_metrics']['steps']:,}", f"`results/{os.path.basename(path)}`"])
  return t._markdown(header, rows or [["pending"] + ["—"] * (len(header) - 1)])


def register(t) -> None:
  """Registers this paper's tables, and its row of the top-level summary, in `t` (the kit of
  experiments/tables.py)."""

  @t.summary_row
  def summary() -> list[str]:
    return ["NVM-crossbar LSTM, 4-bit weights / DAC / ADC with QAT; crossbar efficiency model",
            _summary(t), f"`experiments/{PAPER}/results/*.json`"]

  @t.table("nvm_seqmnist_recipes")
  def nvm_seqmnist_recipes() -> str:
    """4/4/4 on sequential MNIST, seed 0, 2 epochs: which converter ranges work."""
    def cells(q, m):
      weights = ("per output column" if q["weight_per_channel"] else "per tensor") + (
          ", learned (LSQ)" if q["weight_mode"] == "learned" else ", own max\\|W\\|")
      return [weights, _adc_range(q), _training_bits(q), f"{100 * m['test_accuracy']:.2f}"]
    return _recipe_table(t, "seqmnist", ["weights", "ADC range", "bits in training",
                                         "test accuracy (%)"], cells)

  @t.table("nvm_ptb_recipes")
  def nvm_ptb_recipes() -> str:
    """PTB runs outside the bits sweep (seed 0, one epoch): the ADC range mode, and 16 bits."""
    base = runs(t, "ptb").get("float", {}).get(0)

    def cells(q, m):
      gap = (f"{100 * (m['test_perplexity'] / base['final_metrics']['test_perplexity'] - 1):+.1f}"
             if base else "—")
      return [f"{q['weight_bits']} / {q['dac_bits']} / {q['adc_bits']}", _adc_range(q),
              f"{m['test_perplexity']:.2f}", gap]
    return _recipe_table(t, "ptb", ["weights / DAC / ADC bits", "ADC range", "test perplexity",
                                    "vs float seed 0 (%)"], cells)

  @t.table("nvm_seqmnist_bits")
  def nvm_seqmnist_bits() -> str:
    """Sequential-MNIST test accuracy per bit width and seed, mean, and the gap to float."""
    return _bits_table(t, "seqmnist")

  @t.table("nvm_ptb_bits")
  def nvm_ptb_bits() -> str:
    """PTB test perplexity per bit width, and the gap to float in percent."""
    return _bits_table(t, "ptb")

  @t.table("nvm_tolerance")
  def nvm_tolerance() -> str:
    """Per run and noise: the metric's mean ± 95% CI over draws at each level."""
    header = ["run", "noise", "levels", "mean ± 95% CI over draws, per level", "draws",
              "result file"]
    rows = []
    for path in t._results(PAPER, "*_tolerance.json"):
      r = t._read(path)
      scale = 100 if r["metric"] == "accuracy" else 1
      task = "sequential MNIST" if "mnist" in r["task"] else "PTB"
      label = f"{task}, {r['label']}"
      units = {"adc": "ADC noise (LSB)", "weight": "weight noise σ_w (× max\\|W\\|)"}
      for kind in ("adc", "weight"):
        if not r[kind]:
          continue
        levels = ", ".join(f"{row['level']:g}" for row in r[kind])
        values = ", ".join(f"{scale * row['mean']:.2f} ± {scale * row['ci95']:.2f}"
                           for row in r[kind])
        rows.append([label, units[kind], levels, values, str(r["draws"]),
                     f"`results/{os.path.basename(path)}`"])
    return t._markdown(header, rows or [["pending"] + ["—"] * (len(header) - 1)])


def _mean(by_seed: dict[int, dict], key: str) -> float:
  return float(np.mean([r["final_metrics"][key] for r in by_seed.values()]))


def _summary(t) -> str:
  """4/4/4 vs float on both tasks, and the efficiency model's ratios in the paper's setting."""
  parts = []
  seq, ptb = runs(t, "seqmnist"), runs(t, "ptb")
  if "float" in seq and "w4d4a4" in seq:
    f, q = _mean(seq["float"], "test_accuracy"), _mean(seq["w4d4a4"], "test_accuracy")
    parts.append(f"sequential MNIST (2 epochs, {len(seq['w4d4a4'])} seeds): {100 * q:.2f}% vs "
                 f"float {100 * f:.2f}% ({100 * (q - f):+.2f} points)")
  if "float" in ptb and "w4d4a4" in ptb:
    f, q = _mean(ptb["float"], "test_perplexity"), _mean(ptb["w4d4a4"], "test_perplexity")
    parts.append(f"PTB (1 epoch): perplexity {q:.1f} vs float {f:.1f} ({100 * (q / f - 1):+.1f}%)")
  eff = t._results(PAPER, "efficiency.json")
  if eff:
    paper = t._read(eff[0])["paper_setting"]
    parts.append(f"crossbar model: {paper['tops_per_w']:.4g} TOPS/W, {paper['tops_per_mm2']:.4g} "
                 f"TOPS/mm², ≥ {paper['min_computing']:.4g}× / {paper['min_area']:.4g}× "
                 "the GPU, FPGA and ASIC references (paper: 2.4× / 40×)")
  return "; ".join(parts) or "pending"


def _bits_table(t, task: str) -> str:
  lm = task == "ptb"
  key = "test_perplexity" if lm else "test_accuracy"
  scale = 1 if lm else 100
  # noise-aware runs are scored with their ADC noise on: they belong to the tolerance table
  found = {name: by_seed for name, by_seed in runs(t, task).items() if not name.endswith("_noisy")}
  seeds = sorted({s for by_seed in found.values() for s in by_seed})
  header = (["weights / DAC / ADC bits"] + [f"seed {s}" for s in seeds]
            + (["mean", "vs float (%)"] if lm else ["mean", "vs float (points)"])
            + ["steps", "train s (mean)", "result files"])
  if "float" not in found:
    return t._markdown(header, [["pending"] + ["—"] * (len(header) - 1)])
  base = np.mean([r["final_metrics"][key] for r in found["float"].values()])
  rows = []
  for name in sorted(found, key=_bits_key):
    by_seed = found[name]
    values = [by_seed[s]["final_metrics"][key] for s in seeds if s in by_seed]
    mean = float(np.mean(values))
    gap = ("—" if name == "float" else f"{100 * (mean / base - 1):+.1f}" if lm
           else f"{100 * (mean - base):+.2f}")
    first = next(iter(by_seed.values()))["final_metrics"]
    seconds = np.mean([r["final_metrics"]["train_seconds"] for r in by_seed.values()])
    rows.append([_label(name)]
                + [f"{scale * by_seed[s]['final_metrics'][key]:.2f}" if s in by_seed else "—"
                   for s in seeds]
                + [f"{scale * mean:.2f}", gap, f"{first['steps']:,}", f"{seconds:.0f}",
                   ", ".join(f"`results/{task}_{name}_seed{s}.json`" for s in sorted(by_seed))])
  return t._markdown(header, rows)
