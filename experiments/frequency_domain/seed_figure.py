"""Per-seed top-1 of each Imagenette variant: one dot per seed, the mean and its 95% t interval.

    python experiments/frequency_domain/seed_figure.py            # writes ./imagenette_seeds.png
    python experiments/frequency_domain/seed_figure.py --record   # into results/ (the README's)

Reads results/imagenette_<variant>[_seed<N>].json (test_top1); a variant with one seed shows its
dot only. Nothing in results/ changes without --record.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
from freqnoise import stats  # noqa: E402

# (panel, variant file stem suffix, label), in the order drawn.
PANELS = {
    "ResNet-18 (width 16)": [("spatial112", "spatial112"), ("dct24", "dct24"),
                             ("dct64", "dct64"), ("learned24", "learned24 (gate's top-24)"),
                             ("dct24_fliponly", "dct24, flip only"),
                             ("dct24_jpeg", "dct24 from JPEG\ncoefficients (flip only)")],
    "MobileNetV2": [("spatial112_mbv2", "spatial112"), ("dct24_mbv2", "dct24")],
}


def per_seed(results: str, stem: str) -> dict[int, float]:
  """{seed: top-1 %} of `imagenette_<stem>.json` (seed 0) and `imagenette_<stem>_seed<N>.json`."""
  out = {}
  pattern = re.compile(rf"imagenette_{re.escape(stem)}(?:_seed(\d+))?\.json")
  for path in glob.glob(os.path.join(results, f"imagenette_{stem}*.json")):
    match = pattern.fullmatch(os.path.basename(path))
    if match:
      with open(path) as f:
        out[int(match.group(1) or 0)] = 100 * float(json.load(f)["test_top1"])
  return dict(sorted(out.items()))


def figure(results: str, path: str) -> None:
  fig, axes = plt.subplots(1, len(PANELS), figsize=(11, 4.2), sharey=True,
                           gridspec_kw={"width_ratios": [len(v) for v in PANELS.values()]})
  for ax, (title, variants) in zip(axes, PANELS.items()):
    for i, (stem, label) in enumerate(variants):
      values = per_seed(results, stem)
      if not values:
        continue
      v = np.array(list(values.values()))
      jitter = np.linspace(-0.12, 0.12, len(v)) if len(v) > 1 else np.zeros(1)
      ax.scatter(i + jitter, v, s=14, color="0.45", zorder=2)
      if len(v) >= 2:
        low, high = stats.mean_interval(v)
        ax.errorbar(i + 0.28, v.mean(), yerr=[[v.mean() - low], [high - v.mean()]], fmt="o",
                    color="C3", capsize=4, zorder=3)
      ax.annotate(f"n={len(v)}", (i, v.min()), textcoords="offset points", xytext=(0, -14),
                  ha="center", fontsize=8)
    ax.set_xticks(range(len(variants)), [label for _, label in variants], fontsize=8)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
  axes[0].set_ylabel("Imagenette val top-1 (%)")
  fig.suptitle("Per-seed top-1 (grey), mean with 95% t interval (red); 8 epochs, CPU")
  fig.tight_layout()
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=120)
  plt.close(fig)
  os.replace(tmp, path)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--results", default=os.path.join(HERE, "results"))
  parser.add_argument("--out", default="imagenette_seeds.png")
  parser.add_argument("--record", action="store_true",
                      help="write results/imagenette_seeds.png (the README's figure)")
  args = parser.parse_args()
  out = os.path.join(HERE, "results", "imagenette_seeds.png") if args.record else args.out
  figure(args.results, out)
  print(f"wrote {out}")


if __name__ == "__main__":
  main()
