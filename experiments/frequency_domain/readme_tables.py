"""The Imagenette tables of experiments/frequency_domain/README.md (results/imagenette_*.json, one
file per variant and seed: `imagenette_<variant>.json` is seed 0, `..._seed<N>.json` seed N;
MobileNetV2's variants end in `_mbv2`).

Loaded by experiments/tables.py, which calls `register(kit)` with its registry and helpers.
"""

from __future__ import annotations

import os
import re

import numpy as np

from freqnoise import stats

PAPER = "frequency_domain"
ORDER = ("spatial112", "dct24", "dct32", "dct48", "dct64", "dct192", "gate", "learned24",
         "spatial224", "dct24_fliponly", "dct24_jpeg")
LABELS = {"spatial112": "spatial112 (224² resized to 112², stem)",
          "dct24": "dct24 (0.5× spatial112's input)", "dct32": "dct32", "dct48": "dct48",
          "dct64": "dct64", "dct192": "dct192 (all channels)",
          "gate": "gate (λ = 0.2, all 192 gated)", "learned24": "learned24 (gate's top-24, static)",
          "spatial224": "spatial224 (full image, 4× the FLOPs)",
          "dct24_fliponly": "dct24, flip only (no random resized crop)",
          "dct24_jpeg": "dct24 from the JPEG coefficients (flip only, 4:2:0, Grain)"}
# Paired differences A − B (top-1 points) over the seeds both have: (A, B, what it measures).
PAIRS = (("dct24", "spatial112", "DCT-24 vs pixels at the same layer-1 grid (paper: +1.01)"),
         ("dct64", "dct24", "DCT-64 vs DCT-24 (paper: +0.37)"),
         ("learned24", "dct24", "the gate's top-24 vs the published 24-channel preset"),
         ("dct24_jpeg", "dct24", "JPEG-coefficient input (flip only) vs decoded pixels (crop + flip)"),
         ("dct24_fliponly", "dct24", "what dropping random resized crops costs (pixel path)"),
         ("dct24_jpeg", "dct24_fliponly", "JPEG coefficients vs decoded pixels, both flip only"),
         ("dct24_mbv2", "spatial112_mbv2", "MobileNetV2: DCT-24 vs pixels (paper: +0.66)"))
# The paper's ResNet-50 top-1 on ImageNet (its Table; DCT-32 and DCT-48 not reported for ResNet-50).
PAPER_ANALOGUE = {"spatial112": "RGB 224²: 75.78", "dct24": "DCT-24: 76.79",
                  "dct64": "DCT-64: 77.16", "learned24": "its learned subsets (heat map)"}
MBV2 = "_mbv2"  # MobileNetV2's runs: results/imagenette_<variant>_mbv2[_seed<N>].json
MBV2_LABELS = {"spatial112": "spatial112 (224² resized to 112², stem: 56² at block 1)",
               "dct24": "dct24 (DCT of the image upscaled to 448²: 56² at block 1)"}
# The paper's MobileNetV2 top-1 on ImageNet.
MBV2_ANALOGUE = {"spatial112": "RGB 224²: 71.70", "dct24": "DCT-24: 72.36"}
FILE = re.compile(r"^imagenette_(.+?)(?:_seed(\d+))?\.json$")


def runs(t) -> dict[str, dict[int, dict]]:
  """{variant: {seed: result}}."""
  out: dict[str, dict[int, dict]] = {}
  for path in t._results(PAPER, "imagenette_*.json"):
    m = FILE.match(os.path.basename(path))
    if m:
      out.setdefault(m.group(1), {})[int(m.group(2) or 0)] = t._read(path)
  return out


def _mean_text(top: list[float]) -> str:
  """'mean ± std [95% t interval]' of per-seed top-1, or the one value."""
  if len(top) < 2:
    return f"{top[0]:.2f}"
  low, high = stats.mean_interval(top)
  return f"{np.mean(top):.2f} ± {np.std(top, ddof=1):.2f} [{low:.2f}, {high:.2f}]"


