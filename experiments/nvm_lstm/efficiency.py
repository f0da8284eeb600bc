"""Crossbar efficiency of the NVM LSTM (paper 4) against GPU, FPGA and ASIC LSTM designs.

    python experiments/nvm_lstm/efficiency.py --record   # about 5 s on one CPU core

The paper (Ma et al., ICRC 2019) claims >= 2.4x the computing efficiency (ops/s/W) and 40x the area
efficiency (ops/s/mm^2) of GPU, FPGA and ASIC LSTM designs, with 4-bit weights and 4-bit DAC/ADC.
This evaluates `freqnoise.analog.hardware` on the paper's setting (`CrossbarSpec()`: the PTB
"medium" 2 x 650 LSTM, 128 x 128 arrays), sweeps the ADC bits (2-8) and the array size (64-512),
runs a grid over the assumptions that decide the answer (ADC model, ADC sharing, bit-serial or
multi-bit DAC, cell energy/area, digital stage hidden or not), calibrates the model on ISAAC's own
setting, and prints markdown tables and conclusions. Writes efficiency.json (every number the
README quotes, floats to 4 significant digits) and two plots, efficiency_adc_bits.png and
efficiency_array_size.png, into runs/nvm_lstm/ (or `--out DIR`); `--record` writes them into
results/ (the README's files) instead. An existing efficiency.json is kept, with a printed line,
unless `--force` (experiments/recording.py). The model has no settings to override.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from freqnoise.analog import hardware_refs as refs  # noqa: E402
from freqnoise.analog.hardware import DAC_MODES, CrossbarSpec, compare, evaluate  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
from experiments import recording  # noqa: E402

COMMAND = "python experiments/nvm_lstm/efficiency.py --record"
CLAIM = {"computing_ratio": 2.4, "area_ratio": 40.0, "other_nvm_ratio": 4.7}
PAPER = CrossbarSpec()
CELLS = {"neurosim": (refs.NEUROSIM_CELL_FJ, refs.NEUROSIM_CELL_F2),   # 25 fJ, 48 F^2 (1T1R)
         "isaac": (refs.ISAAC_CELL_FJ, refs.ISAAC_CELL_F2)}            # 2.34 fJ, 1.49 F^2
ADC_SHARING = (1, 16, 128)  # ADCs per 128-column array: ISAAC's one, 16, one per column
# ISAAC's own setting: 16-bit weights in 2-bit cells, 16-bit inputs bit-serially, 8-bit ADC.
ISAAC_SETTING = dict(weight_bits=16, cell_bits=2, input_bits=16, dac="bit_serial", adc_bits=8,
                     cell_read_fj=refs.ISAAC_CELL_FJ, cell_area_f2=refs.ISAAC_CELL_F2)


def sig(x, n: int = 4):
  """`x` (and floats inside dicts/lists/tuples) rounded to `n` significant digits."""
  if isinstance(x, float):
    return float(f"{x:.{n}g}")
  if isinstance(x, dict):
    return {k: sig(v, n) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [sig(v, n) for v in x]
  return x


def summary(spec: CrossbarSpec) -> dict:
  """Efficiencies of `spec` and its smallest ratios to the references, overall and per kind."""
  report = evaluate(spec)
  ratios = compare(report)
  row = {"tops_per_w": report.tops_per_w, "tops_per_mm2": report.tops_per_mm2,
         "arrays": report.arrays, "cycle_ns": report.cycle_ns, "interval_ns": report.interval_ns,
         "utilisation": report.utilisation}
  for metric in ("computing", "area"):
    have = {name: r for name, r in ratios.items() if r[metric] is not None}
    row[f"min_{metric}"] = min(r[metric] for r in have.values())
    row[f"min_{metric}_vs"] = min(have, key=lambda name: have[name][metric])
    for kind in sorted({r["kind"] for r in have.values()}):
      row[f"min_{metric}_{kind}"] = min(r[metric] for r in have.values() if r["kind"] == kind)
  row["meets_computing"] = row["min_computing"] >= CLAIM["computing_ratio"]
  row["meets_area"] = row["min_area"] >= CLAIM["area_ratio"]
  return row


def grid() -> list[dict]:
  rows = []
  for model, adcs, dac, cell, overlap in itertools.product(
      refs.ADC_MODELS, ADC_SHARING, DAC_MODES, CELLS, (True, False)):
    fj, f2 = CELLS[cell]
    spec = dataclasses.replace(PAPER, adc_model=model, adcs_per_array=adcs, dac=dac,
                               cell_read_fj=fj, cell_area_f2=f2, overlap_digital=overlap)
    rows.append({"adc_model": model, "adcs_per_array": adcs, "dac": dac, "cell": cell,
                 "overlap_digital": overlap, **summary(spec)})
  return rows


def conclusions(rows: list[dict], calibration: float) -> dict:
  """Which assumptions reach the claim: counts per assumption value, the weakest settings."""
  out = {"settings": len(rows),
         "meet_computing": sum(r["meets_computing"] for r in rows),
         "meet_area": sum(r["meets_area"] for r in rows),
         "meet_both": sum(r["meets_computing"] and r["meets_area"] for r in rows),
         "meet_area_calibrated": sum(r["min_area"] / calibration >= CLAIM["area_ratio"]
                                     for r in rows)}
  keys = ("adc_model", "adcs_per_array", "dac", "cell", "overlap_digital")
  out["area_calibrated_settings"] = [
      {**{k: r[k] for k in keys}, "min_area": r["min_area"],
       "min_area_calibrated": r["min_area"] / calibration}
      for r in rows if r["min_area"] / calibration >= CLAIM["area_ratio"]]
  out["min_computing_vs"] = sorted({r["min_computing_vs"] for r in rows})
  out["min_area_vs"] = sorted({r["min_area_vs"] for r in rows})
  weakest = min(rows, key=lambda r: r["min_computing"])
  out["weakest_computing"] = {k: weakest[k] for k in ("adc_model", "adcs_per_array", "dac", "cell",
                                                      "overlap_digital", "min_computing",
                                                      "min_computing_vs")}
  out["area_by_assumption"] = {}
  for key in keys:
    for value in dict.fromkeys(r[key] for r in rows):
      subset = [r for r in rows if r[key] == value]
      out["area_by_assumption"][f"{key}={value}"] = (
          f"{sum(r['meets_area'] for r in subset)}/{len(subset)}")
  return out


def statement(c: dict) -> str:
  """The answer in words, from `conclusions`."""
  w = c["weakest_computing"]
  ok = c["area_calibrated_settings"]
  calibrated = "; ".join(f"{r['adc_model']} ADC, {r['cell']} cells: {r['min_area_calibrated']}x"
                         for r in ok)
  shared = ", ".join(f"{k}={ok[0][k]}" for k in ("adcs_per_array", "dac", "overlap_digital")
                     if ok and all(r[k] == ok[0][k] for r in ok))
  return "\n".join([
      f"computing efficiency >= 2.4x every reference: {c['meet_computing']}/{c['settings']} "
      f"settings; weakest {w['min_computing']}x vs {w['min_computing_vs']} ({w['adc_model']} ADC, "
      f"{w['adcs_per_array']} ADC/array, {w['dac']} DAC, {w['cell']} cells)",
      f"area efficiency >= 40x every reference with an area figure: {c['meet_area']}/"
      f"{c['settings']} settings; by assumption: "
      + ", ".join(f"{k} {v}" for k, v in c["area_by_assumption"].items()),
      f"after dividing by the model's area optimism at ISAAC's setting: "
      f"{c['meet_area_calibrated']}/{c['settings']} ({calibrated}; all with {shared or '-'})"])


def plot(rows: list[dict], x: str, series: str, xlabel: str, title: str, path: str,
         thresholds: dict) -> None:
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for ax, metric, unit in zip(axes, ("tops_per_w", "tops_per_mm2"), ("TOPS/W", "TOPS/mm²")):
    for name in dict.fromkeys(r[series] for r in rows):
      pts = [r for r in rows if r[series] == name]
      ax.plot([r[x] for r in pts], [r[metric] for r in pts], "o-", label=f"{series}={name}")
    ax.axhline(thresholds[metric], ls="--", c="k", lw=1,
               label=thresholds[f"{metric}_label"])
    ax.set(xlabel=xlabel, ylabel=unit, yscale="log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  xs = sorted({r[x] for r in rows})
  for ax in axes:
    if x == "rows":
      ax.set_xscale("log", base=2)
    ax.set_xticks(xs, [str(v) for v in xs])
  fig.suptitle(title)
  fig.tight_layout()
  with recording.atomic_path(path) as tmp:
    fig.savefig(tmp, format="png", dpi=120)
  plt.close(fig)


def markdown(header: list[str], rows: list[list]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
  text = lambda c: f"{c:g}" if isinstance(c, float) else str(c)  # noqa: E731
  return "\n".join(lines + ["| " + " | ".join(text(c) for c in r) + " |" for r in rows])


def readme_tables(result: dict) -> list[str]:
  """The README's tables, from the rounded results."""
  p = result["paper_setting"]
  report = p["report"]
  dash = lambda v: "–" if v is None else v  # noqa: E731
  tables = [markdown(
      ["component", "energy per step (pJ)", "%", "area (mm²)", "%"],
      [[k, report["energy_pj"][k], p["energy_percent"][k], report["area_mm2"][k],
        p["area_percent"][k]] for k in report["energy_pj"]]
      + [["total", report["energy_total_pj"], "", report["area_total_mm2"], ""]])]
  tables.append(markdown(
      ["reference", "kind", "computing ratio (ops/s/W)", "area ratio (ops/s/mm²)"],
      [[name, r["kind"], dash(r["computing"]), dash(r["area"])]
       for name, r in p["ratios"].items()]))
  sweep = result["adc_bits_sweep"]
  models = list(dict.fromkeys(r["adc_model"] for r in sweep))
  cell = lambda b, key: " / ".join(  # noqa: E731
      str(r[key]) for m in models for r in sweep if r["adc_model"] == m and r["adc_bits"] == b)
  tables.append(markdown(
      ["ADC bits", *(f"{t}: {' / '.join(models)}" for t in
                     ("TOPS/W", "TOPS/mm²", "min computing ratio", "min area ratio"))],
      [[b, cell(b, "tops_per_w"), cell(b, "tops_per_mm2"), cell(b, "min_computing"),
        cell(b, "min_area")] for b in sorted({r["adc_bits"] for r in sweep})]))
  tables.append(markdown(
      ["DAC", "array", "arrays", "read (ns)", "TOPS/W", "TOPS/mm²", "computing ratio vs PUMA",
       "min computing ratio", "min area ratio"],
      [[r["dac"], f"{r['rows']}x{r['cols']}", r["arrays"], r["cycle_ns"], r["tops_per_w"],
        r["tops_per_mm2"], r["min_computing_ASIC/NVM"], r["min_computing"], r["min_area"]]
       for r in result["array_sweep"]]))
  tables.append(markdown(
      ["ADCs/array", "DAC", "cell", "digital hidden", "TOPS/W", "TOPS/mm²", "min computing ratio",
       "min area ratio", "meets 2.4x / 40x"],
      [[r["adcs_per_array"], r["dac"], r["cell"], r["overlap_digital"], r["tops_per_w"],
        r["tops_per_mm2"], r["min_computing"], r["min_area"],
        f"{'yes' if r['meets_computing'] else 'no'} / {'yes' if r['meets_area'] else 'no'}"]
       for r in result["assumption_grid"] if r["adc_model"] == "isaac"]))
  return tables


