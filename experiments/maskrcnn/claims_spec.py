"""Paper 1's detection claim (DCTNet's Mask R-CNN on COCO) and ours, from results/coco128_*.json.

Read by experiments/claims_build.py, which writes results/claims.json. One run per variant so far:
no interval, so the rule can only say 'inconclusive'.
"""

from claims_build import read, results_path, single_run_difference

PAPER = "maskrcnn"
DIFFERS = ("coco128-seg: 96 train / 32 held-out images, not COCO's 118k / 5k; a CPU-sized "
           "ResNet-FPN trained from scratch for 192 steps, not an ImageNet-pretrained ResNet-50 "
           "for 20 epochs; one seed. Both variants score at noise level.")


def claims() -> list[dict]:
  files = [results_path(PAPER, f"coco128_{v}.json") for v in ("dct24", "spatial")]
  dct, spatial = (read(f) for f in files)
  out = []
  for kind, paper_value, statement in (
      ("box", 0.4, "DCT-24 input beats RGB for Mask R-CNN on COCO: box AP 37.7 vs 37.3."),
      ("mask", 0.4, "DCT-24 input beats RGB for Mask R-CNN on COCO: mask AP 34.6 vs 34.2.")):
    out.append(single_run_difference(
        {"id": f"s1_coco_maskrcnn_dct24_minus_rgb_{kind}_ap",
         "paper": "Xu et al., Learning in the Frequency Domain, CVPR 2020 (DCTNet Mask R-CNN)",
         "statement": statement, "paper_value": paper_value, "unit": "AP points",
         "command": "python experiments/maskrcnn/run.py --scale coco128 --variants spatial,dct24",
         "differs": DIFFERS},
        100 * dct[f"{kind}_AP"], 100 * spatial[f"{kind}_AP"], files))
  return out
