"""Crossbar efficiency model: a tiny spec computed by hand, tiling, ADC tables, monotonicity,
validation (freqnoise/analog/hardware.py, hardware_refs.py)."""

import dataclasses
import json
import math

import pytest

from freqnoise.analog import hardware_refs as refs
from freqnoise.analog.hardware import COMPONENTS, CrossbarSpec, compare, evaluate

# 1 layer, 3 inputs, 2 units, 4x4 arrays, 4-bit weights in two 2-bit cells, 4-bit multi-bit DAC,
# 4-bit ISAAC-table ADC, NeuroSim cells.
TINY = CrossbarSpec(input_size=3, hidden_size=2, layers=1, rows=4, cols=4, weight_bits=4,
                    cell_bits=2, input_bits=4, dac="multibit", adc_bits=4, adc_model="isaac",
                    adcs_per_array=1, cell_read_fj=25.0, cell_area_f2=48.0, feature_nm=32.0,
                    read_ns=128.0, state_bits=16, digital_lanes=2, digital_ghz=1.0)


def test_tiny_spec_tiling_and_ops():
  r = evaluate(TINY)
  # x: ceil(3/4) = 1 row tile, h: ceil(2/4) = 1; 2 weights per 4 columns -> ceil(4*2 / 2) = 4
  assert (r.row_tiles, r.col_tiles, r.arrays) == ((2,), (4,), 8)
  assert (r.macs, r.ops) == (4 * 2 * (3 + 2), 80)
  assert r.utilisation == 5 * 8 * 2 / (8 * 16)


def test_tiny_spec_energy_by_hand():
  e = evaluate(TINY).energy_pj
  conversions = 2 * 8 * 2                               # row tiles x 4H outputs x 2 slices
  assert e["crossbar"] == pytest.approx(5 * 8 * 2 * 25.0 / 1000)  # (I+H) x 4H x 2 cells x 25 fJ
  assert e["dac"] == pytest.approx(5 * 4 * 0.41667 * 8)           # rows x col tiles x 4-bit DAC
  assert e["adc"] == pytest.approx(conversions * 0.79)
  assert e["shift_add"] == pytest.approx(conversions * 0.021)
  assert e["buffer"] == pytest.approx((1 + 1 + 2) * 20.45)        # x,h read; h write; c r+w
  assert e["digital"] == pytest.approx(2 * (5 * 1.5 + 3 * 1.1 + 5 * 0.4))
  total = 2.0 + 66.6672 + 25.28 + 0.672 + 81.8 + 25.6
  r = evaluate(TINY)
  assert r.energy_total_pj == pytest.approx(total)
  assert r.tops_per_w == pytest.approx(80 / total)


def test_tiny_spec_area_and_time_by_hand():
  r = evaluate(TINY)
  a = r.area_mm2
  assert a["crossbar"] == pytest.approx(8 * 16 * 48 * 0.032**2 * 1e-6)
  assert a["dac"] == pytest.approx(8 * 4 * 0.166015625 * 8 * 1e-6)
  assert a["adc"] == pytest.approx(8 * 361.04e-6)
  assert a["shift_add"] == pytest.approx(8 * 60e-6)
  assert a["buffer"] == pytest.approx(2 * (5 * 4 + 2 * 16) * 0.083 / (64 * 1024 * 8))
  assert a["digital"] == pytest.approx(2 * (1640 + 1360) * 1e-6)
  # 4 conversions per read take 3.1 ns < 128 ns; digital: ceil(13*2 / 2 lanes) = 13 ns
  assert (r.cycle_ns, r.interval_ns, r.latency_ns) == (128.0, 128.0, 141.0)
  assert r.tops == pytest.approx(80 / 128 / 1e3)
  assert r.tops_per_mm2 == pytest.approx(r.tops / sum(a.values()))
  assert r.power_w == pytest.approx(r.energy_total_pj / 128 / 1e3)


