"""Checkpoints on a full disk: refused before orbax starts when the state cannot fit, cleaned up
when a write fails half-way, reported in one line by the command line."""

import collections
import errno
import os
import subprocess
import sys

import pytest

from freqnoise import checkpoint
from freqnoise.checkpoint import DiskFullError
from freqnoise.train import train_and_evaluate
from tests.conftest import REPO
from tests.test_train import tiny

Usage = collections.namedtuple("Usage", "total used free")


def test_a_state_that_cannot_fit_is_refused_before_writing(tmp_path, monkeypatch):
  train_and_evaluate(tiny(num_steps=10, checkpoint_every=10), str(tmp_path))
  monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda path: Usage(10**6, 10**6, 1000))
  with pytest.raises(DiskFullError, match=r"no space left on device writing checkpoint step 20 in "
                     r".*checkpoints; no partial checkpoint folder was left and the checkpoint of "
                     r"step 10 is intact\. Free space .* rerun the same command to resume") as e:
    train_and_evaluate(tiny(num_steps=20, checkpoint_every=10), str(tmp_path))
  assert e.value.errno == errno.ENOSPC
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["10"]
  monkeypatch.undo()  # space again: the same command resumes from step 10
  assert train_and_evaluate(tiny(num_steps=20, checkpoint_every=10), str(tmp_path))["steps"] == 20


def test_a_write_failing_half_way_leaves_no_partial_folder(tmp_path, monkeypatch):
  """orbax reports a full disk from its writer threads as a ValueError carrying the OS message,
  with a `<step>.orbax-checkpoint-tmp` folder left behind."""
  def failing_save(self, step, *args, **kwargs):
    os.makedirs(os.path.join(self.directory, f"{step}.orbax-checkpoint-tmp", "default"))
    raise ValueError("RESOURCE_EXHAUSTED: Error writing ...: No space left on device "
                     "[os_error_code='28']")
  monkeypatch.setattr(checkpoint.ocp.CheckpointManager, "save", failing_save)
  with pytest.raises(DiskFullError, match="checkpoint step 10 .* no earlier checkpoint"):
    train_and_evaluate(tiny(num_steps=10, checkpoint_every=10), str(tmp_path))
  assert os.listdir(tmp_path / "checkpoints") == []


def test_other_save_errors_pass_through_after_the_cleanup(tmp_path, monkeypatch):
  def failing_save(self, step, *args, **kwargs):
    os.makedirs(os.path.join(self.directory, f"{step}.orbax-checkpoint-tmp"))
    raise ValueError("something else")
  monkeypatch.setattr(checkpoint.ocp.CheckpointManager, "save", failing_save)
  with pytest.raises(ValueError, match="^something else$"):
    train_and_evaluate(tiny(num_steps=10, checkpoint_every=10), str(tmp_path))
  assert os.listdir(tmp_path / "checkpoints") == []


def test_the_command_line_reports_a_full_disk_in_one_line(tmp_path):
  script = ("import collections, sys\n"
            "from freqnoise import checkpoint, main\n"
            "checkpoint.shutil.disk_usage = lambda p: collections.namedtuple('U', 'free')(0)\n"
            "main.run()\n")
  out = subprocess.run([sys.executable, "-c", script, "--config=configs/digits_mlp.py:tiny",
                        f"--workdir={tmp_path}"], cwd=REPO, env={**os.environ, "XLA_FLAGS": ""},
                       capture_output=True, text=True, timeout=300)
  assert out.returncode == 1
  assert out.stderr.strip().splitlines() == [
      f"error: no space left on device writing checkpoint step 10 in {tmp_path}/checkpoints; no "
      "partial checkpoint folder was left and no earlier checkpoint. Free space (or use a "
      "--workdir on a larger disk) and rerun the same command to resume"]


def test_init_from_another_model_is_one_clear_line(tmp_path):
  train_and_evaluate(tiny(num_steps=10, checkpoint_every=10), str(tmp_path / "old"))
  out = subprocess.run([sys.executable, "-m", "freqnoise.main", "--config=configs/digits_mlp.py:tiny",
                        f"--workdir={tmp_path / 'new'}", f"--config.init_from={tmp_path / 'old'}",
                        "--config.model.hidden=(7,)"], cwd=REPO,
                       env={**os.environ, "XLA_FLAGS": ""}, capture_output=True, text=True,
                       timeout=300)
  lines = out.stderr.strip().splitlines()
  assert out.returncode == 1 and len(lines) == 1, out.stderr[-2000:]
  assert lines[0].startswith(f"error: config.init_from={str(tmp_path / 'old')!r}: its latest "
                             "checkpoint cannot start this run")
  assert "needs the same model" in lines[0]
