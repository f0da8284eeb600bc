"""MLP and LeNet: exact parameter counts, registry errors, and equality with plain Flax layers."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import ConfigDict

from freqnoise.models import build_model, registered_models


def n_params(model, shape):
  variables = model.init(jax.random.PRNGKey(0), jnp.zeros(shape), train=False)
  return sum(x.size for x in jax.tree.leaves(variables["params"]))


def test_mlp_parameter_count():
  model = build_model(ConfigDict({"name": "mlp", "hidden": (256, 128)}), num_classes=10)
  # 64*256+256 + 256*128+128 + 128*10+10
  assert n_params(model, (1, 8, 8, 1)) == 50_826


def test_lenet_parameter_count():
  model = build_model(ConfigDict({"name": "lenet"}), num_classes=10)
  # conv 5*5*1*32+32, conv 5*5*32*64+64, dense 7*7*64*512+512, logits 512*10+10
  assert n_params(model, (1, 28, 28, 1)) == 1_663_370


def test_noiseless_mlp_equals_hand_written_flax():
  class Plain(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = x.reshape(x.shape[0], -1)
      x = nn.relu(nn.Dense(16, name="dense0")(x))
      return nn.Dense(3, name="logits")(x)

  model = build_model(ConfigDict({"name": "mlp", "hidden": (16,)}), num_classes=3)
  x = jax.random.normal(jax.random.PRNGKey(1), (5, 4, 4, 1))
  variables = model.init(jax.random.PRNGKey(0), x, train=False)
  ours = model.apply(variables, x, train=True)
  theirs = Plain().apply(variables, x)
  np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))


def test_registry_errors():
  assert {"mlp", "lenet"} <= set(registered_models())
  with pytest.raises(ValueError, match="config.model.name is missing"):
    build_model(ConfigDict({"hidden": (3,)}), num_classes=2)
  with pytest.raises(ValueError, match="unknown model 'vgg'"):
    build_model(ConfigDict({"name": "vgg"}), num_classes=2)


def test_lenet_rejects_flat_input():
  model = build_model(ConfigDict({"name": "lenet"}), num_classes=10)
  with pytest.raises(ValueError, match="lenet expects NHWC images, got shape"):
    model.init(jax.random.PRNGKey(0), jnp.zeros((2, 784)), train=False)


def test_noiseless_avg_pool_lenet_equals_hand_written_flax():
  class Plain(nn.Module):
    @nn.compact
    def __call__(self, x):
      x = nn.avg_pool(nn.relu(nn.Conv(4, (3, 3), name="conv0")(x)), (2, 2), strides=(2, 2),
                      padding="SAME")
      x = nn.relu(nn.Dense(8, name="dense0")(x.reshape(x.shape[0], -1)))
      return nn.Dense(3, name="logits")(x)

  model = build_model(ConfigDict({"name": "lenet", "conv_features": (4,), "kernel_size": 3,
                                  "dense_features": (8,), "pool": "avg"}), num_classes=3)
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 6, 6, 1))
  variables = model.init(jax.random.PRNGKey(0), x, train=False)
  expected = Plain().apply(variables, x)
  np.testing.assert_array_equal(model.apply(variables, x, train=False), expected)
  max_pooled = build_model(ConfigDict({"name": "lenet", "conv_features": (4,), "kernel_size": 3,
                                       "dense_features": (8,)}), num_classes=3)
  assert not np.allclose(max_pooled.apply(variables, x, train=False), expected)


def test_lenet_rejects_unknown_pool():
  model = build_model(ConfigDict({"name": "lenet", "pool": "median"}), num_classes=10)
  with pytest.raises(ValueError, match="unknown lenet pool 'median'; expected one of max, avg"):
    model.init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)), train=False)
