"""`noise.layers`: "first" means the products that read the model input, whatever the stem; "last"
is the classifier. (Before, a frequency stem kept its whole first block and the gate digital under
'all_but_first', a spatial stem only one conv.)"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from freqnoise.analog.layers import NoisyConv, NoisyDense
from freqnoise.analog.noise import NoiseConfig
from freqnoise.models import build_model
from freqnoise.detection import model as _maskrcnn  # noqa: F401 (registers 'maskrcnn')


def digital_products(model, x):
  """Names (module paths) of the analog layers that run without noise, and of all of them."""
  seen = {}

  def record(next_fun, args, kwargs, context):
    module = context.module
    if isinstance(module, (NoisyConv, NoisyDense)) and context.method_name == "__call__":
      seen["/".join(module.scope.path)] = module.noise is None
    return next_fun(*args, **kwargs)

  # Shapes only (jax.eval_shape): which layers are digital is decided while tracing, so nothing
  # needs compiling or computing (MobileNetV2 run eagerly took over a minute).
  variables = jax.eval_shape(lambda: model.clone(noise=None).init(jax.random.key(0), x,
                                                                  train=False))
  with nn.intercept_methods(record):
    jax.eval_shape(lambda v: model.apply(v, x, train=False, rngs={"noise": jax.random.key(1)}),
                   variables)
  return sorted(k for k, digital in seen.items() if digital), len(seen)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_all_but_first_keeps_only_the_products_that_read_the_input_digital(name):
  noise = NoiseConfig(snr_db=10.0, layers="all_but_first")
  spatial = build_model({"name": name, "stem": "spatial", "small_images": True, "width": 8}
                        if name == "resnet18" else {"name": name, "stem": "spatial",
                                                    "small_images": True},
                        num_classes=3, noise=noise)
  digital, total = digital_products(spatial, jnp.ones((1, 16, 16, 3)))
  assert digital == [("conv1" if name == "resnet18" else "stem_conv")] and total > 10
  fields = {"name": name, "stem": "frequency", "gate": True}
  if name == "resnet18":
    fields.update(width=8, layer2_stride=1)
  freq = build_model(fields, num_classes=3, noise=noise)
  digital, _ = digital_products(freq, jnp.ones((1, 4, 4, 24)))
  if name == "resnet18":  # conv1 and the projection of the first block read the input
    assert digital == ["input_gate/hidden", "layer1_0/conv1", "layer1_0/proj_conv"]
  else:  # block 0 (expansion 1) starts with its depthwise conv on the input
    assert digital == ["block0_depthwise", "input_gate/hidden"]


def test_all_but_last_and_first_last():
  model = build_model({"name": "lenet", "conv_features": (2, 2), "dense_features": (4,)},
                      num_classes=3, noise=NoiseConfig(snr_db=0.0, layers="all_but_first_last"))
  digital, total = digital_products(model, jnp.ones((1, 8, 8, 1)))
  assert digital == ["conv0", "logits"] and total == 4
  digital, _ = digital_products(model.clone(noise=NoiseConfig(snr_db=0.0, layers="all_but_last")),
                                jnp.ones((1, 8, 8, 1)))
  assert digital == ["logits"]


MODELS = {  # every registered model, small: (config.model, input)
    "mlp": ({"hidden": (4, 4)}, jnp.ones((1, 8, 8, 1))),
    "fast_cifar": ({"widths": (4, 4, 4)}, jnp.ones((1, 16, 16, 3))),
    "lenet": ({"conv_features": (2,), "dense_features": (4,)}, jnp.ones((1, 8, 8, 1))),
    "resnet18": ({"small_images": True, "width": 8}, jnp.ones((1, 16, 16, 3))),
    "resnet50": ({"stem": "frequency", "gate": True, "width": 8}, jnp.ones((1, 4, 4, 24))),
    "mobilenet_v2": ({"small_images": True}, jnp.ones((1, 16, 16, 3))),
    "seq_classifier": ({"hidden": 4, "num_layers": 2}, jnp.ones((1, 3, 2))),
    "lstm_lm": ({"embed_dim": 4, "hidden": 4}, jnp.ones((1, 3), jnp.int32)),
    "maskrcnn": ({"depth": 18, "width": 4, "fpn_features": 8, "box_hidden": 8, "mask_convs": 1,
                  "rpn_pre_nms_test": 16, "rpn_post_nms_test": 16, "detections_pre_nms": 16,
                  "max_detections": 4}, jnp.ones((1, 64, 64, 3))),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_threads_quant_to_the_same_products_as_noise(name):
  """`quant.layers` picks products exactly as `noise.layers` does, in every registered model."""
  from freqnoise.analog.product_quant import ProductQuant
  from freqnoise.analog.quant import QuantConfig
  from freqnoise.analog.recurrent import RecurrentScan
  from freqnoise.models import registered_models
  assert sorted(MODELS) == registered_models()
  fields, x = MODELS[name]
  quant = ProductQuant(weight=QuantConfig(4, mode="dynamic"), layers="all_but_first")
  model = build_model({"name": name, **fields}, num_classes=5, quant=quant,
                      noise=NoiseConfig(snr_db=10.0, layers="all_but_first"))
  seen = {}

  def record(next_fun, args, kwargs, context):
    module = context.module
    if (isinstance(module, (NoisyConv, NoisyDense, RecurrentScan))
        and context.method_name == "__call__"):
      seen["/".join(module.scope.path)] = (module.noise is None, module.quant is None)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
  assert len(seen) >= 3 and all(n == q for n, q in seen.values()), seen
  assert sum(q for _, q in seen.values()) >= 1
  if name == "lstm_lm":  # the tied softmax layer's converters
    tied = model.clone(tie_weights=True, quant=ProductQuant(weight=QuantConfig(4, mode="learned")))
    shapes = jax.eval_shape(lambda: tied.init(jax.random.key(0), x, train=False))
    assert shapes["params"]["analog_logits"]["weight"]["step"].shape == ()
