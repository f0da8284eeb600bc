"""Learning in the frequency domain on Tiny-ImageNet-200: spatial pixels vs block-DCT channels.

A narrow ResNet-18 (width 16, i.e. a quarter of the published channels) sees either
  * pixels through the usual 7x7/2 + max-pool stem: 32x32 images (`spatial32`, 8x8 at layer1, the
    paper's "RGB 224 through the stem") or 64x64 images (`spatial64`, 16x16 at layer1); or
  * the 8x8 block DCT of the 64x64 image, 8x8xC at layer1, no stem (`dct24`, `dct48`, `dct64`,
    `dct192` with the published channel presets, `gate` = all 192 channels behind the learned
    Gumbel gate, from which a static top-k subset is read afterwards).
Augmentation (random crop with 4-pixel padding, flip) is on pixels, before the DCT, as in DCTNet.

Command (one variant):
  python -m freqnoise.main --config=configs/freq_tiny_imagenet.py:variant=dct48 --workdir=runs/freq/tin_dct48
All variants, the table and the heat map: python experiments/frequency_domain/run.py
Runtime on 2 shared CPU cores: 2.5-6 min of training per DCT / spatial32 variant (3 epochs over the
50k images of train shards 0-1, batch 128), 13 min for spatial64, plus ~1.5 min loading and compiling.
Measured top-1 on the val set (experiments/frequency_domain/README.md): spatial32 10.3%, dct24 7.6%,
dct48 7.0%, dct64 6.6%, dct192 4.6%, gate 4.7%, spatial64 16.2%.
Arguments (`configs/freq_tiny_imagenet.py:KEY=VALUE,...`): `variant` = one of the variants above
(default dct48); `tiny` = that variant at 16x16, width 4, 4 steps (tests set data.source to a small
folder), e.g. `variant=gate,tiny`.
"""

import ml_collections

from configs.common import (adamw_cosine, base_config, check_choice, parse_arg, shared_data,
                            shrink_to_tiny_freq, variant_input)

VARIANTS = ("spatial32", "spatial64", "dct24", "dct48", "dct64", "dct192", "gate")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Keys: variant (one of VARIANTS, default dct48), tiny; see the module docstring."""
  args = parse_arg(arg, variant="dct48", tiny=False)
  check_choice("variant", args.variant, VARIANTS)
  variant = args.variant
  c = base_config()
  # whatever train shards are present
  c.data.source = "imagefolder:" + shared_data("tiny-imagenet-200")
  c.data.test_split = "val"          # Tiny-ImageNet's labelled val set is the test set
  c.data.image_size = 32 if variant == "spatial32" else 64  # decoded (and resized) image side
  c.data.batch_size = 128            # training images per step
  c.data.eval_batch_size = 500       # val images per evaluation batch
  c.data.augment.crop_padding = 4 if variant != "spatial32" else 2  # pixels, before any DCT
  c.data.augment.flip = True         # random horizontal flips

  c.model = ml_collections.ConfigDict()
  c.model.name = "resnet18"          # ResNet-18 layout, spatial or frequency stem
  c.model.stem = "spatial" if variant.startswith("spatial") else "frequency"  # see freqnoise.models.resnet
  c.model.width = 16                 # layer1 channels (64 in the published ResNet-18); CPU budget
  c.model.layer2_stride = 2          # 2 = published strides (1 keeps layer2 at 8x8: ~3x the FLOPs)
  c.model.small_images = False       # pixels keep the ImageNet stem: 32x32 -> 8x8 like DCT of 64x64
  c.model.gate = variant == "gate"   # learned Gumbel channel gate on the input
  c.model.gate_sparsity = 0.2        # lambda of lambda * mean(active gates)
  c.model.gate_tau_start = 2.0       # Gumbel-softmax temperature at step 0 ...
  c.model.gate_tau_end = 0.5         # ... annealed exponentially to this ...
  c.model.gate_anneal_steps = 1170   # ... over this many steps (3 epochs of 390 steps)

  c.input = variant_input(variant)   # pixels, or the variant's DCT channels
  adamw_cosine(c, warmup_steps=100)  # AdamW 2e-3, weight decay 5e-4, cosine
  c.num_epochs = 3                   # 1,170 steps of 128 over 50k images
  c.log_every = 50                   # steps between progress lines
  c.eval_every = 100_000             # evaluate once, at the end
  c.checkpoint_every = 200           # steps between checkpoints

  if args.tiny:  # seconds: tests point data.source at a small synthetic image folder
    c.data.augment.crop_padding = 0  # no crops
    shrink_to_tiny_freq(c)           # 16x16 images, width 4, 4 steps
  return c
