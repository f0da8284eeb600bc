"""Frequency-domain configs: every variant builds; the tiny variant trains end to end on a small folder."""

import json

import jax
import numpy as np
import pytest

from configs import freq_cifar10, freq_imagenette, freq_tiny_imagenet
from freqnoise.data.transforms import build_transform
from freqnoise.models import build_model
from tests.conftest import write_image_folder


@pytest.mark.parametrize("module, variant", [(m, v) for m in (freq_tiny_imagenet, freq_cifar10,
                                                              freq_imagenette)
                                             for v in m.VARIANTS])
def test_every_variant_builds_at_its_input_size(module, variant):
  c = module.get_config(f"variant={variant}")
  transform = build_transform(c.input)
  side = c.data.image_size
  images = np.random.default_rng(0).integers(0, 256, (2, side, side, 3), dtype=np.uint8)
  x = transform(transform.fit(images), images)
  expected = ((2, side, side, 3) if variant.startswith("spatial")
              else (2, side // 8, side // 8, transform.num_channels))
  assert x.shape == expected
  model = build_model(c.model, num_classes=10)
  out = jax.eval_shape(lambda x: model.init_with_output({"params": jax.random.key(0)}, x, train=False)[0], x)
  assert out.shape == (2, 10)


def test_unknown_variant():
  with pytest.raises(ValueError, match="variant='dct25' is not one of: spatial32, spatial64, dct24"):
    freq_tiny_imagenet.get_config("variant=dct25")
  with pytest.raises(ValueError, match="variant='spatial64' is not one of: spatial32, dct24,"):
    freq_cifar10.get_config("variant=spatial64")


def test_tiny_keeps_the_variant():
  c = freq_cifar10.get_config("variant=dct24,tiny")
  assert (c.input.channels, c.model.gate, c.data.image_size, c.num_steps) == (24, False, 16, 4)
  assert c.data.test_split == "test" and c.data.source.endswith("cifar10-jpeg")
  full = freq_cifar10.get_config()
  assert (full.input.channels, full.num_epochs, full.model.gate_anneal_steps) == (48, 2, 780)


def test_tiny_gate_config_trains_and_records_gate_statistics(tmp_path):
  from freqnoise.train import train_and_evaluate
  write_image_folder(tmp_path / "data")
  c = freq_tiny_imagenet.get_config("variant=gate,tiny")
  c.data.source = f"imagefolder:{tmp_path / 'data'}"
  c.data.cache_dir = ""
  c.num_devices = 1  # one device compiles faster; sharding is the trainer's own tests' business
  result = train_and_evaluate(c, str(tmp_path / "run"))
  assert result["steps"] == 4 and 0.0 <= result["test_accuracy"] <= 1.0
  with np.load(tmp_path / "run" / "input_stats.npz") as stats:
    assert stats["mean"].shape == (192,) and stats["channels"].shape == (192,)
  with open(tmp_path / "run" / "final_metrics.json") as f:
    assert json.load(f)["steps"] == 4


def test_imagenette_protocol_halved():
  """Every variant but spatial224 reaches layer1 on a 28x28 grid: 112² through the stem's 4x, or
  the DCT of 224² (8x); MobileNetV2's first block sees 56x56 in both."""
  sides = {v: freq_imagenette.get_config(f"variant={v}").data.image_size
           for v in freq_imagenette.VARIANTS}
  assert sides == {"spatial112": 112, **{v: 224 for v in freq_imagenette.VARIANTS[1:]}}
  c = freq_imagenette.get_config("variant=dct24,model=mobilenet_v2")
  assert (c.model.name, c.model.stem, c.input.channels, c.model.get("width")) == (
      "mobilenet_v2", "frequency", 24, None)
  # MobileNetV2's stem halves 112² to 56²: its DCT variants read 448² (a 56x56 grid).
  assert c.data.image_size // 8 == freq_imagenette.get_config(
      "variant=spatial112,model=mobilenet_v2").data.image_size // 2 == 56
  gate = freq_imagenette.get_config("variant=gate")
  assert gate.model.gate and gate.input.channels == 192
  assert gate.model.gate_anneal_steps == gate.num_epochs * (6000 // gate.data.batch_size)
  with pytest.raises(ValueError, match="model='resnet50' is not one of: resnet18, mobilenet_v2"):
    freq_imagenette.get_config("model=resnet50")
