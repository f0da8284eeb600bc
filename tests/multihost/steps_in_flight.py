"""One process of tests/test_distributed.py's deadlock test: joins a run of N processes through
`freqnoise.distributed.initialize`, then dispatches STEPS data-parallel steps (one all-reduce each)
without ever waiting for one, as the trainer does between its progress lines; prints the result.

    python tests/multihost/steps_in_flight.py PROCESS_ID NUM_PROCESSES PORT STEPS

Each step adds the global batch mean of ones to a replicated scalar, so the result is exactly
STEPS. Hundreds of steps in flight used to deadlock XLA's CPU client (issue 25).
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from freqnoise import distributed, sharding


def main(process_id: int, num_processes: int, port: int, steps: int) -> None:
  distributed.initialize(ConfigDict({
      "num_processes": num_processes, "process_id": process_id,
      "coordinator_address": f"127.0.0.1:{port}", "distributed_timeout": 30}))
  mesh = sharding.make_mesh()
  replicated, batch = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  step = jax.jit(lambda w, x: w + jnp.mean(x), in_shardings=(replicated, batch),
                 out_shardings=replicated, donate_argnums=0)
  w = sharding.put_replicated(np.float32(0), mesh)
  x = sharding.shard_batch({"x": np.ones((2 * jax.local_device_count(),), np.float32)}, mesh)["x"]
  for _ in range(steps):
    w = step(w, x)
  print(f"process {process_id}: w = {float(w)}", flush=True)


if __name__ == "__main__":
  main(*map(int, sys.argv[1:5]))
