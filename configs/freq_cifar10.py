"""Learning in the frequency domain on CIFAR-10 (the JPEG-75 copy): a second, smaller check.

Same design as configs/freq_tiny_imagenet.py: a width-16 ResNet-18 sees either 32x32 pixels through
the usual 7x7/2 + max-pool stem (`spatial32`: 8x8 at layer1) or the block DCT of the image upscaled
to 64x64 (`dct24`, `dct48`, `dct64`, `dct192`: 8x8xC, no stem). Upscaling before the DCT mirrors
DCTNet, which resizes ImageNet images to 448-896 pixels so the DCT grid matches a 224-pixel RGB stem.
Note the source is re-encoded as JPEG quality 75 (../shared/data/README.md), so its highest
frequencies are already quantised away.

Command: python -m freqnoise.main --config=configs/freq_cifar10.py:variant=dct48 --workdir=runs/freq/c10_dct48
All variants: python experiments/frequency_domain/run.py --config cifar10 --variants spatial32,dct24,dct48,dct192
Runtime on 2 shared CPU cores: about 1.3 min of training per epoch (390 steps of 128) per variant.
Measured after 1 epoch (`--set num_epochs=1`; experiments/frequency_domain/README.md): spatial32 51.0%,
dct24 43.6%, dct48 39.4% top-1; the 2-epoch default was not run.
Arguments (`configs/freq_cifar10.py:KEY=VALUE,...`): `variant` = one of the variants above (default
dct48); `tiny` = that variant at 16x16, width 4, 4 steps (tests set data.source to a small image
folder), e.g. `variant=dct24,tiny`.
"""

import ml_collections

from configs import freq_tiny_imagenet
from configs.common import check_choice, parse_arg, shared_data

VARIANTS = ("spatial32", "dct24", "dct48", "dct64", "dct192", "gate")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Keys: variant (one of VARIANTS, default dct48), tiny; see the module docstring."""
  args = parse_arg(arg, variant="dct48", tiny=False)
  check_choice("variant", args.variant, VARIANTS)
  # Start from the Tiny-ImageNet variant (every field commented there; the same image sides, so
  # the DCT variants upscale CIFAR's 32x32 images to 64x64 on load) and change the data.
  c = freq_tiny_imagenet.get_config(f"variant={args.variant},tiny={args.tiny}")
  c.data.source = "imagefolder:" + shared_data("cifar10-jpeg")  # train.tar.gz / test.tar.gz
  c.data.test_split = "test"        # CIFAR-10's test set
  if not args.tiny:
    c.model.gate_anneal_steps = 780  # 2 epochs of 390 steps
    c.num_epochs = 2                 # 780 steps of 128 over 50k images
  return c