def main(argv: list[str] | None = None) -> dict:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  recording.add_arguments(parser, os.path.join(recording.RUN_ROOT, "nvm_lstm"))
  args = parser.parse_args(argv)
  out = recording.destination(args, "nvm_lstm", os.path.join(recording.RUN_ROOT, "nvm_lstm"), [])
  path = os.path.join(out, "efficiency.json")
  if recording.skip_existing(path, args.force):
    with open(path) as f:
      return json.load(f)

  paper = evaluate(PAPER)
  adc_sweep = [{"adc_model": m, "adc_bits": b,
                **summary(dataclasses.replace(PAPER, adc_model=m, adc_bits=b))}
               for m in refs.ADC_MODELS for b in range(2, 9)]
  array_sweep = [{"dac": d, "rows": n, "cols": n,
                  **summary(dataclasses.replace(PAPER, rows=n, cols=n, dac=d))}
                 for d in DAC_MODES for n in (64, 128, 256, 512)]
  rows = grid()
  isaac = evaluate(dataclasses.replace(PAPER, **ISAAC_SETTING))
  isaac_ref = next(r for r in refs.REFERENCES if r.name == "ISAAC")
  calibration = {"setting": ISAAC_SETTING, "tops_per_w": isaac.tops_per_w,
                 "tops_per_mm2": isaac.tops_per_mm2,
                 "isaac_published_tops_per_mm2": isaac_ref.gops_per_mm2 / 1e3,
                 "area_optimism": isaac.tops_per_mm2 * 1e3 / isaac_ref.gops_per_mm2,
                 "puma_published_tops_per_w": 0.837}
  best_w = max(r.gops_per_w for r in refs.REFERENCES if r.gops_per_w) / 1e3
  best_mm2 = max(r.gops_per_mm2 for r in refs.REFERENCES if r.gops_per_mm2) / 1e3
  thresholds = {"tops_per_w": CLAIM["computing_ratio"] * best_w,
                "tops_per_w_label": f"2.4 x best reference ({best_w:.3g} TOPS/W)",
                "tops_per_mm2": CLAIM["area_ratio"] * best_mm2,
                "tops_per_mm2_label": f"40 x best reference ({best_mm2:.3g} TOPS/mm²)"}
  assumptions = {  # the cited constants behind the numbers (hardware_refs)
      "adc_4bit_pj": {m: refs.adc_energy_pj(4, m) for m in refs.ADC_MODELS},
      "adc_4bit_um2": {m: refs.adc_area_um2(4, m) for m in refs.ADC_MODELS},
      "dac_pj": {"1bit": refs.dac_energy_pj(1), "4bit": refs.dac_energy_pj(4)},
      "cell_fj": {k: v[0] for k, v in CELLS.items()},
      "cell_f2": {k: v[1] for k, v in CELLS.items()},
      "read_ns": PAPER.read_ns, "adc_gsps": PAPER.adc_gsps, "digital_lanes": PAPER.digital_lanes,
      "adcs_per_array": list(ADC_SHARING)}
  shares = {f"{kind}_percent": {k: 100 * v / total for k, v in parts.items()}
            for kind, parts, total in (("energy", paper.energy_pj, paper.energy_total_pj),
                                       ("area", paper.area_mm2, paper.area_total_mm2))}
  result = sig({
      "command": COMMAND, "claim": CLAIM, "assumptions": assumptions,
      "references": [dataclasses.asdict(r) for r in refs.REFERENCES],
      "thresholds": thresholds,
      "paper_setting": {"report": paper.to_dict(), "ratios": compare(paper), **shares,
                        **summary(PAPER)},
      "adc_bits_sweep": adc_sweep, "array_sweep": array_sweep, "assumption_grid": rows,
      "calibration": calibration,
      "conclusions": conclusions(rows, calibration["area_optimism"]),
  })
  plot(result["adc_bits_sweep"], "adc_bits", "adc_model", "ADC bits",
       "LSTM 2 x 650, 128 x 128 arrays, 4-bit weights and multi-bit DAC: vs ADC bits",
       os.path.join(out, "efficiency_adc_bits.png"), thresholds)
  plot(result["array_sweep"], "rows", "dac", "array rows = columns",
       "LSTM 2 x 650, 4-bit weights, 4-bit inputs, 4-bit ADC (ISAAC table): vs array size",
       os.path.join(out, "efficiency_array_size.png"), thresholds)
  recording.write_text(path, json.dumps(result, indent=1))  # last: it marks the result as written

  print(paper.table(), "\n")
  print("\n\n".join(readme_tables(result)), "\n")
  print("calibration:", json.dumps(result["calibration"]))
  print(statement(result["conclusions"]))
  print(f"wrote {path} and 2 plots")
  return result


if __name__ == "__main__":
  main()
