"""Data parallelism with `jax.sharding`: a ('data',) mesh, batch sharded, parameters replicated.

The mesh spans every process's devices (after `freqnoise.distributed.initialize`).
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def make_mesh(num_devices: int = 0) -> Mesh:
  """A 1-D mesh, axis name 'data', over the first `num_devices` devices (0 = every device)."""
  devices = jax.devices()
  if num_devices < 0 or num_devices > len(devices):
    raise ValueError(f"num_devices={num_devices} but {len(devices)} devices are visible")
  return Mesh(np.asarray(devices[:num_devices or None]), ("data",))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P("data"))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: Mesh, what: str = "batch_size") -> None:
  # checked first: 0 passed the divisibility test and was a bare ZeroDivisionError later
  if not isinstance(batch_size, numbers.Integral) or batch_size <= 0:
    raise ValueError(f"{what}={batch_size!r} must be a positive integer")
  if batch_size % mesh.devices.size:
    raise ValueError(f"{what}={batch_size} is not divisible by the {mesh.devices.size} devices")


def shard_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles a global batch sharded over 'data' from this process's slice of it."""
  sharding = batch_sharding(mesh)
  if jax.process_count() == 1:  # the local slice is the global batch; device_put is ~30% cheaper
    return jax.device_put(batch, sharding)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def replicate(tree: Any, mesh: Mesh) -> Any:
  return jax.device_put(tree, replicated(mesh))


def put_replicated(tree: Any, mesh: Mesh) -> Any:
  """`tree` replicated on every device of `mesh`: host values (numpy, Python numbers) and this
  process's own arrays (typed PRNG keys included) alike. With several processes the values must
  be the same in every process (keys and data derived from the config are); arrays already on
  the global mesh are resharded as they are."""
  target = replicated(mesh)
  if jax.process_count() == 1:
    return jax.device_put(tree, target)

  def put(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return jax.device_put(x, target)
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      # a typed key cannot go through host memory itself: its key data can
      return jax.random.wrap_key_data(put(jax.random.key_data(x)), impl=jax.random.key_impl(x))
    return jax.device_put(np.asarray(x), target)

  return jax.tree.map(put, tree)
