"""configs/maskrcnn_coco.py: every variant at every scale builds and passes `check_config`; the
coco scale is DCTNet's Mask R-CNN 1x schedule; the input reaches layer1 at 1/4 of the image in
every variant; unknown arguments are named."""

import jax
import jax.numpy as jnp
import pytest

from configs import maskrcnn_coco
from freqnoise.data.transforms import build_transform
from freqnoise.experiment import check_config
from freqnoise.objectives import name_of
from tests.conftest import REPO

CASES = [(v, s) for v in maskrcnn_coco.VARIANTS for s in maskrcnn_coco.SCALES]


def test_variants_and_scales():
  assert maskrcnn_coco.VARIANTS == ("spatial", "dct24", "dct64")
  assert maskrcnn_coco.SCALES == ("coco", "coco128", "overfit", "tiny")


@pytest.mark.parametrize("variant, scale", CASES)
def test_every_variant_and_scale_passes_check_config(tmp_path, variant, scale):
  c = maskrcnn_coco.get_config(f"variant={variant},scale={scale}")
  kind = c.data.source.partition(":")[0]
  assert kind == ("cocojson" if scale == "coco" else "yolo-seg")
  assert (c.loss, name_of(c), c.model.name, c.data.label_key) == (
      "maskrcnn", "maskrcnn", "maskrcnn", "classes")
  # the data folders need not exist here: an empty folder of the same kind passes the checks
  c.data.source = f"{kind}:{tmp_path}"
  c.num_devices = 1  # (the tests' 4 fake CPU devices do not divide coco's 2-image batches)
  check_config(c)
  assert c.data.image_size % 64 == 0
  # the model input: pixels, or the DCT of the 2x image on the grid layer1 runs at (1/4)
  side = c.data.image_size
  x = jax.eval_shape(build_transform(c.input).coefficients if variant != "spatial" else
                     (lambda x: x), jax.ShapeDtypeStruct((1, side, side, 3), jnp.uint8))
  assert x.shape == ((1, side, side, 3) if variant == "spatial" else
                     (1, side // 4, side // 4, int(variant[3:])))
  assert c.model.stem == ("spatial" if variant == "spatial" else "frequency")


@pytest.mark.parametrize("variant", maskrcnn_coco.VARIANTS)
def test_coco_is_dctnets_1x_schedule(variant):
  c = maskrcnn_coco.get_config(f"variant={variant}")  # scale=coco is the default
  assert c.data.source == "cocojson:~/data/coco"
  assert (c.data.train_split, c.data.test_split, c.data.image_size) == ("train2017", "val2017", 1344)
  assert (c.data.batch_size, c.data.augment.flip, c.data.max_instances) == (2, True, 100)
  assert (c.model.depth, c.model.width, c.model.frozen_stages) == (50, 64, 1)
  assert "fpn_features" not in c.model  # the model's defaults: 256-channel FPN, 1024 box head
  o = c.optimizer
  assert (o.name, o.learning_rate, o.momentum, o.weight_decay, o.grad_clip_norm) == (
      "sgd", 0.0025, 0.9, 1e-4, 35.0)
  assert (o.schedule, tuple(o.boundaries), o.decay_factor, o.warmup_steps) == (
      "step", (0.8, 0.95), 0.1, 500)
  assert (c.num_epochs, c.num_steps) == (20, 0)
  assert c.evals.coco.type == "coco"
  if variant == "spatial":
    assert c.input.name == "spatial" and "upscale" not in c.input
  else:
    assert (c.input.name, c.input.channels, c.input.upscale, c.input.chroma) == (
        "dct", int(variant[3:]), 2, "444")


def test_cpu_scales():
  coco128, overfit, tiny = (maskrcnn_coco.get_config(f"scale={s}")
                            for s in ("coco128", "overfit", "tiny"))
  for c in (coco128, overfit, tiny):
    assert c.data.source == maskrcnn_coco.COCO128 and c.model.frozen_stages == 0
    assert c.data.train_split == c.data.test_split == "train2017"
  assert (tuple(coco128.data.train_range), tuple(coco128.data.test_range)) == ((0, 96), (96, 128))
  assert overfit.data.train_range == overfit.data.test_range == (0, 16)
  assert not overfit.data.augment.flip
  assert (coco128.model.depth, coco128.model.width, coco128.model.fpn_features) == (50, 16, 64)
  assert (tiny.model.depth, tiny.model.width, tiny.model.fpn_features, tiny.data.image_size) == (
      18, 4, 16, 128)
  assert (tiny.num_steps, tiny.data.batch_size, tiny.data.train_range) == (4, 2, (0, 4))
  assert maskrcnn_coco.get_config("variant=dct24,tiny").to_dict() == maskrcnn_coco.get_config(
      "variant=dct24,scale=tiny").to_dict()


def test_cpu_scales_read_the_shared_coco128(shared_data):
  """The CPU scales' relative source is ../shared/data/coco128-seg seen from the repository root
  (where runs start), and that folder passes the checks."""
  root = maskrcnn_coco.COCO128.partition(":")[2]
  assert (REPO / root).resolve() == (shared_data / "coco128-seg").resolve()
  c = maskrcnn_coco.get_config("scale=coco128")
  c.data.source = f"yolo-seg:{REPO / root}"
  c.num_devices = 1
  check_config(c)


@pytest.mark.parametrize("arg, message", [
    ("variant=dct32", r"variant='dct32' is not one of: spatial, dct24, dct64"),
    ("scale=coco64", r"scale='coco64' is not one of: coco, coco128, overfit, tiny"),
    ("model=resnet18", r"unknown config argument 'model'"),
])
def test_unknown_arguments_are_named(arg, message):
  with pytest.raises(ValueError, match=message):
    maskrcnn_coco.get_config(arg)


@pytest.mark.parametrize("variant", ["dct24", "dct64"])
def test_a_frequency_stem_needs_the_2x_upscaled_dct(tmp_path, variant):
  """The frequency stem takes its input grid as 1/4 of the image (input_stride 4): DCT blocks of
  the 2x image. Another upscale (none: blocks of 8 pixels) is refused by check_config, before any
  data is read, naming config.model.stem and config.input.upscale; so is DCT into a spatial stem."""
  c = maskrcnn_coco.get_config(f"variant={variant},scale=tiny")
  c.data.source, c.num_devices = f"yolo-seg:{tmp_path}", 1
  for upscale, cell in ((1, 8), (4, 2)):
    c.input.upscale = upscale
    with pytest.raises(ValueError, match=(
        r"config.model.stem='frequency': maskrcnn takes each input cell as 4x4 image pixels "
        r"\(input_stride=4: the block DCT of the image upscaled 2x, config.input.upscale=2\), but "
        rf"config.input gives cells of {cell} pixels \(config.input.upscale={upscale}\)")):
      check_config(c)
  del c.input.upscale  # the transform's default: 1
  with pytest.raises(ValueError, match=r"config.input.upscale=1\)"):
    check_config(c)
  c.input.upscale, c.model.stem = 2, "spatial"
  with pytest.raises(ValueError, match=r"config.model.stem='spatial': maskrcnn takes each input "
                                       r"cell as 1x1 image pixels \(pixels, config.input.name="):
    check_config(c)
