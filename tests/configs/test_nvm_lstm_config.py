"""configs/nvm_lstm.py: the variants are the runs experiments/nvm_lstm/run.sh recorded (their
result files hold the configs), and bad arguments are clear errors."""

import json

import pytest

from configs import nvm_lstm
from freqnoise.analog.product_quant import quant_from_config
from tests.conftest import REPO

RESULTS = REPO / "experiments" / "nvm_lstm" / "results"
# Fields newer than the recorded runs, at their defaults (off): config.data's and config.quant's.
ADDED_LATER = {"pipeline": "memory", "num_workers": 0, "bits_schedule": "", "jpeg_coefficients": False}
SHAPING = ("quant", "train_noise", "model", "optimizer", "data", "num_epochs", "num_steps", "seed")


@pytest.mark.parametrize("arg,result", [
    ("task=seqmnist,bits=0", "seqmnist_float_seed0.json"),
    ("task=seqmnist,bits=4", "seqmnist_w4d4a4_seed0.json"),
    ("task=seqmnist,bits=3", "seqmnist_w3d3a3_seed0.json"),
    ("task=seqmnist,bits=4,noisy", "seqmnist_w4d4a4_noisy_seed0.json"),
    ("task=ptb,bits=0", "ptb_float_seed0.json"),
    ("task=ptb,bits=4", "ptb_w4d4a4_seed0.json"),
    ("task=ptb,bits=8", "ptb_w8d8a8_seed0.json"),
])
def test_variants_are_the_recorded_runs(arg, result):
  path = RESULTS / result
  assert path.is_file(), f"{path.name}: experiments/nvm_lstm/run.sh records it"
  recorded = json.loads(path.read_text())["config"]
  ours = json.loads(nvm_lstm.get_config(arg).to_json())
  for key in SHAPING:
    if isinstance(recorded[key], dict):  # fields added to the configs after the run are defaults
      added = set(ours[key]) - set(recorded[key])
      assert {k: ours[key][k] for k in added} == {k: ADDED_LATER.get(k) for k in added}, key
      assert {k: ours[key][k] for k in recorded[key]} == recorded[key], key
    else:
      assert ours[key] == recorded[key], key


def test_recipe_and_errors():
  q = quant_from_config(nvm_lstm.get_config("bits=4").quant)
  assert (q.weight.bits, q.dac.bits, q.adc.bits) == (4, 4, 4)
  assert q.weight.per_channel and q.adc.mode == "learned" and q.dac.mode == "fixed"
  assert q.layers == "all" and q.adc_noise is None
  ptb = quant_from_config(nvm_lstm.get_config("task=ptb,bits=4").quant)
  assert ptb.layers == "all_but_last" and ptb.adc.mode == "tracked"
  assert quant_from_config(nvm_lstm.get_config("bits=0").quant) is None
  noisy = nvm_lstm.get_config("bits=4,noisy")
  assert noisy.quant.adc_noise_lsb == 0.5 and noisy.train_noise.weight_sigma == 0.05
  assert nvm_lstm.get_config("bits=4,tiny").data.source == "seq:digits"
  with pytest.raises(ValueError, match=r"config argument bits=17 must be in \[1, 16\]"):
    nvm_lstm.get_config("bits=17")
  with pytest.raises(ValueError, match="noisy needs bits > 0"):
    nvm_lstm.get_config("bits=0,noisy")
  with pytest.raises(ValueError, match="config argument task='cifar' is not one of"):
    nvm_lstm.get_config("task=cifar")
