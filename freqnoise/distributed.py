"""Joining a multi-process run: `jax.distributed` with clear errors, and the checks it needs first.

    config.num_processes = N > 1     # every process of the run calls initialize(config) first
    config.coordinator_address       # host:port of process 0 ("" = from the cluster environment)
    config.process_id                # this process (-1 = from the cluster environment)
    config.distributed_timeout       # seconds to wait for every process: to join, and in a phase

On SLURM and Cloud TPU, `jax.distributed` reads the address, count and id from the environment,
so only `num_processes` is needed there. On CPU, cross-process collectives go over gloo (set when
nothing else was chosen; the setting concerns JAX's CPU backend only, GPU and TPU keep JAX's own
collectives). Every check that needs no device (a process count that does not divide a batch, a
process id out of range) runs before joining, so it fails in every process at once; a process that
cannot reach the coordinator fails after `distributed_timeout` seconds with an error naming the
settings, instead of waiting for JAX's 5-minute default.

Once joined, two things keep a run from hanging silently:
  * XLA's CPU client gets two threads per local device (`size_cpu_thread_pool`), which its
    multi-device programs need to never deadlock;
  * a watchdog thread per process (`Watchdog`) knows the phase each process is in (`set_phase`:
    train step N, evaluation, checkpoint save, ...; shared through the coordination service) and,
    when this process has waited longer than `distributed_timeout` in one phase while another
    process is elsewhere (or in a bounded phase: one train step), prints every process's phase
    and exits with status EXIT_STATUS. Time spent tracing and compiling does not count.
A saved run's process layout (`LAYOUT`) is not part of what it is: `single_process` resets it, so
a run trained by N processes is evaluated by one.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import numbers
import os
import re
import socket
import sys
import threading
import time
from typing import Callable

import jax
import ml_collections

DEFAULT_TIMEOUT_S = 300  # jax.distributed's own default
# How the processes of one run find each other, with the values of a run of one process: they
# differ per launch and never change what a run computes (freqnoise.workdir.SAFE_FIELDS).
LAYOUT = {"num_processes": 1, "coordinator_address": "", "process_id": -1}
EXIT_STATUS = 124  # a process stopped by the watchdog (as `timeout` exits)


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
  if address and not 0 < int(port) < 65536:
    raise ValueError(f"config.coordinator_address={address!r}: port {int(port)} is not a TCP port "
                     "(1 to 65535)")
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
  size_cpu_thread_pool()  # (read when the backend starts, after joining)
  # JAX aborts the process (LOG(FATAL), no Python exception) when the others do not join in
  # time: say why just before, in the words of the config.
  join_alarm = threading.Timer(max(timeout - 0.5, 0.1), lambda: print(
      f"error: {DistributedInitError.__name__}: "
      + explain("was not joined by every other process"), file=sys.stderr, flush=True))
  join_alarm.daemon = True
  join_alarm.start()
  try:
    jax.distributed.initialize(**kwargs, initialization_timeout=timeout)
  except Exception as e:  # XlaRuntimeError (DEADLINE_EXCEEDED, UNAVAILABLE), ValueError, ...
    first = (str(e).strip().splitlines() or [""])[0][:300]
    raise DistributedInitError(explain(f"could not join the run ({type(e).__name__}: {first})")
                               ) from e
  finally:
    join_alarm.cancel()
  from jax._src import distributed as jax_distributed
  client = jax_distributed.global_state.client  # the coordination service's
  if client is None:  # (a stand-in for jax.distributed.initialize, in tests)
    return
  set_phase("setting up the run (data, model, checkpoint)")
  Watchdog(client, jax.process_index(), n, timeout).start()
  # (runs before JAX's own exit handler, which waits for every process to reach it)
  atexit.register(set_phase, "exiting (waiting for the other processes to exit too)")


def local_cpu_devices() -> int:
  """How many CPU devices this process's JAX creates: `jax_num_cpu_devices`, else XLA_FLAGS'
  `--xla_force_host_platform_device_count`, else 1."""
  if jax.config.jax_num_cpu_devices > 0:
    return jax.config.jax_num_cpu_devices
  flags = os.environ.get("XLA_FLAGS", "")
  count = re.findall(r"--xla_force_host_platform_device_count=(\d+)", flags)
  return max(int(count[-1]), 1) if count else 1


def size_cpu_thread_pool() -> None:
  """Gives XLA's CPU client at least two threads per local device (`PJRT_NPROC`, read when the
  backend starts; a larger setting or core count is kept).

  Why: the client runs both the launch of each device's share of a multi-device program and the
  share itself on one pool of max(cores, devices) threads. A launch that waits for room in its
  device's queue (32 programs in flight: the trainer dispatches ahead) holds a thread; with one
  thread per device, a device's share of a step whose collective the other devices already wait
  in then never gets a thread, and every process of the run stops, idle (issue 25:
  `LOCAL_DEVICES=2 run_local.sh 2 ...` on 2 cores hung 3 times of 3). The launches of one program
  and its shares need one thread per device each.
  """
  from jax._src import xla_bridge
  devices = local_cpu_devices()
  if devices < 2 or xla_bridge.backends_are_initialized():
    return
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  current = next((int(os.environ[k]) for k in ("PJRT_NPROC", "NPROC")
                  if os.environ.get(k, "").isdigit()), cores or 1)
  if current < 2 * devices:
    os.environ["PJRT_NPROC"] = str(2 * devices)


# ----------------------------------------------------------------------------- the watchdog
@dataclasses.dataclass(frozen=True)
class Phase:
  """What a process does now; `step` is formatted only when the phase is reported."""
  what: str
  step: int | None = None
  bounded: bool = False  # one short computation: lasting the timeout is a hang by itself
  since: float = dataclasses.field(default_factory=time.monotonic)
  wall: float = dataclasses.field(default_factory=time.time)
  thread: int = dataclasses.field(default_factory=threading.get_ident)

  def text(self) -> str:
    return self.what if self.step is None else f"{self.what} {self.step}"


_phase = Phase("starting")


def set_phase(what: str, step: int | None = None, *, bounded: bool = False) -> None:
  """Records what this process does now (`what` [step]), for the watchdog of a multi-process
  run; cheap enough to call every training step. `bounded`: one short computation (a train
  step), which must not last `config.distributed_timeout` even when every process is in it; an
  unbounded phase (an evaluation, the set-up) may, as long as every process is in the same one."""
  global _phase
  _phase = Phase(what, step, bounded)


class Watchdog(threading.Thread):
  """Publishes this process's phase (`set_phase`) to the coordination service and ends the
  process (status EXIT_STATUS, after printing every process's phase) when it has waited more than
  `timeout` seconds in one phase, counting no time spent compiling, while another process is in a
  different phase (or the phase is bounded). The main thread, blocked in a collective that the
  others never issue, cannot raise: only this thread can say what happened."""

  KEY = "freqnoise/phase/"

  def __init__(self, client, process: int, processes: int, timeout: float, *,
               exit: Callable[[int], None] = os._exit, stream=None, poll: float | None = None):
    super().__init__(name="freqnoise-watchdog", daemon=True)
    self.client, self.process, self.processes, self.timeout = client, process, processes, timeout
    self.exit, self.stream = exit, stream
    self.poll = poll or min(1.0, timeout / 6)
    self._stopped = threading.Event()

  def stop(self) -> None:
    self._stopped.set()

  def run(self) -> None:
    published, busy_until = None, 0.0
    while not self._stopped.wait(self.poll):
      phase = _phase
      if phase is not published:
        published = phase
        self._publish(phase)
      now = time.monotonic()
      if _compiling(phase.thread):
        busy_until = now
      waited = now - max(phase.since, busy_until)
      if waited <= self.timeout:
        continue
      phases = {**self._phases(), self.process: (phase.text(), phase.wall)}
      if phase.bounded or any(text != phase.text() for text, _ in phases.values()):
        self._fail(phase, waited, phases)
        return

  def _publish(self, phase: Phase) -> None:
    record = json.dumps({"phase": phase.text(), "since": phase.wall})
    try:
      self.client.key_value_set(f"{self.KEY}{self.process}", record, allow_overwrite=True)
    except Exception:  # the coordinator is gone: JAX's heartbeat ends this process soon
      pass

  def _phases(self) -> dict[int, tuple[str, float | None]]:
    """{process: (phase, since (wall clock))} as last published by every process."""
    out = {p: ("(no phase reported)", None) for p in range(self.processes)}
    try:
      entries = self.client.key_value_dir_get(self.KEY)
    except Exception:  # (the coordinator is gone)
      return out
    for key, value in entries:
      record = json.loads(value)
      out[int(key.rsplit("/", 1)[-1])] = (record["phase"], record["since"])
    return out

  def _fail(self, phase: Phase, waited: float, phases: dict[int, tuple[str, float | None]]):
    now = time.time()
    lines = "\n".join(f"  process {p}: {text}" + ("" if since is None else
                                                    f" (for {now - since:.0f} s)")
                      for p, (text, since) in sorted(phases.items()))
    alike = all(text == phase.text() for text, _ in phases.values())
    why = ("every process waits in the same step: a collective that never completes, or a step "
           "slower than the timeout (then raise config.distributed_timeout)" if alike else
           "a collective (an operation every process takes part in) was issued by some "
           "processes and not by the others, or in another order")
    print(f"error: process {self.process} waited {waited:.0f} s in {phase.text()!r}, more than "
          f"config.distributed_timeout={self.timeout:g} s. What each process was doing:\n{lines}"
          f"\nThat is, {why}; stopping this process (exit status {EXIT_STATUS}).",
          file=self.stream or sys.stderr, flush=True)
    self.exit(EXIT_STATUS)


# JAX's modules that trace, lower and compile a program: a thread in one of them works (the first
# call of a program, which can take minutes), it does not wait for the other processes.
_BUILDING = tuple(os.path.join("jax", "_src", *name.split("/")) for name in
                  ("compiler.py", "interpreters/partial_eval.py", "interpreters/mlir.py"))


def _compiling(thread: int) -> bool:
  """Whether `thread` is tracing, lowering or compiling a program (see _BUILDING)."""
  frame = sys._current_frames().get(thread)
  while frame is not None:
    if frame.f_code.co_filename.endswith(_BUILDING):
      return True
    frame = frame.f_back
  return False


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


def single_process(record: dict) -> dict:
  """A saved config (a parsed config.json) with the process layout of one process: the
  coordinator and process count of the launch that trained it are stale once it ended."""
  return {**record, **LAYOUT}