def test_bit_serial_reads_once_per_input_bit_with_1bit_dacs():
  r = evaluate(dataclasses.replace(TINY, dac="bit_serial"))
  assert r.energy_pj["crossbar"] == pytest.approx(4 * 2.0)
  assert r.energy_pj["dac"] == pytest.approx(4 * 5 * 4 * 0.41667)
  assert r.energy_pj["adc"] == pytest.approx(4 * 32 * 0.79)
  assert r.area_mm2["dac"] == pytest.approx(8 * 4 * 0.166015625 * 1e-6)
  assert (r.interval_ns, r.latency_ns) == (512.0, 525.0)


def test_no_overlap_and_no_pipelining_add_up():
  s = dataclasses.replace(TINY, layers=3, overlap_digital=False, pipeline_layers=False)
  r = evaluate(s)
  assert (r.interval_ns, r.latency_ns) == (3 * 141.0, 3 * 141.0)
  assert evaluate(dataclasses.replace(s, pipeline_layers=True)).interval_ns == 141.0


def test_paper_default_tiling():
  r = evaluate(CrossbarSpec())
  # 650 / 128 -> 6 tiles for x and 6 for h; 2600 gate outputs / 64 weights per array -> 41
  assert (r.row_tiles, r.col_tiles, r.arrays) == ((12, 12), (41, 41), 984)
  assert r.ops == 2 * 2 * 4 * 650 * 1300
  assert r.utilisation == pytest.approx(2 * 1300 * 2600 * 2 / (984 * 128 * 128))


def test_concatenated_inputs_share_row_tiles():
  s = dataclasses.replace(TINY, input_size=2)
  assert evaluate(s).row_tiles == (2,)
  assert evaluate(dataclasses.replace(s, separate_inputs=False)).row_tiles == (1,)
  # later layers read H inputs
  assert evaluate(dataclasses.replace(s, layers=2, input_size=7)).row_tiles == (3, 2)


def test_differential_doubles_cells_not_conversions():
  r, d = evaluate(TINY), evaluate(dataclasses.replace(TINY, differential=True))
  assert d.col_tiles == (8,)                      # 4 cells per weight: one weight per array
  assert d.energy_pj["crossbar"] == pytest.approx(2 * r.energy_pj["crossbar"])
  assert d.energy_pj["adc"] == r.energy_pj["adc"]


def test_adc_sharing_sets_area_and_read_time():
  big = CrossbarSpec(rows=512, cols=512)
  one, four = evaluate(big), evaluate(dataclasses.replace(big, adcs_per_array=4))
  assert one.cycle_ns == pytest.approx(512 / 1.28)     # 256 weights x 2 slices per ADC
  assert four.cycle_ns == 128.0                       # 128 conversions take 100 ns < 128 ns
  assert four.area_mm2["adc"] == pytest.approx(4 * one.area_mm2["adc"])
  assert four.energy_pj["adc"] == one.energy_pj["adc"]


def test_adc_tables_reproduced_at_table_points():
  for bits, (pj, um2) in refs.ADC_ISAAC.items():
    assert refs.adc_energy_pj(bits, "isaac") == pj and refs.adc_area_um2(bits, "isaac") == um2
  assert [refs.adc_energy_pj(b, "isaac") for b in (4, 6, 8, 10)] == [0.79, 1.20, 1.67, 2.379022742]
  assert [refs.adc_energy_pj(b, "survey") for b in (4, 6, 8)] == [0.92, 1.07, 1.71]
  assert refs.adc_energy_pj(4, "forms") == 0.22619 and refs.adc_area_um2(4, "forms") == 284.375


