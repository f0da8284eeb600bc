"""freqnoise/sweep.py: grids and seeds become cells with the flags freqnoise.main reads, every cell
is checked before any runs, finished cells are not rerun, cells run N at a time, and the summary
table and figure hold every cell's metric."""

import json
import os
import pathlib
import sys

import pytest

from freqnoise import stats, sweep, workdir

REPO = pathlib.Path(__file__).resolve().parents[1]
DIGITS = str(REPO / "configs" / "digits_mlp.py")

# A stand-in for freqnoise.main: test accuracy 0.5 + lr + seed / 100; exit 3 for learning rate 0.3.
FAKE_MAIN = """
import json, os, sys
args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
print("training", args["workdir"], flush=True)
lr = float(args["config.optimizer.learning_rate"])
if lr == 0.3:
  sys.exit(3)
os.makedirs(args["workdir"])
with open(os.path.join(args["workdir"], "final_metrics.json"), "w") as f:
  json.dump({"test_accuracy": 0.5 + lr + int(args["config.seed"]) / 100, "train_seconds": 60.0}, f)
"""


@pytest.mark.parametrize("text, seeds", [("0-3", [0, 1, 2, 3]), ("5,0,2", [0, 2, 5]), ("3", [3]),
                                         ("1-2,2-3", [1, 2, 3])])
def test_parse_seeds(text, seeds):
  assert sweep.parse_seeds(text) == seeds


@pytest.mark.parametrize("text, message", [("a", "'a' is not a seed"), ("-1", "'-1' is not a seed"),
                                           ("3-1", "the range '3-1' is empty"),
                                           (",", "no seed given")])
def test_parse_seeds_errors(text, message):
  with pytest.raises(ValueError, match=f"--seeds: {message}"):
    sweep.parse_seeds(text)


def test_grid_values_split_outside_brackets():
  assert sweep.split_values("0,5,inf") == ["0", "5", "inf"]
  assert sweep.split_values("[0,1,8],24,(1, 2)") == ["[0,1,8]", "24", "(1, 2)"]
  assert sweep.parse_grid(["input.channels=[0,1,8],24", ":snr=0,inf"]) == [
      ("input.channels", ["[0,1,8]", "24"]), (":snr", ["0", "inf"])]


@pytest.mark.parametrize("specs, message", [
    (["train_noise.snr_db"], "expected FIELD=V1,V2,..."), (["a=1,,2"], "expected FIELD"),
    (["a b=1"], "expected FIELD"), (["seed=0,1"], "give seeds with --seeds"),
    (["a=1", "a=2"], "a is given twice"), (["a=1,1"], "a value is repeated")])
def test_grid_errors(specs, message):
  with pytest.raises(ValueError, match=message):
    sweep.parse_grid(specs)


def test_cells_are_the_product_with_the_flags_main_reads(tmp_path):
  grid = sweep.parse_grid([":snr=0,inf", "input.channels=[0,1],24"])
  cells = sweep.make_cells("configs/x.py:tiny", grid, [0, 1], str(tmp_path),
                           fixed=("--config.num_steps=4",))
  assert [c.name for c in cells[:3]] == ["snr=0_input.channels=-0-1-_seed=0",
                                         "snr=0_input.channels=-0-1-_seed=1",
                                         "snr=0_input.channels=24_seed=0"]
  assert len(cells) == 8 and cells[-1].name == "snr=inf_input.channels=24_seed=1"
  assert cells[1].config_flags == ("--config=configs/x.py:tiny,snr=0", "--config.num_steps=4",
                                   "--config.input.channels=[0,1]", "--config.seed=1")
  assert cells[1].workdir == str(tmp_path / cells[1].name)
  assert cells[1].values == ((":snr", "0"), ("input.channels", "[0,1]")) and cells[1].seed == 1
  plain = sweep.make_cells("c.py", [], [], str(tmp_path))
  assert [(c.name, c.config_flags, c.seed) for c in plain] == [("run", ("--config=c.py",), None)]
  with pytest.raises(ValueError, match="two cells would share a workdir name"):
    sweep.make_cells("c.py", [("data.source", ["a/b", "a:b"])], [], str(tmp_path))


@pytest.mark.parametrize("grid, message", [
    ("optimizer.learning_rat=1e-3", r"cell optimizer.learning_rat=1e-3: .*learning_rat"),
    ("num_steps=ten", r"cell num_steps=ten: .*num_steps=ten"),
    (":tiyn=1", r"cell tiyn=1: ValueError: unknown config argument 'tiyn' in 'tiny,tiyn=1'")])
def test_a_bad_cell_is_refused_before_anything_runs(tmp_path, capsys, grid, message):
  code = sweep.main([f"--config={DIGITS}:tiny", "--grid", grid, "--root", str(tmp_path)],
                    command=("false",))
  assert code == 2 and not os.listdir(tmp_path)
  err = capsys.readouterr().err
  assert err.startswith("error: ") and __import__("re").search(message, err), err


