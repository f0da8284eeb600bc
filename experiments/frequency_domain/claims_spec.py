"""Paper 1's classification claims (Xu et al., CVPR 2020) and ours, from results/*.json.

Read by experiments/claims_build.py, which writes results/claims.json. Differences are A − B in
top-1 points over paired seeds (seed s of both variants shares init seed and data order).
"""

from claims_build import difference_over_seeds, per_seed, results_path, single_run_difference

PAPER = "frequency_domain"
CITE = "Xu et al., Learning in the Frequency Domain, CVPR 2020"
RUN = "python experiments/frequency_domain/run.py --config imagenette"
IMAGENETTE = ("Imagenette (10 ImageNet classes, 6,000 train / 3,925 val images), the protocol "
              "halved (224² images, DCT grid 28² at layer1 for ResNet); 8 epochs (744 steps of 64) "
              "on CPU, not ~90 epochs of ImageNet; ")
RESNET = "ResNet-18 at width 16 (0.70 M parameters), not ResNet-50. "


def _top1(stem: str):
  return per_seed(PAPER, stem, "test_top1")


def claims() -> list[dict]:
  common = {"paper": CITE, "unit": "points"}
  out = [
      difference_over_seeds(
          {**common, "id": "s1_imagenette_r18_dct24_minus_spatial112",
           "statement": "DCT-24 at half the input beats RGB at the same layer-1 grid: ResNet-50 "
                        "on ImageNet, 76.79 vs 75.78 top-1 (+1.01).",
           "paper_value": 1.01,
           "command": f"{RUN} --variants spatial112,dct24 --seeds 0-7",
           "differs": IMAGENETTE + RESNET},
          _top1("imagenette_dct24"), _top1("imagenette_spatial112")),
      difference_over_seeds(
          {**common, "id": "s1_imagenette_mbv2_dct24_minus_spatial112",
           "statement": "DCT-24 beats RGB with MobileNetV2 on ImageNet: 72.36 vs 71.70 (+0.66).",
           "paper_value": 0.66,
           "command": f"{RUN} --config_arg model=mobilenet_v2 --tag _mbv2 "
                      "--variants spatial112,dct24 --seeds 0-3",
           "differs": IMAGENETTE + "MobileNetV2 width 1.0 (2.24 M parameters); its DCT input is "
                      "the image upscaled to 448², as DCTNet's MobileNetV2 pipeline."},
          _top1("imagenette_dct24_mbv2"), _top1("imagenette_spatial112_mbv2")),
      difference_over_seeds(
          {**common, "id": "s1_imagenette_r18_dct64_minus_dct24",
           "statement": "DCT-64 is the best setting, above DCT-24: ResNet-50 on ImageNet, 77.16 "
                        "vs 76.79 (+0.37).",
           "paper_value": 0.37,
           "command": f"{RUN} --variants dct24,dct64 --seeds 0-7",
           "differs": IMAGENETTE + RESNET + "A width-16 first block squeezes 64 input channels "
                      "into 16, which penalises large channel counts."},
          _top1("imagenette_dct64"), _top1("imagenette_dct24")),
  ]
  tiny = {name: _top1(f"tiny_imagenet_{name}") for name in ("dct24", "spatial32")}
  out.append(single_run_difference(
      {**common, "id": "s1_tiny_imagenet_r18_dct24_minus_spatial32",
       "statement": "DCT-24 at half the input beats RGB at the same layer-1 grid (the ImageNet "
                    "claim, +1.01 with ResNet-50, asked of 64² images).",
       "paper_value": 1.01,
       "command": "python experiments/frequency_domain/run.py --config tiny_imagenet "
                  "--variants spatial32,dct24",
       "differs": "Tiny-ImageNet-200 (half its train set), 64² images: an 8×8 DCT grid; "
                  "3 epochs on CPU, one seed; " + RESNET},
      tiny["dct24"][0][0], tiny["spatial32"][0][0],
      [results_path(PAPER, "tiny_imagenet_dct24.json"),
       results_path(PAPER, "tiny_imagenet_spatial32.json")]))
  return out
