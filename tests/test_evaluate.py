"""freqnoise.evaluate: a restored checkpoint evaluated by the CLI gives exactly the numbers of the
end-of-training evaluation (same key, experiment.key(name)); the CLI still runs with --snrs_db /
--num_draws and prints its table; runs saved with the old config.evals shape still load. It works
on every run the configs make: a language model with its perplexity evaluator, a detector with
COCO AP, a clean-trained run with a default SNR grid (said so); a second evaluation never
overwrites the first's output silently; mistakes in the request are one line."""

import json
import math
import os
import re
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from configs import dni_ptb, maskrcnn_coco
from configs.digits_mlp import get_config
from freqnoise import evaluators
from freqnoise.checkpoint import Checkpointer
from freqnoise.evaluate import (DEFAULT_SNRS_DB, default_eval, evaluate_checkpoint, evaluate_run,
                                load_run_config, prepare)
from freqnoise.evaluators.table import format_table, legend
from freqnoise.experiment import Experiment
from tests.conftest import REPO, write_tiny_ptb

LEGEND = legend(("mean", "ci95", "std", "p2.5", "p97.5", "vote_majority", "vote_mean_prob"))


class _Writer:
  def write(self, step, name, scalars):
    pass


def _save_run(c, workdir: str):
  """A run folder as the trainer leaves it (config.json, input statistics, a checkpoint at step 0)
  of the config `c`; returns its (Experiment, state)."""
  experiment = Experiment(c, workdir)
  state = experiment.initial_state()
  checkpointer = Checkpointer(workdir, every=1)
  checkpointer.maybe_save(0, state, force=True)
  checkpointer.close()
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(c.to_json_best_effort(indent=2))
  return experiment, state


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
  """A run folder as the trainer leaves it: config.json, input statistics, a checkpoint, and the
  end-of-training evaluator results."""
  workdir = str(tmp_path_factory.mktemp("run"))
  c = get_config("tiny")
  c.eval_noise.snr_db = 0.0
  c.evals = ml_collections.ConfigDict({"mc": {
      "type": "montecarlo", "snrs_db": (0.0, 10.0, math.inf), "num_draws": 4, "limit": 100}})
  experiment, state = _save_run(c, workdir)
  final = evaluators.run_configured(experiment, state, _Writer(), 0)
  return workdir, {k.split("/", 1)[1]: v for k, v in final.items()}


def _cli(*args):
  env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
  return subprocess.run([sys.executable, "-m", "freqnoise.evaluate", *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)


def test_checkpoint_evaluation_equals_the_end_of_training_one(saved_run, tmp_path):
  workdir, final = saved_run
  config = load_run_config(workdir)
  assert config.evals.mc.snrs_db == "0.0,10.0,inf" and config.evals.mc.split == "test"
  config.evals.mc.output = str(tmp_path / "again.json")  # an absolute output path, outside
  again, step = evaluate_checkpoint(config, workdir)
  assert again == final and step == 0
  assert format_table(again).splitlines()[3].split()[0] == "inf"
  assert os.path.isfile(tmp_path / "again.json")
  assert not os.path.exists(os.path.join(workdir, "again.json"))


def test_table_has_a_legend_and_the_checkpoint_step():
  scalars = {"snr_0.0/mean": 0.5, "snr_0.0/ci95": 0.1, "snr_0.0/vote_majority": 0.6}
  lines = format_table(scalars, step=42).splitlines()
  assert lines[0].split() == ["SNR", "dB", "mean", "ci95", "major."]
  assert lines[1].split() == ["0.0", "0.5000", "0.1000", "0.6000"]
  assert lines[2:-1] == legend(("mean", "ci95", "vote_majority")).splitlines()
  assert all(f"{m}:" in LEGEND for m in ("mean", "ci95", "std", "p2.5", "p97.5", "major.", "meanp"))
  text = " ".join(lines[2:-1])
  assert "std:" not in text and "meanp:" not in text and "confidence interval" in text
  assert lines[-1] == "checkpoint step 42"


@pytest.fixture
def no_experiment(monkeypatch):
  """Makes building an Experiment (which reads data and writes input_stats.npz) an error."""
  def forbidden(self, *args, **kwargs):
    raise AssertionError("an Experiment was built (data read) before the request was checked")
  monkeypatch.setattr(Experiment, "__init__", forbidden)


def _files(folder):
  return {os.path.join(root, f) for root, _, files in os.walk(folder) for f in files} | {
      os.path.join(root, d) for root, dirs, _ in os.walk(folder) for d in dirs}


@pytest.mark.parametrize("field,value,match", [("num_draws", 0, "num_draws"),
                                               ("snrs_db", "nan", "snrs_db")])
def test_bad_requests_fail_before_any_data_is_read(saved_run, no_experiment, field, value, match):
  workdir, _ = saved_run
  config = load_run_config(workdir)
  config.evals.mc[field] = value
  before = _files(workdir)
  with pytest.raises(ValueError, match=match):
    evaluate_run(config, workdir)
  assert _files(workdir) == before


def test_a_workdir_without_checkpoints_is_left_untouched(saved_run, tmp_path):
  workdir, _ = saved_run
  with open(os.path.join(workdir, "config.json")) as src, open(tmp_path / "config.json", "w") as f:
    f.write(src.read())
  config = load_run_config(str(tmp_path))
  before = _files(tmp_path)
  with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "checkpoints"))):
    evaluate_run(config, str(tmp_path))
  assert _files(tmp_path) == before  # no input_stats.npz, no checkpoints/ folder