def _finished(cell, *, changed=None):
  """A workdir as a finished run of `cell` leaves it (config.json, a checkpoint, final metrics)."""
  config = sweep.load_config(cell.config_flags)
  if changed:
    config.model.hidden = changed
  os.makedirs(os.path.join(cell.workdir, "checkpoints", "20"))
  with open(os.path.join(cell.workdir, "config.json"), "w") as f:
    f.write(workdir.config_text(config))
  with open(os.path.join(cell.workdir, "final_metrics.json"), "w") as f:
    json.dump({"test_accuracy": 0.75, "train_seconds": 6.0}, f)


def test_finished_cells_are_not_rerun_and_changed_ones_are_refused(tmp_path, capsys):
  grid = sweep.parse_grid(["optimizer.learning_rate=1e-3,3e-3"])
  cells = sweep.make_cells(f"{DIGITS}:tiny", grid, [0], str(tmp_path))
  _finished(cells[0])
  assert sweep.plan(cells) == cells[1:]
  assert f"finished: {cells[0].workdir} (same config; not run again)" in capsys.readouterr().out
  _finished(cells[1], changed=(7,))
  with pytest.raises(ValueError, match=r"cell optimizer.learning_rate=3e-3_seed=0: .* was trained "
                                       r"under another config:\n  model.hidden: \[7\] -> \[256, "):
    sweep.plan(cells)


def test_cells_run_in_parallel_then_one_table_and_figure(tmp_path, capsys):
  fake = tmp_path / "fake_main.py"
  fake.write_text(FAKE_MAIN)
  root = tmp_path / "sweep"
  code = sweep.main([f"--config={DIGITS}:tiny", "--grid", "optimizer.learning_rate=0.1,0.2,0.3",
                     "--seeds", "0-2", "--root", str(root), "--parallel", "3"],
                    command=(sys.executable, str(fake)))
  out, err = capsys.readouterr()
  assert code == 1 and "error: 3 cell(s) failed: optimizer.learning_rate=0.3_seed=0, " in err
  assert "optimizer.learning_rate=0.3_seed=2: failed (exit 3); its log: " in out
  log = root / "logs" / "optimizer.learning_rate=0.2_seed=1.log"
  assert log.read_text() == f"training {root}/optimizer.learning_rate=0.2_seed=1\n"
  ci = stats.mean_interval([0.6, 0.61, 0.62])
  expected = "\n".join([
      "| optimizer.learning_rate | n | test_accuracy (mean) | 95% interval | per seed "
      "| train min |",
      "|---|---|---|---|---|---|",
      f"| 0.1 | 3 | 0.6100 | [{ci[0]:.4f}, {ci[1]:.4f}] | 0: 0.6000, 1: 0.6100, 2: 0.6200 | 1.0 |",
      f"| 0.2 | 3 | 0.7100 | [{ci[0] + 0.1:.4f}, {ci[1] + 0.1:.4f}] | 0: 0.7000, 1: 0.7100, "
      "2: 0.7200 | 1.0 |",
      "| 0.3 | 0 of 3 | nan | — | — | nan |"])
  assert (root / "summary.md").read_text() == expected + "\n" and expected in out
  assert (root / "summary.png").read_bytes()[:4] == b"\x89PNG"


def test_a_real_cell_trains_through_freqnoise_main_and_is_then_finished(tmp_path, capsys):
  argv = [f"--config={DIGITS}:tiny", "--root", str(tmp_path), "--config.num_steps=2",
          "--config.eval_every=2", "--config.log_every=1", "--config.checkpoint_every=2"]
  assert sweep.main(argv) == 0
  out = capsys.readouterr().out
  with open(tmp_path / "run" / "final_metrics.json") as f:
    accuracy = json.load(f)["test_accuracy"]
  assert "[1/1] run" in out and f"| 1 | {accuracy:.4f} | — | {accuracy:.4f} |" in out
  assert sweep.main(argv) == 0  # nothing to run now
  assert f"finished: {tmp_path / 'run'} (same config; not run again)" in capsys.readouterr().out


def test_a_bad_evaluator_block_is_refused_before_anything_runs(tmp_path, capsys):
  code = sweep.main([f"--config={REPO / 'configs' / 'noisy_mnist.py'}:tiny", "--grid",
                     "evals.montecarlo.num_draws=4,2", "--root", str(tmp_path)], command=("false",))
  assert code == 2 and not os.listdir(tmp_path)
  assert capsys.readouterr().err == (
      "error: cell evals.montecarlo.num_draws=2: config.evals.montecarlo (type montecarlo): "
      "draws_per_chunk=4 must divide num_draws=2\n")
