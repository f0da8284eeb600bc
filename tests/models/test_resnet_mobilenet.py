"""ResNet-18/50 and MobileNetV2 with spatial / frequency stems: exact parameter counts, shapes, options."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from freqnoise.analog.noise import NoiseConfig
from freqnoise.models import build_model
from freqnoise.models.resnet import ResNet


def _variables_shape(model, shape):
  return jax.eval_shape(lambda: model.init({"params": jax.random.key(0)}, jnp.zeros(shape), train=False))


def _num_params(model, shape) -> int:
  return int(sum(np.prod(x.shape) for x in jax.tree.leaves(_variables_shape(model, shape)["params"])))


@pytest.mark.parametrize("name, stem, shape, expected", [
    ("resnet50", "spatial", (1, 224, 224, 3), 25_557_032),      # torchvision resnet50
    ("resnet18", "spatial", (1, 224, 224, 3), 11_689_512),      # torchvision resnet18
    ("mobilenet_v2", "spatial", (1, 224, 224, 3), 3_504_872),   # torchvision mobilenet_v2
    # Frequency stem, C = 64: minus conv1 (7*7*3*64 = 9408) and bn1 (128); layer1 unchanged.
    ("resnet50", "frequency", (1, 56, 56, 64), 25_557_032 - 9408 - 128),
    # C = 24: also layer1_0's conv1 (1x1) and projection read 24 instead of 64 channels:
    # -(64 - 24) * (64 + 256) = -12800.
    ("resnet50", "frequency", (1, 56, 56, 24), 25_557_032 - 9408 - 128 - 12_800),
    # ResNet-18, C = 24: conv1 3x3 of layer1_0 reads 24 channels (-40*9*64 = -23040) and, 24 != 64,
    # the block gains a projection 1x1 24->64 with BN (+1536 + 128).
    ("resnet18", "frequency", (1, 56, 56, 24), 11_689_512 - 9408 - 128 - 23_040 + 1536 + 128),
    # MobileNetV2, C = 24: minus stem conv+BN (864 + 64); block0 depthwise 3x3 and BN on 24 instead of
    # 32 channels (-72, -16) and its projection 24->16 (-128).
    ("mobilenet_v2", "frequency", (1, 112, 112, 24), 3_504_872 - 928 - 72 - 16 - 128),
])
def test_exact_parameter_counts(name, stem, shape, expected):
  model = build_model({"name": name, "stem": stem}, num_classes=1000)
  assert _num_params(model, shape) == expected


def _intermediate_shapes(model, shape):
  """Output shapes of every submodule, from abstract evaluation only (no compute)."""
  def run(variables):
    return model.apply(variables, jnp.zeros(shape), train=False, capture_intermediates=True,
                       mutable=["intermediates"])
  out, inter = jax.eval_shape(run, _variables_shape(model, shape))
  return out, inter["intermediates"]


def test_output_shapes_and_resolutions():
  # Frequency ResNet-50: 56x56xC -> layer4 at 7x7, like the 224x224 spatial model.
  out, inter = _intermediate_shapes(build_model({"name": "resnet50", "stem": "frequency"}, num_classes=10),
                                    (2, 56, 56, 24))
  assert out.shape == (2, 10) and inter["layer4_2"]["__call__"][0].shape == (2, 7, 7, 2048)
  # Small-image ResNet-18 on 8x8xC Tiny-ImageNet DCT input with layer2 at stride 1: 8 -> 8 -> 4 -> 2.
  small = build_model({"name": "resnet18", "stem": "frequency", "width": 8, "layer2_stride": 1},
                      num_classes=200)
  out, inter = _intermediate_shapes(small, (2, 8, 8, 48))
  assert out.shape == (2, 200)
  assert inter["layer2_0"]["__call__"][0].shape == (2, 8, 8, 16)
  assert inter["layer4_1"]["__call__"][0].shape == (2, 2, 2, 64)
  # Spatial small-image stem keeps 32x32 at layer1; the ImageNet stem takes it to 8x8.
  for small_images, side in [(True, 32), (False, 8)]:
    m = build_model({"name": "resnet18", "width": 8, "small_images": small_images}, num_classes=10)
    _, inter = _intermediate_shapes(m, (1, 32, 32, 3))
    assert inter["layer1_0"]["__call__"][0].shape == (1, side, side, 8)
  # MobileNetV2: frequency input 112x112xC reaches the last conv at 7x7 like the 224x224 model.
  _, inter = _intermediate_shapes(build_model({"name": "mobilenet_v2", "stem": "frequency"}, num_classes=10),
                                  (1, 112, 112, 24))
  assert inter["last_conv"]["__call__"][0].shape == (1, 7, 7, 1280)
  out, _ = _intermediate_shapes(build_model({"name": "mobilenet_v2", "small_images": True}, num_classes=10),
                                (1, 32, 32, 3))
  assert out.shape == (1, 10)


@pytest.fixture(scope="module")
def small_gated():
  """A two-stage frequency ResNet with an input gate (fast; the full models share this code)."""
  model = ResNet(num_classes=5, stage_sizes=(1, 1), stem="frequency", width=8, layer2_stride=1,
                 gate=True, gate_sparsity=0.3)
  x = jax.random.normal(jax.random.key(1), (4, 4, 4, 192))
  return model, x, model.init({"params": jax.random.key(0)}, x, train=False)


def test_train_mode_updates_batch_stats_and_gate(small_gated):
  model, x, variables = small_gated
  assert set(variables) >= {"params", "batch_stats", "gate_stats"}
  state = {k: v for k, v in variables.items() if k not in ("params", "losses")}
  logits, updates = model.apply({"params": variables["params"], **state}, x, train=True,
                                rngs={"gumbel": jax.random.key(2), "dropout": jax.random.key(3)},
                                mutable=[*state, "losses"])
  assert logits.shape == (4, 5)
  assert float(updates["gate_stats"]["input_gate"]["examples"]) == 4.0
  assert 0.0 <= float(updates["losses"]["input_gate"]["gate_sparsity"][0]) <= 0.3
  assert not np.allclose(np.asarray(updates["batch_stats"]["layer1_0"]["bn1"]["mean"]), 0.0)
  # Eval is deterministic (gate argmax, BN running averages): no rngs needed, same result twice.
  a, b = (model.apply(variables, x, train=False) for _ in range(2))
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_noise_switches_on_analog_products(small_gated):
  exact, x, variables = small_gated
  run = lambda model: np.asarray(model.apply(variables, x, train=False, rngs={"noise": jax.random.key(5)}))
  y_exact = run(exact)
  np.testing.assert_array_equal(run(exact.clone(noise=NoiseConfig(snr_db=float("inf")))), y_exact)
  assert not np.allclose(run(exact.clone(noise=NoiseConfig(snr_db=10.0))), y_exact)


def test_bad_configs():
  with pytest.raises(ValueError, match="spatial stem expects 3 colour channels"):
    build_model({"name": "resnet18"}, num_classes=2).init(
        {"params": jax.random.key(0)}, jnp.zeros((1, 8, 8, 24)), train=False)
  with pytest.raises(ValueError, match="stem must be one of"):
    build_model({"name": "mobilenet_v2", "stem": "dct"}, num_classes=2).init(
        {"params": jax.random.key(0)}, jnp.zeros((1, 8, 8, 3)), train=False)
  with pytest.raises(ValueError, match="layer2_stride"):
    build_model({"name": "resnet18", "layer2_stride": 3}, num_classes=2).init(
        {"params": jax.random.key(0)}, jnp.zeros((1, 8, 8, 3)), train=False)
  with pytest.raises(ValueError, match="rejected its config fields"):
    build_model({"name": "resnet50", "stemm": "frequency"}, num_classes=2)



def _frozen_sizes(model, params) -> tuple[int, set]:
  """(parameters the mask of `model` freezes, the ResNet modules it freezes) in `params`."""
  from freqnoise.models.resnet import frozen_mask
  mask = frozen_mask(model)(params)
  assert jax.tree.structure(mask) == jax.tree.structure(params)
  flat = jax.tree_util.tree_flatten_with_path(mask)[0]
  sizes = dict(zip((p for p, _ in flat), (int(np.prod(x.shape)) for x in jax.tree.leaves(params))))
  frozen = [p for p, f in flat if f]
  module = lambda path: tuple(k.key for k in path[:2 if path[0].key == "backbone" else 1])
  return sum(sizes[p] for p in frozen), {module(p) for p in frozen}


def test_frozen_mask_marks_exactly_the_stem_and_the_frozen_stages():
  from freqnoise.detection.model import MaskRCNN
  from freqnoise.models.resnet import frozen_mask
  assert frozen_mask(build_model({"name": "resnet50"}, num_classes=10)) is None  # frozen_stages=0
  # ResNet-50, frozen_stages=1: conv1 7*7*3*64 + bn1 128 = 9536, layer1 (torchvision) 215,808.
  resnet = build_model({"name": "resnet50", "frozen_stages": 1}, num_classes=10)
  count, names = _frozen_sizes(resnet, _variables_shape(resnet, (1, 32, 32, 3))["params"])
  assert count == 9536 + 215_808
  assert names == {("conv1",), ("bn1",), ("layer1_0",), ("layer1_1",), ("layer1_2",)}
  # A detector's ResNet-18 (width 4) under params['backbone']: conv1 7*7*3*4 + bn1 8, and
  # layer1's two blocks of two 3x3 4->4 convs and BNs: 2 * (2 * 144 + 2 * 8). Nothing else.
  detector = MaskRCNN(num_classes=3, depth=18, width=4, frozen_stages=1, fpn_features=8,
                      box_hidden=8, mask_convs=1)
  params = _variables_shape(detector, (1, 64, 64, 3))["params"]
  count, names = _frozen_sizes(detector, params)
  assert count == 588 + 8 + 2 * (2 * 144 + 2 * 8)
  assert names == {("backbone", n) for n in ("conv1", "bn1", "layer1_0", "layer1_1")}
  # frozen_stages=2 adds layer2 (3x3 4->8, 3x3 8->8, 1x1 projection, 3 BNs; then 2 x 3x3 8->8).
  count, _ = _frozen_sizes(detector.clone(frozen_stages=2), params)
  assert count == 1204 + (288 + 576 + 32 + 3 * 16) + (2 * 576 + 2 * 16)