def test_an_unwritable_output_fails_before_computing(saved_run, no_experiment, monkeypatch):
  workdir, _ = saved_run
  config = load_run_config(workdir)
  before = _files(workdir)
  # Under a regular file: unwritable even for root.
  config.evals.mc.output = "config.json/mc.json"
  hint = r".*--config\.evals\.mc\.output="
  with pytest.raises(NotADirectoryError, match=r"config\.json/mc\.json" + hint):
    evaluate_run(config, workdir)
  # A read-only run folder (simulated: chmod does not stop root).
  config.evals.mc.output = "mc.json"
  real_access = os.access
  monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.path.abspath(p) ==
                      os.path.abspath(workdir) and mode & os.W_OK else real_access(p, mode, **kw))
  with pytest.raises(PermissionError, match=r"mc\.json.*not writable" + hint):
    evaluate_run(config, workdir)
  assert _files(workdir) == before


def test_cli_runs_with_snrs_and_draws(saved_run):
  workdir, _ = saved_run
  out = _cli(f"--workdir={workdir}", "--snrs_db=0", "--num_draws=4",
             "--config.evals.mc.output=cli.json")
  assert out.returncode == 0, out.stderr[-3000:]
  lines = out.stdout.splitlines()
  assert lines[0] == "evaluator mc (type montecarlo), the run's own (--eval=NAME runs another)"
  assert lines[1] == "montecarlo: 1 SNR x 4 noise draws on 100 test examples"
  assert re.fullmatch(r"draw 4/4 \| snr 0 \| mean 0\.\d+ \| [\d.]+ draws/s \| ETA 0:00:00", lines[2])
  header, row = lines[3:5]
  assert header.split() == ["SNR", "dB", "mean", "ci95", "std", "p2.5", "p97.5", "major.", "meanp"]
  assert row.split()[0] == "0"
  assert LEGEND in out.stdout and "checkpoint step 0" in out.stdout
  with open(os.path.join(workdir, "cli.json")) as f:
    assert json.load(f)["snrs_db"] == [0.0]


def test_old_config_shape_and_runs_without_a_montecarlo_block_load(tmp_path):
  old = {"seed": 0, "evals": ["montecarlo"], "montecarlo": {"num_draws": 8, "snrs_db": [0.0]},
         "eval_noise": {"snr_db": 0.0}}
  with open(tmp_path / "config.json", "w") as f:
    json.dump(old, f)
  config = load_run_config(str(tmp_path))
  assert "montecarlo" not in config  # the old top-level block moved into config.evals
  assert config.evals.montecarlo.type == "montecarlo" and config.evals.montecarlo.num_draws == 8
  assert config.evals.montecarlo.snrs_db == "0.0" and config.eval_noise.power == "per_example"
  with open(tmp_path / "config.json", "w") as f:
    json.dump({"seed": 0, "evals": {}}, f)
  config = load_run_config(str(tmp_path))
  assert config.evals.montecarlo.num_draws == 16  # the evaluator's own default


