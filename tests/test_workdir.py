"""The run folder's integrity: the config record and its comparison on resume, the workdir lock."""

import json
import os
import socket
import subprocess
import sys

import pytest

from freqnoise import workdir
from freqnoise.workdir import ConfigMismatchError, WorkdirLock, WorkdirLockedError
from tests.test_train import tiny


def record(**overrides):
  return json.loads(workdir.config_text(tiny(**overrides)))


def test_differences_list_old_and_new_values_and_skip_safe_fields():
  old = record()
  assert workdir.differences(old, record(num_steps=40, log_every=1, tensorboard=True)) == []
  assert workdir.differences(old, record(**{"optimizer.learning_rate": 0.5})) == [
      f"optimizer.learning_rate: {old['optimizer']['learning_rate']} -> 0.5"]
  assert workdir.differences(old, record(num_steps=10)) == ["num_steps: 20 -> 10 (may only grow)"]
  # a tuple saved as a JSON list compares equal to the same tuple; a changed one does not
  assert workdir.differences(old, record(**{"model.hidden": tuple(old["model"]["hidden"])})) == []
  assert workdir.differences(old, record(**{"model.hidden": (7,)})) == [
      f"model.hidden: {json.dumps(old['model']['hidden'])} -> [7]"]


def test_fields_added_after_the_run_count_only_when_set():
  old = record()
  del old["init_from"]
  assert workdir.differences(old, record()) == []
  assert workdir.differences(old, record(init_from="/x")) == ['init_from: (absent) -> "/x"']
  # a block added to the configs later: absent = off, so it counts only once switched on
  for field in [f for f in list(old) if f == "adversarial"]:
    del old[field]
  assert workdir.differences(old, record()) == []
  assert "adversarial.epsilon: (absent) -> 0.3" in workdir.differences(
      old, record(**{"adversarial.epsilon": 0.3}))


def test_a_run_recorded_before_config_quant_resumes_while_it_is_off():
  old = record()
  del old["quant"]
  assert workdir.differences(old, record()) == []
  assert workdir.differences(old, record(**{"quant.dac_mode": "tracked"})) == []  # still off
  assert "quant.adc_bits: (absent) -> 4" in workdir.differences(old, record(**{"quant.adc_bits": 4}))
  assert 'quant.preset: (absent) -> "aihwkit"' in workdir.differences(
      old, record(**{"quant.preset": "aihwkit"}))


def test_fingerprint_ignores_safe_fields_only():
  base = workdir.fingerprint(record())
  assert len(base) == 64 and base == workdir.fingerprint(record(num_steps=99, eval_every=3))
  assert base != workdir.fingerprint(record(seed=1))


def test_changed_config_is_refused_only_when_a_checkpoint_exists(tmp_path):
  workdir.record_config(str(tmp_path), workdir.config_text(tiny()))
  changed = tiny(seed=5)
  assert workdir.check_config(changed, str(tmp_path)) == workdir.config_text(changed)  # none yet
  os.makedirs(tmp_path / "checkpoints" / "10")
  with pytest.raises(ConfigMismatchError, match=r"(?s)seed: 0 -> 5.*Nothing was written.*"
                                                r"--config.init_from="):
    workdir.check_config(changed, str(tmp_path))


def test_a_replaced_start_takes_its_input_statistics_with_it(tmp_path, capsys):
  """A start killed before its first checkpoint left digits' statistics; a new config (MNIST, say)
  must refit its own rather than reuse them."""
  workdir.record_config(str(tmp_path), workdir.config_text(tiny()))
  (tmp_path / "input_stats.npz").write_bytes(b"stale")
  workdir.check_config(tiny(**{"data.limit_train": 100}), str(tmp_path))
  assert not (tmp_path / "input_stats.npz").exists()
  assert "and its input statistics" in capsys.readouterr().out


def test_lock_is_exclusive_and_released(tmp_path):
  lock = WorkdirLock(str(tmp_path))
  lock.acquire()
  holder = json.loads((tmp_path / ".lock").read_text())
  assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
  with pytest.raises(WorkdirLockedError, match=rf"in use by process {os.getpid()} on "
                                               rf"{socket.gethostname()} \(started "):
    WorkdirLock(str(tmp_path)).acquire()
  lock.release()
  assert not (tmp_path / ".lock").exists()


def test_stale_lock_is_taken_over(tmp_path, capsys):
  dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                        capture_output=True, text=True, check=True)
  pid = int(dead.stdout)
  (tmp_path / ".lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname(),
                                              "started": "2020-01-01T00:00:00"}))
  lock = WorkdirLock(str(tmp_path))
  lock.acquire()
  assert f"taking over the stale lock of process {pid}" in capsys.readouterr().out
  assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
  lock.release()


def test_a_lock_of_another_host_is_never_stale(tmp_path):
  (tmp_path / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "x"}))
  with pytest.raises(WorkdirLockedError, match="process 1 on elsewhere"):
    WorkdirLock(str(tmp_path)).acquire()


def test_release_keeps_a_lock_taken_over_by_another_run(tmp_path):
  lock = WorkdirLock(str(tmp_path))
  lock.acquire()
  (tmp_path / ".lock").write_text(json.dumps({"pid": 1, "host": "other", "started": "y"}))
  lock.release()
  assert (tmp_path / ".lock").exists()