def test_adc_extrapolation_rules():
  assert refs.adc_energy_pj(2, "isaac") == pytest.approx(0.79 / 4)      # Walden: x2 per bit
  assert refs.adc_energy_pj(12, "isaac") == pytest.approx(2.379022742 * 4)
  assert refs.adc_area_um2(3, "isaac") == pytest.approx(361.04 / 2)
  assert refs.adc_energy_pj(5, "survey") == pytest.approx(math.sqrt(0.92 * 1.07))
  assert refs.adc_energy_pj(2, "survey") == 0.92                        # survey floor
  assert refs.adc_energy_pj(9, "survey") == pytest.approx(2 * 1.71)
  assert refs.adc_area_um2(5, "survey") == refs.adc_area_um2(5, "isaac")
  assert refs.dac_energy_pj(1) == 0.41667 and refs.dac_energy_pj(4) == pytest.approx(8 * 0.41667)


@pytest.mark.parametrize("model", refs.ADC_MODELS)
def test_more_adc_bits_cost_more_energy_and_area(model):
  reports = [evaluate(CrossbarSpec(adc_bits=b, adc_model=model)) for b in range(2, 11)]
  energies = [r.energy_total_pj for r in reports]
  areas = [r.area_total_mm2 for r in reports]
  assert all(b > a for a, b in zip(energies[2:], energies[3:]))      # 4 bits and up: strictly
  assert all(b >= a for a, b in zip(energies, energies[1:]))
  assert all(b > a for a, b in zip(areas, areas[1:]))


def test_compare_divides_by_each_reference():
  r = evaluate(CrossbarSpec())
  ratios = compare(r)
  assert set(ratios) == {ref.name for ref in refs.REFERENCES}
  puma = ratios["PUMA"]
  assert puma["computing"] == pytest.approx(r.tops_per_w * 1e3 / 837.0)
  assert puma["area"] == pytest.approx(r.tops_per_mm2 * 1e3 / 577.0)
  assert ratios["ISAAC"]["computing"] is None
  assert ratios["ESE dense-equivalent (KU060)"]["area"] is None
  gpu = next(ref for ref in refs.REFERENCES if ref.kind == "GPU")
  assert gpu.gops_per_w == pytest.approx(2.2) and gpu.gops_per_mm2 == pytest.approx(550 / 471)


def test_report_table_and_json():
  r = evaluate(TINY)
  text = r.table()
  assert "TOPS/W" in text and all(k in text for k in COMPONENTS)
  d = json.loads(json.dumps(r.to_dict()))
  assert d["ops"] == 80 and d["spec"]["hidden_size"] == 2
  assert d["tops_per_w"] == pytest.approx(r.tops_per_w)


@pytest.mark.parametrize("field, value", [
    ("input_size", 0), ("hidden_size", -3), ("layers", 1.5), ("rows", True), ("cols", "128"),
    ("weight_bits", 17), ("cell_bits", 0), ("input_bits", 0), ("adc_bits", 0), ("state_bits", 40),
    ("adcs_per_array", 0), ("digital_lanes", 0), ("adc_gsps", 0.0), ("cell_read_fj", -1.0),
    ("cell_area_f2", float("nan")), ("feature_nm", float("inf")), ("read_ns", 0),
    ("digital_ghz", -1.0), ("separate_inputs", 1), ("differential", "no"),
    ("pipeline_layers", None), ("overlap_digital", 0), ("dac", "pwm"), ("adc_model", "magic"),
])
def test_invalid_fields_raise_naming_the_field(field, value):
  with pytest.raises(ValueError, match=f"CrossbarSpec.{field} "):
    CrossbarSpec(**{field: value})


def test_arrays_too_narrow_or_too_many_adcs():
  with pytest.raises(ValueError, match="CrossbarSpec.cols .* 4 cells"):
    CrossbarSpec(cols=3, differential=True)
  with pytest.raises(ValueError, match="CrossbarSpec.adcs_per_array"):
    CrossbarSpec(cols=64, rows=64, adcs_per_array=65)
  with pytest.raises(ValueError, match="adc_bits"):
    refs.adc_energy_pj(0)
