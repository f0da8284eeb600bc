"""config.quant.bits_schedule: parsing and its errors, stages that keep each converter's range,
and training that switches bits by step (resume-exact, the first stage equal to a plain run)."""

import jax
import numpy as np
import pytest

from freqnoise.analog.bits_schedule import check_bits_schedule, parse_bits_schedule, with_bits
from freqnoise.analog.product_quant import quant_from_config
from freqnoise.analog.quant import QuantConfig
from freqnoise.analog.quant_module import Quantizer, stored_grid
from freqnoise.train import train_and_evaluate
from tests.test_train import data_must_not_be_read, params_of, tiny


def test_parse_gives_stages_in_order():
  assert parse_bits_schedule("") == ()
  assert parse_bits_schedule("8:300, 6:600") == ((8, 300), (6, 600))
  assert parse_bits_schedule("5:1,") == ((5, 1),)


@pytest.mark.parametrize("text,message", [
    ("8-300", r"'8-300' is not BITS:UNTIL_STEP"),
    ("8:300:1", r"'8:300:1' is not BITS:UNTIL_STEP"),
    ("17:300", r"bits must be in \[1, 16\], got 17"),
    ("8:300,6:300", r"the steps must increase"),
    ("8:0", r"the steps must increase from > 0"),
    (8, r"must be a string like '8:300,6:600', got 8"),
])
def test_bad_schedules_name_the_field(text, message):
  with pytest.raises(ValueError, match="config.quant.bits_schedule.*" + message):
    parse_bits_schedule(text)


def test_a_schedule_needs_converters_and_must_end_before_the_run():
  quant = quant_from_config({"adc_bits": 4})
  check_bits_schedule(((8, 5),), "", quant, 6)
  with pytest.raises(ValueError, match="bits_schedule needs converters"):
    check_bits_schedule(((8, 5),), "", None, 6)
  with pytest.raises(ValueError, match="not used with preset='aihwkit'"):
    check_bits_schedule(((8, 5),), "aihwkit", quant, 6)
  with pytest.raises(ValueError, match="ends at step 6, not before the run's 6 steps"):
    check_bits_schedule(((8, 6),), "", quant, 6)