@pytest.fixture(scope="module")
def ptb_run(tmp_path_factory):
  """A clean-trained PTB language model's run folder (configs/dni_ptb.py:tiny: its LSTM state
  carried across batches, no eval noise, no config.evals) and its end-of-training perplexity."""
  data = tmp_path_factory.mktemp("ptb")
  write_tiny_ptb(data)
  c = dni_ptb.get_config("tiny")
  c.data.source = f"ptb:{data}"
  workdir = str(tmp_path_factory.mktemp("lm"))
  experiment, state = _save_run(c, workdir)
  return workdir, evaluators.SplitEvaluator(experiment)(state)["perplexity"]


def test_cli_evaluates_a_language_model_run_as_is(ptb_run):
  """A bare --workdir on the PTB model (montecarlo refuses its carried state; the run has no
  mc_perplexity block: each pointed to the other) runs mc_perplexity on the default SNR grid,
  says so, shows progress with an ETA, keeps the end of training's output, and its noiseless row
  is the end-of-training perplexity."""
  workdir, perplexity = ptb_run
  earlier = os.path.join(workdir, "mc_perplexity.json")
  with open(earlier, "w") as f:
    f.write("{}")  # as if the end of training or an earlier evaluation wrote it
  out = _cli(f"--workdir={workdir}", "--num_draws=2")
  assert out.returncode == 0, out.stderr[-3000:]
  lines = out.stdout.splitlines()
  assert lines[:4] == [
      "evaluator mc_perplexity (type mc_perplexity), the run's own (--eval=NAME runs another)",
      f"note: no SNR grid given and the run has no eval noise: evaluating at {DEFAULT_SNRS_DB} dB "
      "(choose with --snrs_db=...)",
      "note: mc_perplexity.json exists (the end of training or an earlier evaluation wrote it): "
      "writing mc_perplexity-2.json (--overwrite replaces mc_perplexity.json)",
      "mc_perplexity: 6 SNRs x 2 noise draws on 8 test rows"]
  snrs = ["-5", "0", "5", "10", "20", "inf"]
  progress = [line.split(" | ") for line in lines if line.startswith("draw ")]
  assert [p[:2] for p in progress] == [[f"draw {2 * i + 2}/12", f"snr {s}"]
                                       for i, s in enumerate(snrs)]
  assert all(p[2].startswith("perplexity ") and re.fullmatch(r"ETA \d+:\d\d:\d\d", p[-1])
             for p in progress)
  header = lines.index(next(line for line in lines if line.startswith("SNR dB")))
  assert lines[header].split() == ["SNR", "dB", "mean", "std"]
  rows = [line.split() for line in lines[header + 1:header + 7]]
  assert [r[0] for r in rows] == snrs
  assert rows[-1][1:] == [f"{perplexity:.4f}", "0.0000"]
  assert lines[-1] == f"written: {workdir}/mc_perplexity-2.json"
  with open(earlier) as f:
    assert f.read() == "{}"
  with open(os.path.join(workdir, "mc_perplexity-2.json")) as f:
    assert np.shape(json.load(f)["perplexity"]) == (6, 2)


def test_montecarlo_on_a_language_model_is_refused_before_any_data_is_read(ptb_run, no_experiment):
  workdir, _ = ptb_run
  config = load_run_config(workdir, "montecarlo")  # --eval=montecarlo: a block of that type added
  assert default_eval(config) == "mc_perplexity"
  with pytest.raises(ValueError, match=r"carries its recurrent state .* --eval=mc_perplexity"):
    evaluate_run(config, workdir, "montecarlo")


