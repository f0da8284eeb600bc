"""configs/nvm_lstm.py: the variants are the runs experiments/nvm_lstm/run.sh recorded (their
result files hold the configs), and bad arguments are clear errors."""

import json

import pytest

from configs import nvm_lstm
from freqnoise.analog import pcm
from freqnoise.analog.product_quant import AIHWKIT_DEFAULTS, quant_from_config
from tests.conftest import REPO

RESULTS = REPO / "experiments" / "nvm_lstm" / "results"
# Fields newer than the recorded runs, at their defaults (off): config.data's and config.quant's.
ADDED_LATER = {"pipeline": "memory", "num_workers": 0, "bits_schedule": "",
               "jpeg_coefficients": False, "t_inference": 0.0, "pcm": pcm.DEFAULTS,  # the noise blocks' PCM (issue 28)
               **{k: v for k, v in AIHWKIT_DEFAULTS.items()  # aihwkit's periphery (issue 28)
                  if k in ("bound_management", "max_bm_factor", "max_bm_res", "max_input_size",
                           "max_output_size", "conv_alpha", "zero_vectors")}}
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
    _same(ours[key], recorded[key], key)


def _same(ours, recorded, key):
  """ours == recorded, except fields added to the configs after the run, which are defaults."""
  if not isinstance(recorded, dict):
    assert ours == recorded, key
    return
  added = set(ours) - set(recorded)
  assert {k: ours[k] for k in added} == {k: ADDED_LATER.get(k) for k in added}, key
  for k in recorded:
    _same(ours[k], recorded[k], f"{key}.{k}")


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
