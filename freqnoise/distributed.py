"""Joining a multi-process run: `jax.distributed` with clear errors, and the checks it needs first.

    config.num_processes = N > 1     # every process of the run calls initialize(config) first
    config.coordinator_address       # host:port of process 0 ("" = from the cluster environment)
    config.process_id                # this process (-1 = from the cluster environment)
    config.distributed_timeout       # seconds to wait for every process to join

On SLURM and Cloud TPU, `jax.distributed` reads the address, count and id from the environment,
so only `num_processes` is needed there. On CPU, cross-process collectives go over gloo (set when
nothing else was chosen; the setting concerns JAX's CPU backend only, GPU and TPU keep JAX's own
collectives). Every check that needs no device (a process count that does not divide a batch, a
process id out of range) runs before joining, so it fails in every process at once; a process that
cannot reach the coordinator fails after `distributed_timeout` seconds with an error naming the
settings, instead of waiting for JAX's 5-minute default.
"""

from __future__ import annotations

import numbers
import socket
import sys
import threading
import time

import jax
import ml_collections

DEFAULT_TIMEOUT_S = 300  # jax.distributed's own default


class DistributedInitError(RuntimeError):
  """This process could not join the multi-process run (coordinator unreachable, or a process
  missing) within `config.distributed_timeout` seconds."""


def num_processes(config: ml_collections.ConfigDict) -> int:
  n = config.get("num_processes", 1)
  if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
    raise ValueError(f"config.num_processes must be a positive integer, got {n!r}")
  return int(n)


def check_config(config: ml_collections.ConfigDict) -> None:
  """The process settings, and every global batch divisible by `num_processes` (each process
  loads `batch / num_processes` rows); runs before `jax.distributed` or any backend starts."""
  n = num_processes(config)
  if n == 1:
    return
  pid = config.get("process_id", -1)
  if isinstance(pid, bool) or not isinstance(pid, numbers.Integral) or not -1 <= pid < n:
    raise ValueError(f"config.process_id={pid!r} must be in [0, {n}) for config.num_processes={n} "
                     "(or -1: from the cluster environment)")
  address = config.get("coordinator_address", "")
  host, _, port = address.rpartition(":")
  if address and (not host or not port.isdigit()):
    raise ValueError(f"config.coordinator_address={address!r} must be host:port (or '' to read it "
                     "from the cluster environment)")
  timeout = config.get("distributed_timeout", DEFAULT_TIMEOUT_S)
  if isinstance(timeout, bool) or not isinstance(timeout, numbers.Integral) or timeout <= 0:
    raise ValueError(f"config.distributed_timeout must be a positive number of seconds, got "
                     f"{timeout!r}")
  data = config.get("data") or {}
  for field in ("batch_size", "eval_batch_size"):
    size = data.get(field, 0) or (data.get("batch_size", 0) if field == "eval_batch_size" else 0)
    if isinstance(size, numbers.Integral) and size > 0 and size % n:
      raise ValueError(f"config.data.{field}={size} is not divisible by config.num_processes={n}: "
                       "each process loads an equal slice of every global batch")


def initialize(config: ml_collections.ConfigDict) -> None:
  """Joins the run when `config.num_processes > 1` (once per process; a no-op after that)."""
  check_config(config)
  n = num_processes(config)
  if n == 1 or jax.distributed.is_initialized():
    return
  kwargs = {"num_processes": n}
  if config.get("coordinator_address"):
    kwargs["coordinator_address"] = config.coordinator_address
  if config.get("process_id", -1) >= 0:
    kwargs["process_id"] = config.process_id
  timeout = int(config.get("distributed_timeout", DEFAULT_TIMEOUT_S))
  if jax.config.jax_cpu_collectives_implementation is None:  # JAX versions without a default
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  address, pid = config.get("coordinator_address", ""), config.get("process_id", -1)
  explain = lambda what: (
      f"process {pid} of config.num_processes={n} {what} at config.coordinator_address="
      f"{address!r} within config.distributed_timeout={timeout} s. Check that process 0 runs and "
      "is reachable at that address, and that every process was started with the same address "
      "and process count.")
  if address and pid > 0:  # a clean Python error, before JAX's client would abort the process
    wait_for_coordinator(address, timeout, lambda: explain("could not reach the coordinator"))
  # JAX aborts the process (LOG(FATAL), no Python exception) when the others do not join in
  # time: say why just before, in the words of the config.
  watchdog = threading.Timer(max(timeout - 0.5, 0.1), lambda: print(
      f"error: {DistributedInitError.__name__}: "
      + explain("was not joined by every other process"), file=sys.stderr, flush=True))
  watchdog.daemon = True
  watchdog.start()
  try:
    jax.distributed.initialize(**kwargs, initialization_timeout=timeout)
  except Exception as e:  # XlaRuntimeError (DEADLINE_EXCEEDED, UNAVAILABLE), ValueError, ...
    first = (str(e).strip().splitlines() or [""])[0][:300]
    raise DistributedInitError(explain(f"could not join the run ({type(e).__name__}: {first})")
                               ) from e
  finally:
    watchdog.cancel()


def wait_for_coordinator(address: str, timeout: float, message) -> None:
  """Waits until a TCP connection to `address` (host:port) opens; DistributedInitError(message())
  when none does within `timeout` seconds (process 0 may start a little after the others)."""
  host, _, port = address.rpartition(":")
  deadline = time.monotonic() + timeout
  while True:
    try:
      with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
        return
    except OSError:
      if time.monotonic() >= deadline:
        raise DistributedInitError(message()) from None
      time.sleep(0.2)


def is_writer() -> bool:
  """Whether this process writes the run's files (logs, metrics, figures, results): process 0."""
  return jax.process_index() == 0
