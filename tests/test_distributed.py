"""Several processes for real: `jax.distributed` over gloo on 127.0.0.1, each process a subprocess
with 2 fake CPU devices (XLA_FLAGS set per subprocess), started by experiments/multihost/run_local.sh
as a user would. The 1-process references run here, on the suite's 4 fake devices: 2 x 2 and 1 x 4
are the same global mesh size, so the same seed must give the same run.

Every subprocess has a timeout and is killed (with its process group) when a test fails.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from ml_collections import ConfigDict

from configs import digits_mlp, noisy_mnist
from freqnoise import distributed, evaluators
from freqnoise.experiment import Experiment
from freqnoise.metrics import read_metrics
from freqnoise.train import train_and_evaluate
from tests.conftest import REPO

RUN_LOCAL = REPO / "experiments" / "multihost" / "run_local.sh"
TIMEOUT_S = 180  # per launch; a hung collective fails the test instead of CI
# The digits MLP with its dropout on (the draws that used to depend on the process layout), long
# enough for a process to be killed between two checkpoints.
MLP = "configs/digits_mlp.py:tiny"
MLP_FLAGS = {"num_steps": 60, "log_every": 20, "eval_every": 60, "checkpoint_every": 20,
             "tensorboard": True}
CNN = "configs/noisy_mnist.py:snr=inf,tiny"  # LeNet, dropout 0.25, Monte Carlo at the end


def env(devices: int = 2) -> dict:
  return {**os.environ, "PYTHON": sys.executable, "LOCAL_DEVICES": str(devices), "STOP_GRACE_S": "3",
          "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
          "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu"}


def flags(values: dict) -> list[str]:
  return [f"--config.{k}={v}" for k, v in values.items()]


def start(n: int, config: str, workdir, *extra: str) -> tuple[subprocess.Popen, str]:
  """run_local.sh N CONFIG WORKDIR ... in its own process group; (process, its stderr's file)."""
  err = f"{workdir}.launcher.err"
  with open(err, "w") as f:
    proc = subprocess.Popen(["bash", str(RUN_LOCAL), str(n), config, str(workdir), *extra],
                            cwd=REPO, env=env(), stdout=subprocess.PIPE, stderr=f, text=True,
                            start_new_session=True)
  return proc, err


def read(path) -> str:
  with open(path) as f:
    return f.read()


def finish(proc: subprocess.Popen, timeout: float = TIMEOUT_S) -> str:
  try:
    out, _ = proc.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    pytest.fail(f"the processes did not finish within {timeout} s")
  return out


def launch(n: int, config: str, workdir, *extra: str) -> str:
  """Runs to the end; stdout of process 0. Fails the test with every process's output otherwise."""
  proc, err = start(n, config, workdir, *extra)
  out = finish(proc)
  if proc.returncode != 0:
    logs = "".join(read(workdir.parent / f)[-3000:] for f in sorted(os.listdir(workdir.parent))
                   if f.startswith(workdir.name + ".process_"))
    pytest.fail(f"exit {proc.returncode}\n{out[-3000:]}\n{read(err)[-3000:]}\n{logs}")
  return out


def tiny_mlp():
  c = digits_mlp.get_config("tiny")
  c.update(MLP_FLAGS)
  return c


def params_of(workdir, config):
  return Experiment(config, str(workdir)).restore()


def assert_same_state(a, b, atol):
  for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=0, atol=atol)


def train_losses(workdir) -> list[float]:
  return [r["loss"] for r in read_metrics(str(workdir)) if r["split"] == "train"]


@pytest.fixture(scope="module")
def mlp_runs(tmp_path_factory):
  """The MLP trained by 2 processes x 2 devices, and by this process on 4 devices."""
  root = tmp_path_factory.mktemp("mlp")
  stdout = launch(2, MLP, root / "two", *flags(MLP_FLAGS))
  one = train_and_evaluate(tiny_mlp(), str(root / "one"))
  return root, stdout, one


def test_two_processes_train_the_mlp_as_one_process_does(mlp_runs):
  root, _, one = mlp_runs
  two = json.loads((root / "two" / "final_metrics.json").read_text())
  assert two["steps"] == one["steps"] == 60
  assert abs(two["test_loss"] - one["test_loss"]) <= 1e-5, (two["test_loss"], one["test_loss"])
  np.testing.assert_allclose(train_losses(root / "two"), train_losses(root / "one"), atol=1e-5)
  # the checkpoint written by 2 processes restores in 1 process (here): the same parameters
  assert_same_state(params_of(root / "two", tiny_mlp()), params_of(root / "one", tiny_mlp()), 1e-5)


