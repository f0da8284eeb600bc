"""Learning in the frequency domain on CIFAR-10 (the JPEG-75 copy): a second, smaller check.

Same design as configs/freq_tiny_imagenet.py: a width-16 ResNet-18 sees either 32x32 pixels through
the usual 7x7/2 + max-pool stem (`spatial32`: 8x8 at layer1) or the block DCT of the image upscaled
to 64x64 (`dct24`, `dct48`, `dct64`, `dct192`: 8x8xC, no stem). Upscaling before the DCT mirrors
DCTNet, which resizes ImageNet images to 448-896 pixels so the DCT grid matches a 224-pixel RGB stem.
Note the source is re-encoded as JPEG quality 75 (../shared/data/README.md), so its highest
frequencies are already quantised away.

Command: python -m freqnoise.main --config=configs/freq_cifar10.py:dct48 --workdir=runs/freq/c10_dct48
All variants: python experiments/frequency_domain/run.py --config cifar10 --variants spatial32,dct24,dct48,dct192
Runtime on 2 shared CPU cores: about 1.3 min of training per epoch (390 steps of 128) per variant.
Measured after 1 epoch (`--set num_epochs=1`; experiments/frequency_domain/README.md): spatial32 51.0%,
dct24 43.6%, dct48 39.4% top-1; the 2-epoch default was not run.
`get_config('tiny')`: dct24, width 4, 4 steps (tests set data.source to a small image folder).
"""

import ml_collections

from configs import freq_tiny_imagenet

VARIANTS = ("spatial32", "dct24", "dct48", "dct64", "dct192", "gate")


def get_config(arg: str | None = "dct48") -> ml_collections.ConfigDict:
  arg = arg or "dct48"
  variant = "dct24" if arg == "tiny" else arg
  if variant not in VARIANTS:
    raise ValueError(f"unknown config variant {arg!r}; known: {', '.join(VARIANTS)}, tiny")
  # Start from the Tiny-ImageNet variant (every field commented there) and change the data.
  c = freq_tiny_imagenet.get_config("tiny" if arg == "tiny" else variant)
  c.data.source = "imagefolder:../shared/data/cifar10-jpeg"  # train.tar.gz / test.tar.gz
  c.data.test_split = "test"
  c.data.image_size = 32 if variant == "spatial32" else 64  # DCT variants: upscaled 32 -> 64 on load
  c.data.augment.crop_padding = 2 if variant == "spatial32" else 4  # pixels, before any DCT
  c.model.gate = variant == "gate"
  c.model.gate_anneal_steps = 780   # 2 epochs of 390 steps
  if variant.startswith("dct"):
    c.input.channels = int(variant[3:])
  c.num_epochs = 2
  if arg == "tiny":
    c.data.image_size = 16
    c.data.augment.crop_padding = 0
    c.model.gate_anneal_steps = 4
    c.num_epochs = 0
  return c
