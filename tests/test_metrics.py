"""The metrics writer's records (strict JSON lines, resumable after a kill); the progress line."""

import json
import math

import numpy as np
import pytest

from freqnoise.metrics import MetricWriter, Progress, read_metrics, strict_json


def test_metric_writer_round_trip(tmp_path):
  w = MetricWriter(str(tmp_path), tensorboard=True)
  w.write(5, "train", {"loss": np.float32(0.5)})
  w.write(10, "test", {"accuracy": 0.25})
  w.close()
  assert read_metrics(str(tmp_path)) == [{"step": 5, "split": "train", "loss": 0.5},
                                         {"step": 10, "split": "test", "accuracy": 0.25}]
  assert any((tmp_path / "tensorboard").iterdir())
  silent = MetricWriter(str(tmp_path / "other"), enabled=False)
  silent.write(1, "train", {"loss": 1.0})
  assert not (tmp_path / "other").exists()


def test_progress_line_reports_rate_and_eta(monkeypatch):
  clock = iter([100.0, 110.0, 110.0])
  monkeypatch.setattr("freqnoise.metrics.time.perf_counter", lambda: next(clock))
  p = Progress(total_steps=1000, start_step=0)
  p.mark_compiled(1)
  line = p.line(201, {"loss": 0.5})
  assert line == "step 201/1000 | loss 0.5 | 20.0 steps/s | ETA 0:00:40"


def test_progress_rate_leaves_out_eval_and_checkpoint_time_and_eta_rounds_up(monkeypatch):
  clock = iter([100.0, 110.0, 110.0])
  monkeypatch.setattr("freqnoise.metrics.time.perf_counter", lambda: next(clock))
  p = Progress(total_steps=1000, start_step=0)
  p.mark_compiled(1)
  p.exclude(6.0)  # an eval and a save took 6 of the 10 seconds: 200 steps in 4 s of training
  assert p.line(201, {"loss": 0.5}) == "step 201/1000 | loss 0.5 | 50.0 steps/s | ETA 0:00:16"
  clock = iter([0.0, 100.0])
  fast = Progress(total_steps=100_000, start_step=0)
  fast.mark_compiled(0)  # 99,999 steps in 100 s; 1 step (1 ms) left: ETA 1 s, not 0:00:00
  assert fast.line(99_999, {}).endswith("| ETA 0:00:01")


def test_strict_json_writes_null_for_non_finite_values():
  value = {"a": float("nan"), "b": [1.5, float("inf"), (-math.inf, 2)], "c": np.float64("nan"),
           "d": "NaN", "e": 3}
  text = strict_json(value)
  assert json.loads(text, parse_constant=pytest.fail) == {
      "a": None, "b": [1.5, None, [None, 2]], "c": None, "d": "NaN", "e": 3}
  assert strict_json({"x": 1.0}, indent=2) == '{\n  "x": 1.0\n}'


def test_non_finite_metrics_are_null_in_the_file_and_nan_when_read(tmp_path):
  w = MetricWriter(str(tmp_path), tensorboard=False)
  w.write(1, "test", {"loss": float("nan"), "accuracy": 0.5})
  assert (tmp_path / "metrics.jsonl").read_text() == (
      '{"step": 1, "split": "test", "loss": null, "accuracy": 0.5}\n')
  [row] = read_metrics(str(tmp_path))
  assert math.isnan(row["loss"]) and row["accuracy"] == 0.5


def _rows(*steps):
  return "".join(json.dumps({"step": s, "split": "train", "loss": s / 10}) + "\n" for s in steps)


def test_partial_last_row_after_a_kill_is_dropped_not_glued(tmp_path):
  """kill -9 in the middle of a write left '{"step": 30, "spl'; the resumed run's next row used to
  be glued to it and read_metrics raised."""
  path = tmp_path / "metrics.jsonl"
  path.write_text(_rows(10, 20) + '{"step": 30, "spl')
  assert [r["step"] for r in read_metrics(str(tmp_path))] == [10, 20]  # readable as it is
  w = MetricWriter(str(tmp_path), tensorboard=False, resume_step=20)
  assert path.read_text() == _rows(10, 20)
  w.write(30, "train", {"loss": 3.0})
  assert path.read_text() == _rows(10, 20, 30)
  assert not list(tmp_path.glob("*.tmp"))


def test_resumed_writer_drops_rows_after_the_resume_step_and_skips_logged_ones(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text(_rows(10, 20, 30, 40))
  w = MetricWriter(str(tmp_path), tensorboard=False, resume_step=20)
  assert path.read_text() == _rows(10, 20)  # the run resumed at 20 logs 30 and 40 again
  w.write(20, "train", {"loss": 99.0})  # already in the file: not a second row
  w.write(20, "test", {"loss": 2.0})    # another split at that step: a new row
  w.write(30, "train", {"loss": 3.0})
  assert [(r["step"], r["split"], r["loss"]) for r in read_metrics(str(tmp_path))] == [
      (10, "train", 1.0), (20, "train", 2.0), (20, "test", 2.0), (30, "train", 3.0)]
  inode = path.stat().st_ino
  MetricWriter(str(tmp_path), tensorboard=False, resume_step=30)  # nothing to drop: not rewritten
  assert path.stat().st_ino == inode


def test_malformed_complete_row_names_the_file_and_line(tmp_path):
  (tmp_path / "metrics.jsonl").write_text(_rows(10) + "garbage\n" + _rows(20))
  with pytest.raises(ValueError, match=r"metrics\.jsonl:2: not a JSON row"):
    read_metrics(str(tmp_path))
  with pytest.raises(ValueError, match=r"metrics\.jsonl:2: not a JSON row"):
    MetricWriter(str(tmp_path), tensorboard=False, resume_step=20)
