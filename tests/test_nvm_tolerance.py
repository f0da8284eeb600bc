"""experiments/nvm_lstm/tolerance.py on a tiny 4/4/4 QAT LSTM: the noiseless levels equal the
run's own evaluation exactly, noise spreads the draws, bad requests fail before any evaluation."""

import importlib.util
import json
import sys

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def tolerance():
  path = REPO / "experiments" / "nvm_lstm" / "tolerance.py"
  spec = importlib.util.spec_from_file_location("nvm_tolerance", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _train_qat(workdir: str, adc_noise_lsb: float = 0.0) -> float:
  from configs import dni_seqmnist
  from freqnoise.train import train_and_evaluate
  c = dni_seqmnist.get_config("cell=lstm,tiny")
  c.num_devices = 1
  c.quant.weight_bits = c.quant.dac_bits = c.quant.adc_bits = 4
  c.quant.weight_per_channel = True
  c.quant.adc_mode, c.quant.adc_bound = "learned", 4.0
  c.quant.adc_noise_lsb = adc_noise_lsb
  return train_and_evaluate(c, workdir)["test_accuracy"]


@pytest.fixture(scope="module")
def qat_run(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("qat"))
  return workdir, _train_qat(workdir)


def _main(tolerance, monkeypatch, *argv):
  monkeypatch.setattr(sys, "argv", ["tolerance.py", *argv])
  tolerance.main()


def test_curves_start_at_the_runs_own_accuracy_and_noise_spreads_the_draws(
    tolerance, qat_run, tmp_path, monkeypatch):
  workdir, accuracy = qat_run
  out = tmp_path / "tol.json"
  _main(tolerance, monkeypatch, workdir, str(out), "--adc_lsb", "0,2", "--weight_sigma", "0,0.3",
        "--draws", "3")
  r = json.loads(out.read_text())
  assert [row["level"] for row in r["adc"]] == [0.0, 2.0]
  assert [row["level"] for row in r["weight"]] == [0.0, 0.3]
  for noiseless in (r["adc"][0], r["weight"][0]):
    assert noiseless["values"] == pytest.approx([accuracy] * 3, abs=1e-6)
    assert noiseless["std"] == 0.0 and noiseless["ci95"] == 0.0
  for noisy in (r["adc"][1], r["weight"][1]):
    assert len(set(noisy["values"])) > 1 and noisy["ci95"] > 0
    assert noisy["min"] <= noisy["mean"] <= noisy["max"]
  assert r["metric"] == "accuracy" and r["label"] == "4/4/4-bit" and r["draws"] == 3
  assert (tmp_path / "tol.png").stat().st_size > 0
  assert not list(tmp_path.glob("*.tmp*"))


@pytest.mark.parametrize("argv,message", [
    (("--adc_lsb", "0,-1"), "--adc_lsb: levels must be finite numbers >= 0"),
    (("--weight_sigma", "0,x"), "--weight_sigma: cannot read '0,x'"),
    (("--draws", "1"), "--draws must be >= 2"),
])
def test_bad_requests_are_named(tolerance, qat_run, tmp_path, monkeypatch, argv, message):
  with pytest.raises(SystemExit, match=message):
    _main(tolerance, monkeypatch, qat_run[0], str(tmp_path / "t.json"), *argv)
  assert not (tmp_path / "t.json").exists()


def test_weight_noise_curve_of_a_run_trained_with_adc_noise_has_the_adc_noise_off(
    tolerance, tmp_path, monkeypatch):
  """Each curve isolates one noise: at weight noise 0 a run trained with ADC noise is scored
  noiselessly, exactly as at ADC noise 0."""
  _train_qat(str(tmp_path / "run"), adc_noise_lsb=1.0)
  out = tmp_path / "tol.json"
  _main(tolerance, monkeypatch, str(tmp_path / "run"), str(out), "--adc_lsb", "0,1",
        "--weight_sigma", "0", "--draws", "2")
  r = json.loads(out.read_text())
  assert r["weight"][0]["values"] == r["adc"][0]["values"] and r["weight"][0]["std"] == 0.0
  assert r["adc"][1]["values"] != r["adc"][0]["values"]


def test_adc_noise_needs_a_run_with_an_adc(tolerance, tmp_path, monkeypatch):
  from configs import dni_seqmnist
  from freqnoise.train import train_and_evaluate
  c = dni_seqmnist.get_config("cell=lstm,tiny")
  c.num_devices = 1
  train_and_evaluate(c, str(tmp_path / "float"))
  with pytest.raises(SystemExit, match="has no ADC"):
    _main(tolerance, monkeypatch, str(tmp_path / "float"), str(tmp_path / "t.json"))


def test_language_model_curves_are_perplexities_with_the_carried_state(tolerance, tmp_path,
                                                                       monkeypatch):
  """A QAT LM (configs/nvm_lstm.py:task=ptb,tiny): the curves come from mc_perplexity over the
  test stream; the noiseless level is the run's own test perplexity."""
  from configs import nvm_lstm
  from freqnoise.train import train_and_evaluate
  from tests.conftest import write_tiny_ptb
  write_tiny_ptb(tmp_path)
  c = nvm_lstm.get_config("task=ptb,bits=4,tiny")
  c.data.source = f"ptb:{tmp_path}"
  c.num_devices = 1
  final = train_and_evaluate(c, str(tmp_path / "run"))
  out = tmp_path / "tol.json"
  _main(tolerance, monkeypatch, str(tmp_path / "run"), str(out), "--adc_lsb", "0,2",
        "--weight_sigma", "0.3", "--draws", "2")
  r = json.loads(out.read_text())
  assert r["metric"] == "perplexity"
  assert r["adc"][0]["values"] == pytest.approx([final["test_perplexity"]] * 2, rel=1e-5)
  assert len(set(r["adc"][1]["values"])) == 2 and len(set(r["weight"][0]["values"])) == 2