def test_a_detector_run_is_scored_by_its_coco_block(tmp_path, no_experiment):
  """A Mask R-CNN run: no Monte Carlo block is added to block `--eval=coco` (it failed on the
  detector's noiseless eval config); SNR flags are one-line errors naming what to set."""
  from tests.detection.test_training import write_yolo_seg
  c = maskrcnn_coco.get_config("scale=tiny")
  c.data.source = f"yolo-seg:{write_yolo_seg(tmp_path / 'shapes')}"
  c.num_devices = 1  # its batches of 2, as tests/detection train it
  workdir = tmp_path / "run"
  os.makedirs(workdir / "checkpoints" / "4")
  with open(workdir / "config.json", "w") as f:
    f.write(c.to_json_best_effort(indent=2))
  config = load_run_config(str(workdir))
  assert list(config.evals) == ["coco"] and default_eval(config) == "coco"
  assert config.evals.coco.output == "detections_{split}.png"
  (workdir / "detections_test.png").touch()  # the end of training's picture
  assert prepare(config, str(workdir), "coco") == [
      "detections_test.png exists (the end of training or an earlier evaluation wrote it): "
      "writing detections_test-2.png (--overwrite replaces detections_test.png)"]
  with pytest.raises(AssertionError, match="an Experiment was built"):
    evaluate_run(config, str(workdir))  # every check passed; the data would be read next
  for flag in ("snrs_db", "num_draws"):
    with pytest.raises(ValueError, match=rf"--{flag} does not apply to config\.evals\.coco .*"
                                         r"--config\.eval_noise\.snr_db="):
      prepare(config, str(workdir), "coco", **{flag: "0" if flag == "snrs_db" else 2})


def _run_copy(saved_run, folder) -> str:
  """`folder` holding only the saved run's config.json (enough for load_run_config/prepare)."""
  workdir, _ = saved_run
  with open(os.path.join(workdir, "config.json")) as src, open(folder / "config.json", "w") as f:
    f.write(src.read())
  return str(folder)


def test_a_second_evaluation_never_overwrites_the_first(saved_run, tmp_path):
  workdir = _run_copy(saved_run, tmp_path)
  for name in ("montecarlo.json", "montecarlo-2.json"):
    (tmp_path / name).touch()
  config = load_run_config(workdir)
  assert prepare(config, workdir, "mc") == [
      "montecarlo.json exists (the end of training or an earlier evaluation wrote it): writing "
      "montecarlo-3.json (--overwrite replaces montecarlo.json)"]
  assert config.evals.mc.output == "montecarlo-3.json"
  config = load_run_config(workdir)
  assert prepare(config, workdir, "mc", overwrite=True) == []
  assert config.evals.mc.output == "montecarlo.json"
  with pytest.raises(FileExistsError, match=r"montecarlo-2\.json exists .* --overwrite .*"
                                            r"--config\.evals\.mc\.output="):
    config.evals.mc.output = "montecarlo-2.json"  # named on the command line: refused
    prepare(config, workdir, "mc", output_named=True)


def test_the_snr_grid_is_the_flags_the_runs_or_a_default_said_so(saved_run, tmp_path):
  workdir = _run_copy(saved_run, tmp_path)
  config = load_run_config(workdir)
  assert prepare(config, workdir, "mc") == [] and config.evals.mc.snrs_db == "0.0,10.0,inf"
  prepare(config, workdir, "mc", eval_snr_set=True)  # --config.eval_noise.snr_db=X beats the grid
  assert config.evals.mc.snrs_db == ""
  prepare(config, workdir, "mc", snrs_db="5,inf", num_draws=8)
  assert (config.evals.mc.snrs_db, config.evals.mc.num_draws) == ("5,inf", 8)
  config = load_run_config(workdir)
  config.eval_noise.snr_db, config.evals.mc.snrs_db = math.inf, ""  # a clean-trained run
  assert prepare(config, workdir, "mc") == [
      f"no SNR grid given and the run has no eval noise: evaluating at {DEFAULT_SNRS_DB} dB "
      "(choose with --snrs_db=...)"]
  assert config.evals.mc.snrs_db == DEFAULT_SNRS_DB
  with pytest.raises(ValueError, match=r"--eval=nope: the run has evaluators \['mc'\]"):
    prepare(config, workdir, "nope")


def test_cli_request_errors_are_one_line(saved_run):
  workdir, _ = saved_run
  out = _cli(f"--workdir={workdir}", "--num_draws=0")
  assert out.returncode == 1 and out.stdout == ""
  assert out.stderr == ("error: config.evals.mc (type montecarlo): num_draws must be an integer "
                        ">= 1, got 0\n")