def test_only_process_zero_writes_the_run_files(mlp_runs):
  root, stdout, _ = mlp_runs
  names = sorted(os.listdir(root / "two"))
  assert names == ["checkpoints", "config.json", "final_metrics.json", "fingerprint.txt",
                   "input_stats.npz", "metrics.jsonl", "tensorboard"], names
  assert len(os.listdir(root / "two" / "tensorboard")) == 1  # one event file
  rows = [(r["step"], r["split"]) for r in read_metrics(str(root / "two"))]
  assert rows == [(20, "train"), (40, "train"), (60, "train"), (60, "test")]  # once each
  assert sorted(os.listdir(root / "two" / "checkpoints")) == ["20", "40", "60"]
  other = (root / "two.process_1.log").read_text()
  assert "step 20/60" in stdout and "step 20/60" not in other  # progress lines: process 0 only


def test_one_process_checkpoint_resumes_in_two_processes(mlp_runs, tmp_path):
  _, _, one = mlp_runs
  first = train_and_evaluate(tiny_mlp(), str(tmp_path / "run"), stop_after=20)
  assert first["steps"] == 20
  stdout = launch(2, MLP, tmp_path / "run", *flags(MLP_FLAGS))
  assert "resuming at step 20 of 60" in stdout
  resumed = json.loads((tmp_path / "run" / "final_metrics.json").read_text())
  assert abs(resumed["test_loss"] - one["test_loss"]) <= 1e-5


def test_a_killed_process_restarts_both_from_the_same_step(mlp_runs, tmp_path):
  root, _, _ = mlp_runs
  work = tmp_path / "run"
  proc, err = start(2, MLP, work, *flags(MLP_FLAGS))
  try:
    deadline = time.monotonic() + TIMEOUT_S
    while not (work / "checkpoints" / "20").is_dir():  # (orbax renames a finished step into place)
      assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint at step 20"
      time.sleep(0.02)
    victim = int(re.search(r"process 1: pid (\d+)", read(err)).group(1))
    os.kill(victim, signal.SIGKILL)
  except BaseException:
    os.killpg(proc.pid, signal.SIGKILL)
    raise
  finish(proc)
  assert proc.returncode != 0  # the launcher reports the failure and stops process 0
  steps = sorted(int(s) for s in os.listdir(work / "checkpoints") if s.isdigit())
  assert steps and steps[-1] < 60, steps
  stdout = launch(2, MLP, work, *flags(MLP_FLAGS))
  assert f"resuming at step {steps[-1]} of 60" in stdout
  straight = json.loads((root / "two" / "final_metrics.json").read_text())
  resumed = json.loads((work / "final_metrics.json").read_text())
  for k in ("test_loss", "test_accuracy", "steps"):
    assert resumed[k] == straight[k], k  # bitwise: the same layout, resumed
  assert train_losses(work) == train_losses(root / "two")
  assert_same_state(params_of(work, tiny_mlp()), params_of(root / "two", tiny_mlp()), 0)


