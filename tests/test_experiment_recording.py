"""experiments/recording.py, the one rule of every experiment script: outputs go to the run folder
or `--out`; `experiments/<paper>/results/` only with `--record`, refused before any work when the
settings differ from the recorded protocol; an existing result is skipped with a printed line and
rerun with `--force` or under other settings; files are written atomically.

The scripts run as their command line does (sys.argv, `main()`), with the trainer replaced by a
stub: what is tested is where they write and what they refuse, in well under a second each. The
`--record` runs write into a fake repository tree (`fake_repo`), never into the real results."""

import hashlib
import importlib.util
import json
import math
import os
import shutil
import sys
import types

import numpy as np
import pytest

from tests.conftest import REPO

CIFAR_DCT24 = REPO / "experiments" / "frequency_domain" / "results" / "cifar10_dct24.json"


def load(relative: str):
  """An experiment script as a module (its `main()` reads sys.argv)."""
  path = REPO / "experiments" / relative
  spec = importlib.util.spec_from_file_location("script_" + relative.replace("/", "_")[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def run(module, monkeypatch, *argv):
  monkeypatch.setattr(sys, "argv", [module.__file__, *map(str, argv)])
  return module.main()


def snapshot(paper: str) -> dict:
  """{path: sha256} of every file under the real experiments/<paper>/results/."""
  root = REPO / "experiments" / paper / "results"
  return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def fake_repo(tmp_path, monkeypatch):
  """A repository tree whose experiments/<paper>/results/ the `--record` runs write into."""
  from experiments import recording
  root = tmp_path / "repo"
  monkeypatch.setattr(recording, "REPO", str(root))
  return root


def stub_trainer(monkeypatch, module, calls: list, evaluate=None):
  """Replaces `train_and_evaluate` (where the script finds it) by a stub that records its calls,
  writes final_metrics.json (and what `evaluate(config, workdir)` writes) and returns it."""
  def train_and_evaluate(config, workdir):
    calls.append((config, workdir))
    os.makedirs(workdir, exist_ok=True)
    final = {"test_accuracy": 0.5, "test_loss": 1.25, "steps": config.num_steps or 7,
             "train_seconds": 4.5, "train_steps_per_sec": 2.0}
    with open(os.path.join(workdir, "final_metrics.json"), "w") as f:
      json.dump(final, f)
    if evaluate:
      evaluate(config, workdir)
    return final
  monkeypatch.setattr("freqnoise.train.train_and_evaluate", train_and_evaluate)
  monkeypatch.setattr(module, "train_and_evaluate", train_and_evaluate, raising=False)


def refuse_training(monkeypatch, module):
  def train_and_evaluate(config, workdir):
    pytest.fail("trained although the run was to be refused or skipped")
  monkeypatch.setattr("freqnoise.train.train_and_evaluate", train_and_evaluate)
  monkeypatch.setattr(module, "train_and_evaluate", train_and_evaluate, raising=False)


# ----------------------------------------------------------------------------- the module
def test_recording_rule_pieces(tmp_path, fake_repo, capsys):
  from experiments import recording
  results = fake_repo / "experiments" / "maskrcnn" / "results"
  assert recording.results_dir("maskrcnn") == str(results)
  assert recording.is_results_path(str(results)) and recording.is_results_path(str(results / "a"))
  assert not recording.is_results_path(str(fake_repo / "experiments" / "maskrcnn"))
  assert not recording.is_results_path(str(tmp_path / "results"))
  protocols = {("a", ""): {"set": ["x=1"], "n": 3}}
  assert recording.differences({"set": ["x=1"], "n": 3}, protocols, ("a", ""), "a") == []
  assert recording.differences({"set": ["y=2"], "n": 3}, protocols, ("a", ""), "a") == [
      'set: ["y=2"] in this run, ["x=1"] in the recorded protocol']
  assert recording.differences({}, protocols, ("b", "_t"), "--tag _t") == [
      "--tag _t: no recorded protocol (recorded: a)"]
  args = types.SimpleNamespace(record=False, out="", force=False)
  assert recording.destination(args, "maskrcnn", str(tmp_path / "o"), ["x"]) == str(tmp_path / "o")
  with pytest.raises(recording.RecordingError, match="is a recorded results folder: writing "
                                                     "there needs --record"):
    recording.destination(types.SimpleNamespace(record=False, out=str(results), force=False),
                          "maskrcnn", "", [])
  args.record = True
  assert recording.destination(args, "maskrcnn", "o", []) == str(results)
  with pytest.raises(recording.RecordingError, match=r"(?s)--record refused: this run's settings "
                     r"differ from the recorded protocol of experiments/maskrcnn:\n  n: 4.*"
                     r"Nothing was run or written"):
    recording.destination(args, "maskrcnn", "o", ["n: 4 in this run, 3 in the recorded protocol"])
  path = tmp_path / "r.json"
  assert not recording.skip_existing(str(path), rerun=False)
  path.write_text("{}")
  assert not recording.skip_existing(str(path), rerun=True)
  assert capsys.readouterr().out == ""
  assert recording.skip_existing(str(path), rerun=False)
  assert capsys.readouterr().out == f"recorded result exists: {path} (use --force to rerun)\n"
  with pytest.raises(ZeroDivisionError):  # a failed write leaves neither the file nor a temp file
    with recording.atomic_path(str(tmp_path / "fig.png")) as tmp:
      open(tmp, "w").close()
      1 / 0
  assert os.listdir(tmp_path) == ["r.json"]


# ----------------------------------------------------------------------------- frequency_domain
@pytest.fixture
def freq(monkeypatch):
  module = load("frequency_domain/run.py")
  state = types.SimpleNamespace(params={"w": np.zeros(3)}, model_state={})
  monkeypatch.setattr(module, "restore_state", lambda config, workdir: (None, state))
  monkeypatch.setattr(module, "input_size_and_flops", lambda e, s: {
      "input_shape": [4, 4, 24], "input_elements": 384, "input_bytes_float32": 1536,
      "forward_flops": 1e6})
  return module


def test_frequency_run_without_record_leaves_results_byte_identical(freq, tmp_path, monkeypatch,
                                                                    capsys):
  """It used to write results/<config>_<variant>.json; and with that file there, it printed the
  committed numbers for `--set num_steps=...` without training or saying so."""
  before, calls = snapshot("frequency_domain"), []
  stub_trainer(monkeypatch, freq, calls)
  argv = ["--config", "cifar10", "--variants", "dct24", "--set", "num_steps=2",
          "--workroot", tmp_path]
  run(freq, monkeypatch, *argv)
  assert snapshot("frequency_domain") == before
  row = json.loads((tmp_path / "results" / "cifar10_dct24.json").read_text())
  assert (row["test_top1"], row["steps"], row["overrides"]) == (0.5, 2, ["num_steps=2"])
  assert [w for _, w in calls] == [str(tmp_path / "cifar10_dct24")] and calls[0][0].num_steps == 2
  assert (tmp_path / "results" / "cifar10.md").is_file()
  run(freq, monkeypatch, *argv)  # under overrides an existing result is never skipped
  assert len(calls) == 2 and "recorded result exists" not in capsys.readouterr().out
  assert snapshot("frequency_domain") == before


def test_frequency_existing_result_is_skipped_with_a_line_and_rerun_with_force(
    freq, tmp_path, monkeypatch, capsys):
  calls, out = [], tmp_path / "out"
  stub_trainer(monkeypatch, freq, calls)
  protocol = ["--config", "cifar10", "--variants", "dct24", "--set", "num_epochs=1",
              "--workroot", tmp_path, "--out", out]
  run(freq, monkeypatch, *protocol)
  path, text = out / "cifar10_dct24.json", (out / "cifar10_dct24.json").read_bytes()
  capsys.readouterr()
  run(freq, monkeypatch, *protocol)
  assert len(calls) == 1 and path.read_bytes() == text
  assert f"recorded result exists: {path} (use --force to rerun)\n" in capsys.readouterr().out
  run(freq, monkeypatch, *protocol, "--force")
  assert len(calls) == 2
  run(freq, monkeypatch, *protocol[:5], "num_epochs=1", "num_steps=3", *protocol[6:])
  assert len(calls) == 3 and json.loads(path.read_text())["steps"] == 3


def test_frequency_record_is_refused_when_settings_differ_and_skips_a_recorded_result(
    freq, tmp_path, fake_repo, monkeypatch, capsys):
  refuse_training(monkeypatch, freq)
  results = fake_repo / "experiments" / "frequency_domain" / "results"
  with pytest.raises(SystemExit, match=r'(?s)--record refused.*\n  set: \["num_steps=100"\] in '
                     r'this run, \["num_epochs=1"\] in the recorded protocol\n'):
    run(freq, monkeypatch, "--config", "cifar10", "--variants", "dct24", "--set", "num_steps=100",
        "--workroot", tmp_path, "--record")
  with pytest.raises(SystemExit, match=r"--tag '_new': no recorded protocol"):
    run(freq, monkeypatch, "--config", "cifar10", "--variants", "dct24", "--tag", "_new",
        "--workroot", tmp_path, "--record")
  assert os.listdir(tmp_path) == []  # refused before any work
  results.mkdir(parents=True)
  shutil.copy(CIFAR_DCT24, results)
  run(freq, monkeypatch, "--config", "cifar10", "--variants", "dct24", "--set", "num_epochs=1",
      "--workroot", tmp_path, "--record")
  assert (results / "cifar10_dct24.json").read_bytes() == CIFAR_DCT24.read_bytes()
  assert (f"recorded result exists: {results / 'cifar10_dct24.json'} (use --force to rerun)"
          in capsys.readouterr().out)


# ----------------------------------------------------------------------------- maskrcnn
def test_maskrcnn_record_with_an_override_is_refused_and_a_recorded_result_skipped(
    tmp_path, fake_repo, monkeypatch, capsys):
  maskrcnn = load("maskrcnn/run.py")
  refuse_training(monkeypatch, maskrcnn)
  with pytest.raises(SystemExit, match=r'--record refused(?s:.*)set: \["num_steps=100"\] in this '
                                       r'run, \[\] in the recorded protocol'):
    run(maskrcnn, monkeypatch, "--scale", "coco128", "--set", "num_steps=100", "--record",
        "--workroot", tmp_path / "runs")
  with pytest.raises(SystemExit, match="is a recorded results folder: writing there needs"):
    run(maskrcnn, monkeypatch, "--scale", "coco128", "--workroot", tmp_path / "runs",
        "--out", fake_repo / "experiments" / "maskrcnn" / "results")
  results = fake_repo / "experiments" / "maskrcnn" / "results"
  results.mkdir(parents=True)
  recorded = REPO / "experiments" / "maskrcnn" / "results" / "coco128_spatial.json"
  shutil.copy(recorded, results)
  run(maskrcnn, monkeypatch, "--scale", "coco128", "--record", "--workroot", tmp_path / "runs")
  assert f"recorded result exists: {results / 'coco128_spatial.json'}" in capsys.readouterr().out
  assert (results / "coco128_spatial.json").read_bytes() == recorded.read_bytes()
  assert not (tmp_path / "runs").exists()


# ----------------------------------------------------------------------------- deep_noise_injection
def _write_montecarlo(config, workdir):
  block = config.evals.montecarlo
  s, d = len(block.snrs_db), block.num_draws
  values = np.linspace(0.5, 0.9, s * d).reshape(s, d).tolist()
  with open(os.path.join(workdir, "montecarlo.json"), "w") as f:
    json.dump({"snrs_db": ["inf" if math.isinf(x) else x for x in block.snrs_db],
               "accuracy": values, "majority": values, "mean_prob": values,
               "num_examples": 100}, f)


DNI_TRY = ["--task", "seqmnist", "--cells", "lstm", "--train_snrs", "inf", "--steps", 3,
           "--draws", 2]


def test_dni_run_without_record_leaves_results_byte_identical(tmp_path, monkeypatch):
  """It used to write results/<task>.json, .png and RESULTS_<task>.md from any run."""
  dni = load("deep_noise_injection/run.py")
  before, calls = snapshot("deep_noise_injection"), []
  stub_trainer(monkeypatch, dni, calls, evaluate=_write_montecarlo)
  run(dni, monkeypatch, *DNI_TRY, "--workroot", tmp_path / "runs")
  assert snapshot("deep_noise_injection") == before
  out = tmp_path / "runs" / "results"
  assert sorted(os.listdir(out)) == ["RESULTS_seqmnist.md", "seqmnist.json", "seqmnist.png"]
  runs = json.loads((out / "seqmnist.json").read_text())
  assert [(r["cell"], r["steps"], r["train_seconds"]) for r in runs] == [("lstm", 3, 4.5)]


def test_dni_record_refuses_overrides_and_skips_a_recorded_result(tmp_path, fake_repo,
                                                                  monkeypatch, capsys):
  dni = load("deep_noise_injection/run.py")
  refuse_training(monkeypatch, dni)
  with pytest.raises(SystemExit, match=r"(?s)--record refused.*\n  cells: \[\"lstm\"\] in this "
                                       r"run, \[\"lstm\", \"rnn\"\].*\n  steps: 3 in this run, 0 "
                                       r"in the recorded protocol\n  draws: 2 in this run, 5"):
    run(dni, monkeypatch, *DNI_TRY, "--workroot", tmp_path / "runs", "--record")
  assert not (tmp_path / "runs").exists()
  (fake_repo / "experiments" / "deep_noise_injection" / "results").mkdir(parents=True)
  recorded = fake_repo / "experiments" / "deep_noise_injection" / "results" / "seqmnist.json"
  recorded.write_text("[]\n")
  run(dni, monkeypatch, "--task", "seqmnist", "--record", "--workroot", tmp_path / "runs")
  assert f"recorded result exists: {recorded} (use --force to rerun)" in capsys.readouterr().out
  assert recorded.read_text() == "[]\n"


# ----------------------------------------------------------------------------- summaries
def _mc_json(snrs, draws=4):
  values = np.full((len(snrs), draws), 0.75).tolist()
  return {"snrs_db": ["inf" if math.isinf(s) else s for s in snrs], "accuracy": values,
          "majority": values, "mean_prob": values, "num_examples": 64}


def _run_folder(folder, config, files: dict):
  from freqnoise.workdir import config_text
  folder.mkdir(parents=True)
  (folder / "config.json").write_text(config_text(config))
  (folder / "final_metrics.json").write_text(json.dumps(
      {"steps": 100, "train_seconds": 12.0, "test_accuracy": 0.9}))
  for name, value in files.items():
    (folder / name).write_text(json.dumps(value))


def _defense_runs(root, target_epochs=None):
  from configs import noisy_defense
  target = noisy_defense.get_config(f"data=mnist,role=target,substitute={root / 'substitute'}")
  if target_epochs is not None:
    target.num_epochs = target_epochs
  pgd = {"set": "pgd.npz", "noise": {}, "adversarial": _mc_json([10.0, math.inf]),
         "clean": _mc_json([10.0, math.inf])}
  _run_folder(root / "target", target, {"blackbox_pgd.json": pgd})
  _run_folder(root / "substitute", noisy_defense.get_config("data=mnist,role=substitute"), {})


def test_noisy_defense_summary_without_record_goes_to_the_runs_folder(tmp_path, monkeypatch,
                                                                     capsys):
  """It used to write results/<name>.json and .png from whatever runs it was given."""
  summarize = load("noisy_defense/summarize.py")
  before = snapshot("noisy_defense")
  _defense_runs(tmp_path / "mnist")
  run(summarize, monkeypatch, tmp_path / "mnist")
  assert snapshot("noisy_defense") == before
  written = tmp_path / "mnist" / "mnist.json"
  assert json.loads(written.read_text())["target"]["steps"] == 100
  assert (tmp_path / "mnist" / "mnist.png").is_file()
  text = written.read_bytes()
  run(summarize, monkeypatch, tmp_path / "mnist")
  assert f"recorded result exists: {written} (use --force" in capsys.readouterr().out
  assert written.read_bytes() == text


def test_noisy_defense_record_checks_the_runs_against_the_protocol(tmp_path, fake_repo,
                                                                   monkeypatch):
  summarize = load("noisy_defense/summarize.py")
  _defense_runs(tmp_path / "mnist")
  run(summarize, monkeypatch, tmp_path / "mnist", "--record")  # the protocol's runs: recorded
  results = fake_repo / "experiments" / "noisy_defense" / "results"
  assert sorted(os.listdir(results)) == ["mnist.json", "mnist.png"]
  _defense_runs(tmp_path / "short" / "mnist", target_epochs=1)
  with pytest.raises(SystemExit, match=r"(?s)--record refused.*\n  target/config.json "
                                       r"num_epochs: 1 -> 4\nNothing was run or written"):
    run(summarize, monkeypatch, tmp_path / "short" / "mnist", "--record", "--force")
  assert sorted(os.listdir(results)) == ["mnist.json", "mnist.png"]


def _mnist_sweep(folder):
  from configs import noisy_mnist
  for run_name, arg in (("clean", "snr=inf"), ("snr0", "snr=0")):
    _run_folder(folder / run_name, noisy_mnist.get_config(arg),
                {"montecarlo.json": _mc_json([0.0, math.inf])})


def test_noisy_inference_summary_without_record_goes_to_the_sweep_folder(tmp_path, monkeypatch):
  """`--name mnist` (the README's flag) used to overwrite results/mnist_acc_vs_*.png."""
  summarize = load("noisy_inference/summarize.py")
  before = snapshot("noisy_inference")
  _mnist_sweep(tmp_path / "mnist")
  run(summarize, monkeypatch, tmp_path / "mnist", "--name", "mnist")
  assert snapshot("noisy_inference") == before
  assert {"mnist_acc_vs_snr.png", "mnist_acc_vs_k.png"} <= set(os.listdir(tmp_path / "mnist"))


def test_noisy_inference_record_checks_the_runs_against_the_protocol(tmp_path, fake_repo,
                                                                     monkeypatch):
  from configs import noisy_cifar10
  summarize = load("noisy_inference/summarize.py")
  _mnist_sweep(tmp_path / "mnist")
  with pytest.raises(SystemExit, match="--name mnist: no recorded protocol"):
    run(summarize, monkeypatch, tmp_path / "mnist", "--name", "mnist", "--record")
  for run_name, arg in (("clean", "snr=inf"), ("snr0", "snr=0"), ("snr5", "snr=5")):
    config = noisy_cifar10.get_config(arg)  # the config's 8 epochs, not the recorded 2
    _run_folder(tmp_path / "cifar" / run_name, config,
                {"montecarlo.json": _mc_json([0.0, math.inf])})
  with pytest.raises(SystemExit, match=r"(?s)--record refused.*\n  clean/config.json "
                                       r"evals.montecarlo.num_draws: 8 -> 4\n  clean/config.json "
                                       r"num_epochs: 8 -> 2\n"):
    run(summarize, monkeypatch, tmp_path / "cifar", "--name", "cifar10", "--record")
  assert not (fake_repo / "experiments").exists()


def test_noisy_inference_summary_reads_the_folders_sweep_sh_makes(tmp_path, fake_repo, monkeypatch,
                                                                  capsys):
  """sweep.sh runs freqnoise.sweep, whose run folders are named by the config argument (snr=inf,
  snr=0, ...); the summary reads them as it reads the older names (clean, snr0, ...)."""
  from configs import noisy_cifar10, noisy_mnist
  summarize = load("noisy_inference/summarize.py")
  for run_name, arg in (("snr=inf", "snr=inf"), ("snr=0", "snr=0"), ("snr5", "snr=5")):
    _run_folder(tmp_path / "mnist" / run_name, noisy_mnist.get_config(arg),
                {"montecarlo.json": _mc_json([0.0, math.inf])})
  run(summarize, monkeypatch, tmp_path / "mnist", "--name", "mnist")
  labels = [line.split(",")[0][2:] for line in capsys.readouterr().out.splitlines()
            if line.endswith("|") and ", 1 pass" in line]
  assert labels == ["clean-trained", "trained at 5 dB", "trained at 0 dB"]
  for run_name, arg in (("snr=inf", "snr=inf"), ("snr=0", "snr=0"), ("snr=5", "snr=5")):
    _run_folder(tmp_path / "cifar" / run_name, noisy_cifar10.get_config(arg),
                {"montecarlo.json": _mc_json([0.0, math.inf])})
  with pytest.raises(SystemExit, match=r"(?s)--record refused.*\n  snr=inf/config.json "
                                       r"evals.montecarlo.num_draws: 8 -> 4\n"):
    run(summarize, monkeypatch, tmp_path / "cifar", "--name", "cifar10", "--record")


# ----------------------------------------------------------------------------- nvm_lstm
def test_nvm_scripts_write_results_only_with_record(tmp_path, fake_repo, monkeypatch, capsys):
  from configs import dni_seqmnist
  from freqnoise.workdir import config_text
  tolerance = load("nvm_lstm/tolerance.py")
  config = dni_seqmnist.get_config("cell=lstm,tiny")
  config.quant.weight_bits = config.quant.dac_bits = config.quant.adc_bits = 4
  workdir = tmp_path / "run"
  (workdir / "checkpoints" / "20").mkdir(parents=True)
  (workdir / "config.json").write_text(config_text(config))
  results = fake_repo / "experiments" / "nvm_lstm" / "results"
  results.mkdir(parents=True)
  out = results / "seqmnist_w4d4a4_seed0_tolerance.json"
  with pytest.raises(SystemExit, match="is in a recorded results folder: writing there needs "
                                       "--record"):
    run(tolerance, monkeypatch, workdir, out)
  with pytest.raises(SystemExit, match=r"(?s)--record refused.*\n  draws: 2 in this run, 8 in the "
                                       r"recorded protocol"):
    run(tolerance, monkeypatch, workdir, out, "--draws", 2, "--record")
  out.write_text("{}")
  run(tolerance, monkeypatch, workdir, out, "--record")
  assert f"recorded result exists: {out} (use --force" in capsys.readouterr().out
  assert os.listdir(results) == [out.name] and out.read_text() == "{}"

  efficiency = load("nvm_lstm/efficiency.py")
  with pytest.raises(SystemExit, match="is a recorded results folder: writing there needs"):
    efficiency.main(["--out", str(results)])
  (results / "efficiency.json").write_text('{"kept": 1}')
  assert efficiency.main(["--record"]) == {"kept": 1}
  assert "recorded result exists: " in capsys.readouterr().out