def _rows(t, found: dict, labels: dict, analogue: dict) -> list[list[str]]:
  """One row per variant: top-1 per seed, mean ± std [95% interval], input, FLOPs, params, run
  length and training images/s."""
  rows = []
  for v in [v for v in ORDER if v in found] + sorted(set(found) - set(ORDER)):
    seeds = found[v]
    top = [100 * seeds[s]["test_top1"] for s in sorted(seeds)]
    r = seeds[min(seeds)]
    shape = "x".join(str(s) for s in r["input_shape"])
    rows.append([labels.get(v, v), " / ".join(f"{x:.2f}" for x in top), str(len(top)),
                 _mean_text(top), analogue.get(v, "—"),
                 f"{shape} = {r['input_elements']:,}", f"{r['input_bytes_float32']:,}",
                 f"{r['forward_flops'] / 1e6:.1f}", f"{r['params']:,}",
                 f"{r['steps']} ({r['epochs']})",
                 f"{np.mean([s['train_seconds'] for s in seeds.values()]) / 60:.1f}",
                 f"{np.mean([s['train_steps_per_sec'] * s['batch_size'] for s in seeds.values()]):.0f}"])
  return rows


def _table(t, found: dict, labels: dict, analogue: dict, paper_model: str) -> str:
  header = ["variant", "top-1 (%) per seed", "n", "mean ± std [95% interval]",
            f"paper's analogue ({paper_model})", "input per image (elements)",
            "input bytes (float32)", "forward MFLOPs", "params", "steps (epochs)",
            "train wall (min, mean)", "train images/s (mean)"]
  rows = _rows(t, found, labels, analogue)
  return t._markdown(header, rows or [["pending"] + ["—"] * (len(header) - 1)])


def _paired(t) -> str:
  """Each comparison of PAIRS: the mean paired difference with its t and bootstrap intervals."""
  found = runs(t)
  rows = []
  for a, b, what in PAIRS:
    va = {s: 100 * r["test_top1"] for s, r in found.get(a, {}).items()}
    vb = {s: 100 * r["test_top1"] for s, r in found.get(b, {}).items()}
    common = sorted(set(va) & set(vb))
    if len(common) < 2:
      rows.append([f"{a} − {b}", what, str(len(common)), "pending (< 2 paired seeds)", "—", "—"])
      continue
    r = stats.paired_difference(va, vb)
    rows.append([f"{a} − {b}", what, str(r.n), f"{r.mean:+.2f} (std {r.std:.2f})",
                 "[{:+.2f}, {:+.2f}]".format(*r.t_ci95),
                 "[{:+.2f}, {:+.2f}]".format(*r.bootstrap_ci95)])
  return t._markdown(["A − B", "what it measures", "paired seeds", "mean difference (points)",
                      "95% interval (paired t)", "95% interval (paired bootstrap)"], rows)


def register(t) -> None:
  def resnet() -> dict:
    return {v: r for v, r in runs(t).items() if not v.endswith(MBV2)}

  def mobilenet() -> dict:
    return {v.removesuffix(MBV2): r for v, r in runs(t).items() if v.endswith(MBV2)}

  def mean(found: dict, v: str) -> str:
    seeds = found.get(v)
    if not seeds:
      return "pending"
    top = [100 * r["test_top1"] for r in seeds.values()]
    return f"{np.mean(top):.2f}% ({len(top)} seed{'s' if len(top) > 1 else ''})"

  @t.summary_row
  def summary() -> list[str]:
    found = resnet()
    return ["Imagenette (224 px), ResNet-18 at width 16, 8 epochs: the paper's protocol halved",
            f"spatial 112² {mean(found, 'spatial112')}, DCT-24 {mean(found, 'dct24')}, "
            f"DCT-64 {mean(found, 'dct64')}",
            f"`experiments/{PAPER}/results/imagenette_*.json`"]

  @t.summary_row
  def summary_mobilenet() -> list[str]:
    found = mobilenet()
    return ["Imagenette (224 px), MobileNetV2 (width 1.0), 8 epochs: the paper's protocol halved",
            f"spatial 112² {mean(found, 'spatial112')}, DCT-24 {mean(found, 'dct24')}",
            f"`experiments/{PAPER}/results/imagenette_*_mbv2*.json`"]

  @t.table("freq_imagenette")
  def freq_imagenette() -> str:
    """ResNet-18 (width 16): top-1 per seed, mean ± std [95% interval], input, FLOPs, run length."""
    return _table(t, resnet(), LABELS, PAPER_ANALOGUE, "ResNet-50")

  @t.table("freq_imagenette_paired")
  def freq_imagenette_paired() -> str:
    """Paired differences over seeds (seed s of both variants: same init seed and data order)."""
    return _paired(t)

  @t.table("freq_imagenette_mbv2")
  def freq_imagenette_mbv2() -> str:
    """MobileNetV2 (width 1.0): the same columns, beside the paper's MobileNetV2."""
    return _table(t, mobilenet(), MBV2_LABELS, MBV2_ANALOGUE, "MobileNetV2")