def test_two_processes_train_the_cnn_and_run_monte_carlo_as_one_process(tmp_path):
  launch(2, CNN, tmp_path / "two")
  config = noisy_mnist.get_config("snr=inf,tiny")
  config.evals = ConfigDict()  # (its Monte Carlo is compared below, on the same checkpoint)
  one = train_and_evaluate(config, str(tmp_path / "one"))
  two = json.loads((tmp_path / "two" / "final_metrics.json").read_text())
  assert abs(two["test_loss"] - one["test_loss"]) <= 1e-5
  assert_same_state(params_of(tmp_path / "two", config), params_of(tmp_path / "one", config), 1e-5)
  # The Monte Carlo sweep of 2 processes equals this process's on the same checkpoint and keys.
  quiet = noisy_mnist.get_config("snr=inf,tiny")
  quiet.evals.montecarlo.output = ""  # (leave the 2-process run's file as it is)
  experiment = Experiment(quiet, str(tmp_path / "two"))
  here = evaluators.run(experiment, experiment.restore(), "montecarlo")
  assert here == {k.split("/", 1)[1]: v for k, v in two.items() if k.startswith("montecarlo/")}
  assert len(here) == 6 * 7 and here["snr_0/mean"] < here["snr_inf/mean"]
  saved = json.loads((tmp_path / "two" / "montecarlo.json").read_text())
  assert len(saved["accuracy"]) == 6 and len(saved["accuracy"][0]) == 4


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def run_processes(argvs: list[list[str]], timeout: float = 60) -> list[subprocess.CompletedProcess]:
  """Starts every process at once (without the launcher, which would stop the rest after the
  first failure) and waits for each; a process still running after `timeout` s is killed."""
  procs = [subprocess.Popen([sys.executable, "-m", "freqnoise.main", *argv], cwd=REPO, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for argv in argvs]
  out = []
  for p in procs:
    try:
      o, e = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      pytest.fail("a process hung instead of failing")
    out.append(subprocess.CompletedProcess(p.args, p.returncode, o, e))
  return out


@pytest.mark.parametrize("case", ["wrong_coordinator", "batch_per_process", "batch_per_device"])
def test_bad_settings_fail_in_every_process_within_seconds(tmp_path, case):
  port = free_port()
  common = [f"--config={MLP}", f"--workdir={tmp_path / 'run'}", "--config.num_processes=2",
            "--config.distributed_timeout=3"]
  address = lambda i: f"127.0.0.1:{port if case != 'wrong_coordinator' or i == 0 else free_port()}"
  batch = {"wrong_coordinator": 64, "batch_per_process": 63, "batch_per_device": 66}[case]
  t0 = time.monotonic()
  results = run_processes([[*common, f"--config.coordinator_address={address(i)}",
                            f"--config.process_id={i}", f"--config.data.batch_size={batch}"]
                           for i in range(2)])
  elapsed = time.monotonic() - t0
  expected = {"wrong_coordinator": r"config\.coordinator_address='127\.0\.0\.1:\d+' within "
                                   r"config\.distributed_timeout=3 s",
              "batch_per_process": r"config\.data\.batch_size=63 is not divisible by "
                                   r"config\.num_processes=2",
              "batch_per_device": r"config\.data\.batch_size=66 is not divisible by the 4 "
                                  r"devices"}[case]
  for i, r in enumerate(results):
    assert r.returncode != 0, f"process {i} succeeded"
    assert re.search(expected, r.stderr), f"process {i}:\n{r.stderr[-2000:]}"
  assert elapsed < 45, elapsed
  assert not (tmp_path / "run" / "checkpoints").exists()


# ----------------------------------------------------------------------------- no subprocess
def test_initialize_passes_the_settings_and_a_timeout(monkeypatch):
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
  distributed.initialize(ConfigDict({"num_processes": 1}))
  assert calls == []
  monkeypatch.setattr(distributed, "wait_for_coordinator", lambda *a: None)
  distributed.initialize(ConfigDict({"num_processes": 2, "coordinator_address": "localhost:1234",
                                     "process_id": 1, "distributed_timeout": 7}))
  assert calls == [{"num_processes": 2, "coordinator_address": "localhost:1234", "process_id": 1,
                    "initialization_timeout": 7}]
  distributed.initialize(ConfigDict({"num_processes": 4, "coordinator_address": "",
                                     "process_id": -1}))
  assert calls[-1] == {"num_processes": 4, "initialization_timeout": 300}  # rest: cluster env


@pytest.mark.parametrize("fields,message", [
    ({"num_processes": 0}, r"config\.num_processes must be a positive integer, got 0"),
    ({"process_id": 2}, r"config\.process_id=2 must be in \[0, 2\) for config\.num_processes=2"),
    ({"distributed_timeout": 0}, r"config\.distributed_timeout must be a positive number"),
    ({"coordinator_address": "10.0.0.1"}, r"config\.coordinator_address='10\.0\.0\.1' must be "
                                          r"host:port"),
    ({"data": {"batch_size": 64, "eval_batch_size": 9}},
     r"config\.data\.eval_batch_size=9 is not divisible by config\.num_processes=2"),
])
def test_process_settings_are_checked_before_joining(monkeypatch, fields, message):
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: pytest.fail("joined"))
  config = ConfigDict({"num_processes": 2, "process_id": 0, "data": {"batch_size": 64}})
  config.update(fields)
  with pytest.raises(ValueError, match=message):
    distributed.initialize(config)


def test_unreachable_coordinator_is_a_clear_error_naming_the_settings():
  config = ConfigDict({"num_processes": 2, "process_id": 1, "distributed_timeout": 1,
                       "coordinator_address": f"127.0.0.1:{free_port()}"})
  t0 = time.monotonic()
  with pytest.raises(distributed.DistributedInitError, match=r"process 1 of config\.num_processes"
                     r"=2 could not reach the coordinator at config\.coordinator_address="):
    distributed.initialize(config)
  assert time.monotonic() - t0 < 5


def test_run_local_needs_its_arguments():
  r = subprocess.run(["bash", str(RUN_LOCAL), "two", "configs/digits_mlp.py"], capture_output=True,
                     text=True, timeout=30)
  assert r.returncode == 2 and "usage:" in r.stderr
