"""Learning in the frequency domain at ImageNet-like resolution: Imagenette with the paper's
protocol halved (experiments/frequency_domain/README.md, "Imagenette").

Imagenette's 224x224 images give a 28x28 DCT grid, the analogue of the paper's 448x448 -> 56x56xC.
Every variant reaches layer1 on a 28x28 grid except `spatial224` (56x56, the reference at 4x the
FLOPs):
  * `spatial112`: the image resized to 112x112, usual 7x7/2 + max-pool stem (paper: RGB 224);
  * `dct24`, `dct32`, `dct48`, `dct64`, `dct192`: the 8x8 block DCT of the 224x224 image, the
    published channel presets (or all 192), no stem (DCTNet's ResNet);
  * `gate`: all 192 channels behind the learned Gumbel gate; `experiments/frequency_domain/run.py
    --static_from_gate 24` then trains its top-24 channels as a static subset (`learned24`);
  * `spatial224`: the full image, usual stem.
Training is the same for all: random resized crop (area 25-100%) + flip on the decoded pixels
(before the DCT; at 112x112 for spatial112), the whole image at test; AdamW 2e-3, cosine, the same
epochs. `model=mobilenet_v2` swaps ResNet-18 for MobileNetV2 (width 1.0), whose spatial stem
halves the image (112² -> 56² at the first block) where ResNet's quarters it: its DCT variants
therefore read the image upscaled to 448² (bilinear, as DCTNet upscales for MobileNetV2), so the
first block sees 56x56 in both, and spatial224 sees 112x112.

Command (one variant):
  python -m freqnoise.main --config=configs/freq_imagenette.py:variant=dct24 --workdir=runs/freq/inette_dct24
The table, the heat map and the learned subset:
  python experiments/frequency_domain/run.py --config imagenette \
      --variants spatial112,dct24,dct64,dct32,dct48,dct192,gate,spatial224 --static_from_gate 24
Runtime and results (CPU, 2 cores shared with other jobs; 744 steps of 64, seeds 0 and 1; details
and per-run wall times in experiments/frequency_domain/README.md, "Imagenette", and
experiments/frequency_domain/results/imagenette_*.json): ResNet-18 (width 16) takes 6-15 min a
variant; top-1 spatial112 65.44% (mean of 2 seeds, spread 1.81), dct24 64.82% (1.17), dct64 61.15%
(0.82), spatial224 68.41% (1 seed): DCT-24 level with pixels at half the input, not ahead.
MobileNetV2 (width 1.0) takes 25 min (spatial112) and 35 min (dct24, 448² images) a run on quiet
cores; top-1 (seeds 0 / 1): spatial112 61.73 / 60.76%, dct24 64.51 / 61.66% (+1.83 points in the
mean, within dct24's seed spread of 2.85).
Arguments (`configs/freq_imagenette.py:KEY=VALUE,...`): `variant` (default dct24); `model` =
resnet18 | mobilenet_v2; `tiny` = 16x16 images, width 4, 4 steps (tests point data.source at a
small folder).
"""

import ml_collections

from configs.common import (adamw_cosine, base_config, check_choice, parse_arg, shared_data,
                            shrink_to_tiny_freq, variant_input)

VARIANTS = ("spatial112", "spatial224", "dct24", "dct32", "dct48", "dct64", "dct192", "gate")
MODELS = ("resnet18", "mobilenet_v2")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Keys: variant (one of VARIANTS, default dct24), model (resnet18), tiny; see the docstring."""
  args = parse_arg(arg, variant="dct24", model="resnet18", tiny=False)
  check_choice("variant", args.variant, VARIANTS)
  check_choice("model", args.model, MODELS)
  variant = args.variant
  c = base_config()
  c.data.source = "imagefolder:" + shared_data("imagenette")  # train.tar.gz / val.tar.gz
  c.data.test_split = "val"          # Imagenette's val split (3,925 images) is the test set
  c.data.image_size = 112 if variant == "spatial112" else 224  # decoded (and resized) side
  if args.model == "mobilenet_v2" and not variant.startswith("spatial"):
    c.data.image_size = 448          # upscaled: DCT grid 56x56 = MobileNetV2's stem on 112²
  c.data.batch_size = 64             # training images per step
  c.data.eval_batch_size = 125       # val images per evaluation batch
  c.data.augment.resized_crop_min_scale = 0.25  # random resized crop, area fraction 0.25-1
  c.data.augment.flip = True         # random horizontal flips

  c.model = ml_collections.ConfigDict()
  c.model.name = args.model          # resnet18 | mobilenet_v2, spatial or frequency stem
  c.model.stem = "spatial" if variant.startswith("spatial") else "frequency"  # see the models
  c.model.gate = variant == "gate"   # learned Gumbel channel gate on the input
  c.model.gate_sparsity = 0.2        # lambda of lambda * mean(active gates)
  c.model.gate_tau_start = 2.0       # Gumbel-softmax temperature at step 0 ...
  c.model.gate_tau_end = 0.5         # ... annealed exponentially to this ...
  c.model.gate_anneal_steps = 744    # ... over this many steps (8 epochs of 93 steps)
  if args.model == "resnet18":
    c.model.width = 16               # layer1 channels (64 published): the CPU budget, every variant
  else:
    c.model.dropout = 0.2            # before the classifier, as published

  c.input = variant_input(variant)   # pixels, or the variant's DCT channels
  adamw_cosine(c, warmup_steps=50)  # AdamW 2e-3, weight decay 5e-4, cosine
  c.num_epochs = 8                   # 744 steps of 64 over 6,000 images
  c.log_every = 31                   # progress lines: 3 an epoch
  c.eval_every = 100_000             # evaluate once, at the end
  c.checkpoint_every = 93            # one checkpoint an epoch

  if args.tiny:  # seconds: tests point data.source at a small synthetic image folder
    shrink_to_tiny_freq(c)           # 16x16 images, width 4, 4 steps
  return c