def test_schedule_errors_come_before_any_data_is_read(tmp_path, monkeypatch):
  monkeypatch.setattr("freqnoise.experiment.load_splits", data_must_not_be_read)
  for schedule, message in (("8:20", "ends at step 20"), ("x", "is not BITS:UNTIL_STEP")):
    with pytest.raises(ValueError, match=message):
      train_and_evaluate(tiny(**{"quant.adc_bits": 4, "quant.bits_schedule": schedule}),
                         str(tmp_path / "run"))
  with pytest.raises(ValueError, match="needs converters"):
    train_and_evaluate(tiny(**{"quant.bits_schedule": "8:5"}), str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_stages_change_bits_only_and_keep_learned_ranges():
  final = quant_from_config({"weight_bits": 4, "dac_bits": 3, "dac_bound": 2.0, "adc_bits": 4,
                             "adc_mode": "learned", "adc_bound": 3.5})
  stage = with_bits(final, 8)
  assert (stage.weight.bits, stage.dac.bits, stage.adc.bits) == (8, 8, 8)
  assert (stage.weight.step_bits, stage.dac.step_bits, stage.adc.step_bits) == (4, 3, 4)
  assert stage.adc.mode == "learned" and stage.dac.bound == 2.0 and stage.layers == final.layers
  assert with_bits(stage, 6).adc.step_bits == 4  # stored units stay the final config's
  # One stored LSQ step (the final 4-bit quantizer's): the 8-bit stage spans the same range.
  x = np.linspace(-4, 4, 2001, dtype=np.float32)
  params = Quantizer(final.adc).init(jax.random.key(0), x)
  assert float(params["params"]["step"]) == pytest.approx(3.5 / 7)  # adc_bound / qmax(4 bits)
  ranges = {}
  for cfg in (final.adc, stage.adc):
    grid = Quantizer(cfg).apply(params, x, method=Quantizer.grid)
    ranges[cfg.bits] = float(grid.step) * cfg.qmax
    np.testing.assert_allclose(float(stored_grid(cfg, params).step), float(grid.step), rtol=1e-7)
    y = np.asarray(Quantizer(cfg).apply(params, x))
    assert len(np.unique(y)) == cfg.levels and np.abs(y).max() == pytest.approx(3.5)
  assert ranges[8] == pytest.approx(ranges[4], rel=1e-6) == pytest.approx(3.5)
  # A stage initialises its step in the same stored units as the final quantizer.
  init8 = Quantizer(stage.adc).init(jax.random.key(0), x)
  assert float(init8["params"]["step"]) == pytest.approx(float(params["params"]["step"]))
  with pytest.raises(ValueError, match=r"QuantConfig.step_bits must be an int in \[1, 16\]"):
    QuantConfig(bits=4, step_bits=0)


def _scheduled(**overrides):
  """The tiny digits MLP, one device, 4-bit weights/DAC/ADC (tracked ADC ranges, ADC noise)."""
  return tiny(num_devices=1, num_steps=6, log_every=1, eval_every=6, checkpoint_every=3,
              **{"quant.weight_bits": 4, "quant.dac_bits": 4, "quant.dac_bound": 3.0,
                 "quant.adc_bits": 4, "quant.adc_mode": "tracked", "quant.adc_noise_lsb": 0.5,
                 **overrides})


def _max_difference(a, b) -> float:
  return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_training_switches_bits_by_step_and_resumes_exactly(tmp_path):
  schedule = _scheduled(**{"quant.bits_schedule": "8:3"})
  # Steps 1-3 are those of a plain 8-bit run (same seed, same initial state; XLA fuses the
  # switched step differently, so to float32 rounding: the kernels' largest difference is ~1e-8).
  train_and_evaluate(schedule, str(tmp_path / "s"), stop_after=3)
  plain8 = _scheduled(**{"quant.weight_bits": 8, "quant.dac_bits": 8, "quant.adc_bits": 8})
  train_and_evaluate(plain8, str(tmp_path / "p8"), stop_after=3)
  assert _max_difference(params_of(tmp_path / "s", schedule),
                         params_of(tmp_path / "p8", plain8)) < 1e-6
  # Resumed at step 3, the 4-bit stage follows: bitwise the run that was not stopped, and far
  # from the run that stays at 8 bits and from the one at 4 bits throughout.
  resumed = train_and_evaluate(schedule, str(tmp_path / "s"))
  straight = train_and_evaluate(schedule, str(tmp_path / "t"))
  assert resumed["test_loss"] == straight["test_loss"] and resumed["steps"] == 6
  assert _max_difference(params_of(tmp_path / "s", schedule),
                         params_of(tmp_path / "t", schedule)) == 0
  train_and_evaluate(plain8, str(tmp_path / "p8"))
  train_and_evaluate(_scheduled(), str(tmp_path / "p4"))
  for other, cfg in (("p8", plain8), ("p4", _scheduled())):
    assert _max_difference(params_of(tmp_path / "s", schedule).params,
                           params_of(tmp_path / other, cfg).params) > 1e-4


def test_learned_adc_steps_train_through_a_schedule(tmp_path):
  cfg = _scheduled(**{"quant.adc_mode": "learned", "quant.adc_bound": 4.0,
                      "quant.bits_schedule": "8:2,6:4"})
  result = train_and_evaluate(cfg, str(tmp_path / "run"))
  assert np.isfinite(result["test_loss"]) and result["steps"] == 6
  steps = [layer["analog"]["adc"]["step"] for layer in params_of(tmp_path / "run", cfg).params.values()]
  assert len(steps) == 3 and all(0 < float(s) < 4.0 / 7 * 2 for s in steps)
