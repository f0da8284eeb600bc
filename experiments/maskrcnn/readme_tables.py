"""The Mask R-CNN tables of experiments/maskrcnn/README.md (results/<scale>_<variant>.json written by
experiments/maskrcnn/run.py) and its row of the top-level summary.

Loaded by experiments/tables.py, which calls `register(kit)` with its registry and helpers.
"""

from __future__ import annotations

import os

PAPER = "maskrcnn"
ORDER = ("spatial", "dct24", "dct64")
# DCTNet's COCO results (box AP / mask AP), ResNet-50-FPN, 1x schedule (../shared/REFERENCES.md).
PAPER_AP = {"spatial": "37.3 / 34.2", "dct24": "37.7 / 34.6", "dct64": "38.1 / 35.0"}


def _pct(v) -> str:
  return "n/a" if v is None else f"{100 * v:.1f}"


def register(t) -> None:
  def rows_of(scale: str) -> list[dict]:
    found = [t._read(p) for p in t._results(PAPER, f"{scale}_*.json")]
    rank = lambda r: (ORDER.index(r["variant"]) if r["variant"] in ORDER else 99, r["name"])
    return sorted(found, key=rank)

  def ap_table(scale: str, paper: bool) -> str:
    header = ["run", "box AP", "AP50", "AP75", "mask AP", "AP50", "AP75",
              *(["DCTNet on COCO val (box / mask)"] if paper else []),
              "input per image", "params", "steps (epochs) × batch", "train wall (min)"]
    rows = []
    for r in rows_of(scale):
      shape = "x".join(map(str, r["input_shape"]))
      rows.append([r["name"], _pct(r["box_AP"]), _pct(r["box_AP50"]), _pct(r["box_AP75"]),
                   _pct(r["mask_AP"]), _pct(r["mask_AP50"]), _pct(r["mask_AP75"]),
                   *([PAPER_AP.get(r["variant"], "—")] if paper else []),
                   f"{shape} = {r['input_elements']:,}",
                   f"{r['params']:,}", f"{r['steps']} ({r['epochs']}) × {r['batch_size']}",
                   f"{(r['train_seconds'] or float('nan')) / 60:.1f}"])
    return t._markdown(header, rows or [["pending"] + ["—"] * (len(header) - 1)])

  @t.table("maskrcnn_overfit")
  def maskrcnn_overfit() -> str:
    """The pipeline-learns test: 16 coco128 images, trained and scored on the same images."""
    return ap_table("overfit", paper=False)

  @t.table("maskrcnn_coco128")
  def maskrcnn_coco128() -> str:
    """Spatial vs DCT-24 vs DCT-64 on coco128: 96 training images, 32 held out."""
    return ap_table("coco128", paper=True)

  @t.summary_row
  def summary() -> list[str]:
    over = {r["variant"]: r for r in rows_of("overfit")}
    held = {r["variant"]: r for r in rows_of("coco128")}
    parts = []
    if "spatial" in over:
      r = over["spatial"]
      parts.append(f"overfit on 16 images: box AP {_pct(r['box_AP'])}, mask AP {_pct(r['mask_AP'])}")
    if held:
      parts.append("96 train / 32 held out: " + ", ".join(
          f"{v} {_pct(held[v]['box_AP'])} / {_pct(held[v]['mask_AP'])}" for v in ORDER if v in held)
          + " (box / mask AP)")
    stale = [r["name"] for r in (*over.values(), *held.values()) if "commit" not in r]
    if stale:
      parts.append(", ".join(stale) + " measured before issue 24's loss, statistics and paste "
                   "fixes: rerun pending")
    return ["coco128-seg, Mask R-CNN ResNet-FPN (CPU-sized), from scratch",
            "; ".join(parts) or "pending", f"`experiments/{PAPER}/results/*.json`"]
