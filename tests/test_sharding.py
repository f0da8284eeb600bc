"""The ('data',) mesh and batch sharding (joining several processes: tests/test_distributed.py)."""

import jax
import numpy as np
import pytest

from freqnoise import sharding


def test_batch_is_split_over_the_four_devices():
  mesh = sharding.make_mesh()
  assert mesh.devices.size == 4 and mesh.axis_names == ("data",)
  batch = {"x": np.arange(8 * 3).reshape(8, 3)}
  out = sharding.shard_batch(batch, mesh)["x"]
  np.testing.assert_array_equal(np.asarray(out), batch["x"])
  assert sorted(s.data.shape for s in out.addressable_shards) == [(2, 3)] * 4
  params = sharding.replicate({"w": np.ones(3)}, mesh)["w"]
  assert all(s.data.shape == (3,) for s in params.addressable_shards)


def test_mesh_size_and_batch_checks():
  assert sharding.make_mesh(1).devices.size == 1
  with pytest.raises(ValueError, match="num_devices=5 but 4 devices are visible"):
    sharding.make_mesh(5)
  with pytest.raises(ValueError, match="eval_batch_size=6 is not divisible by the 4 devices"):
    sharding.check_batch_size(6, sharding.make_mesh(), "eval_batch_size")


def test_put_replicated_places_host_values_and_typed_keys_on_every_device():
  mesh = sharding.make_mesh()
  key, x = sharding.put_replicated((jax.random.key(3), np.arange(6.0)), mesh)
  assert key.sharding.is_fully_replicated and len(key.sharding.device_set) == 4
  np.testing.assert_array_equal(jax.random.key_data(key), jax.random.key_data(jax.random.key(3)))
  np.testing.assert_array_equal(np.asarray(x), np.arange(6.0))
