"""Cited component figures and reference systems for the crossbar efficiency model (hardware.py).

Sources (see /work/shared/REFERENCES.md, "Crossbar efficiency (paper 4)"); "derived" marks our
arithmetic on sourced numbers.

* ISAAC (Shafiee et al., ISCA 2016) components at 32 nm, as tabulated in Accelergy's
  `hwcomponents-library` (`library/isaac.py`):
  - ADC: Kull et al. (ISSCC 2013) 8-bit 1.2 GS/s SAR in 32 nm SOI; 4-10 bits scaled as in Saberi et
    al. (2011). Energy per conversion (pJ) and area (um^2) in `ADC_ISAAC`. ISAAC runs its ADCs at
    1.28 GS/s, one per 128x128 array (8 per IMA of 8 arrays).
  - DAC: 1 bit, 0.41667 pJ per row drive, 0.166 um^2. A b-bit DAC is scaled by 2^(b-1) in energy and
    area (Accelergy's `IsaacDAC` resolution scaling, `pow_base(2)`).
  - 128x128 crossbar (2-6-bit cells): 0.3 mW while reading, 128 ns per read, 2.5e-5 mm^2 (256x256:
    1.2 mW, 1.0e-4 mm^2: both scale with the cell count) -> derived 2.34 fJ and 1.49 F^2 per cell.
  - shift-and-add: 0.021 pJ per operation, 60 um^2.
  - eDRAM: 20.45 pJ per 256-bit access, 0.083 mm^2 per 64 KB (area linear in capacity, as Accelergy
    scales `IsaacEDRAM`).
* ADC alternatives: the Murmann-survey fit (Accelergy `hwcomponents-adc`; Andrulis et al., arXiv
  2404.06553, 2024), derived 0.92 / 1.07 / 1.71 pJ at 4 / 6 / 8 bits at 32 nm; FORMS (Yuan et al.,
  ISCA 2021) 4-bit 0.226 pJ, 284 um^2 at 32 nm (Accelergy `forms.py`, scaled by 2^(b-4)).
* ReRAM cell, NeuroSim defaults: R_on 100 kOhm, 0.5 V read, 10 ns pulse, 1T1R 48 F^2 -> derived
  V^2/R_on * t = 25 fJ per cell read (every cell at R_on: an upper bound).
* Digital arithmetic (activations, element-wise products): Horowitz, "Computing's energy problem",
  ISSCC 2014, 45 nm: 16-bit float multiply 1.1 pJ / 1640 um^2, add 0.4 pJ / 1360 um^2. Not scaled to
  32 nm (a conservative choice).

Reference systems (`REFERENCES`): GPU = Baidu DeepBench LSTM inference (cuDNN FP32, batch 4) / 250 W
board power, FLOP = op; die area of GP102 (Titan Xp, GTX 1080 Ti) 471 mm^2 (Nvidia, reported by
ComputerBase, 2016). FPGA = ESE (FPGA 2017, Xilinx KU060, 41 W) and C-LSTM (FPGA 2018, 33.5x ESE's
energy efficiency); we found no sourced die area of the KU060, so FPGA area efficiency is left out.
ASIC / other NVM = ISAAC (479 GOPS/s/mm^2; its power efficiency is not in our sources) and PUMA
(ASPLOS 2019: 837 GOPS/s/W, 577 GOPS/s/mm^2).
"""

from __future__ import annotations

import dataclasses

ADC_MODELS = ("isaac", "survey", "forms")

# bits: (pJ per conversion, um^2) -- Accelergy isaac.py, the Saberi-scaled rows of the Kull ADC.
ADC_ISAAC = {4: (0.79, 361.04), 5: (0.99, 476.91), 6: (1.20, 626.91), 7: (1.42, 845.18),
             8: (1.67, 1200.0), 9: (1.969078145, 1827.911647), 10: (2.379022742, 3002.008032)}
ADC_SURVEY_PJ = {4: 0.92, 6: 1.07, 8: 1.71}  # survey fit at 32 nm (derived, REFERENCES.md)
ADC_FORMS = (4, 0.22619, 284.375)             # bits, pJ, um^2
ADC_GSPS = 1.28                               # ISAAC's ADC sampling rate, GS/s

DAC_1BIT_PJ = 0.41667
DAC_1BIT_UM2 = 0.166015625

ISAAC_ARRAY_MW, ISAAC_READ_NS, ISAAC_ARRAY_MM2 = 0.3, 128.0, 2.5e-5  # 128x128
ISAAC_CELL_FJ = ISAAC_ARRAY_MW * 1e-3 * ISAAC_READ_NS * 1e-9 / 128**2 * 1e15  # 2.34375 fJ
ISAAC_CELL_F2 = ISAAC_ARRAY_MM2 / 128**2 / (32e-6)**2                        # 1.49 F^2 at 32 nm
NEUROSIM_CELL_FJ = 0.5**2 / 100e3 * 10e-9 * 1e15                             # 25 fJ
NEUROSIM_CELL_F2 = 48.0

SHIFT_ADD_PJ, SHIFT_ADD_UM2 = 0.021, 60.0
EDRAM_PJ_PER_ACCESS, EDRAM_ACCESS_BITS = 20.45, 256
EDRAM_MM2_PER_BIT = 0.083 / (64 * 1024 * 8)

FP16_MULT_PJ, FP16_ADD_PJ = 1.1, 0.4
FP16_MULT_UM2, FP16_ADD_UM2 = 1640.0, 1360.0

GP102_DIE_MM2 = 471.0


def _check_bits(bits) -> int:
  if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
    raise ValueError(f"adc_bits must be an integer in [1, 16], got {bits!r}")
  return bits


def adc_energy_pj(bits: int, model: str = "isaac") -> float:
  """Energy of one conversion (pJ) of a `bits`-bit ADC at 32 nm.

  'isaac': the table at 4-10 bits; outside it x2 per bit from the nearest end (Walden FOM
  P / (2^ENOB fs) held constant; Accelergy scales the ISAAC ADC the same way).
  'survey': the survey fit at 4/6/8 bits, geometric interpolation between them; below 4 bits held
  at the 4-bit value (the survey's best converters at ENOB 3.5-5 are no cheaper than at 5-6.5:
  0.96 vs 0.78 pJ), above 8 bits x2 per bit (Walden).
  'forms': 0.226 pJ at 4 bits, x2 per bit either way.
  """
  bits = _check_bits(bits)
  if model == "isaac":
    end = min(max(bits, 4), 10)
    return ADC_ISAAC[end][0] * 2.0**(bits - end)
  if model == "survey":
    if bits <= 4:
      return ADC_SURVEY_PJ[4]
    if bits >= 8:
      return ADC_SURVEY_PJ[8] * 2.0**(bits - 8)
    lo = 4 if bits < 6 else 6
    t = (bits - lo) / 2
    return ADC_SURVEY_PJ[lo]**(1 - t) * ADC_SURVEY_PJ[lo + 2]**t
  if model == "forms":
    return ADC_FORMS[1] * 2.0**(bits - ADC_FORMS[0])
  raise ValueError(f"unknown adc_model {model!r}; expected one of {', '.join(ADC_MODELS)}")


def adc_area_um2(bits: int, model: str = "isaac") -> float:
  """Area (um^2) of one ADC: the ISAAC table (x2 per bit outside 4-10 bits) for 'isaac' and
  'survey' (the survey fit gives no area), FORMS' 284 um^2 x 2^(bits-4) for 'forms'."""
  bits = _check_bits(bits)
  if model in ("isaac", "survey"):
    end = min(max(bits, 4), 10)
    return ADC_ISAAC[end][1] * 2.0**(bits - end)
  if model == "forms":
    return ADC_FORMS[2] * 2.0**(bits - ADC_FORMS[0])
  raise ValueError(f"unknown adc_model {model!r}; expected one of {', '.join(ADC_MODELS)}")


def dac_energy_pj(bits: int) -> float:
  """Energy of one row drive (pJ) by a `bits`-bit DAC: 0.41667 pJ x 2^(bits - 1)."""
  return DAC_1BIT_PJ * 2.0**(bits - 1)


def dac_area_um2(bits: int) -> float:
  """Area of one `bits`-bit DAC (um^2): 0.166 um^2 x 2^(bits - 1)."""
  return DAC_1BIT_UM2 * 2.0**(bits - 1)


@dataclasses.dataclass(frozen=True)
class Reference:
  """A published LSTM / crossbar system: computing efficiency (GOPS/s/W) and area efficiency
  (GOPS/s/mm^2); None where the sources give no figure."""
  name: str
  kind: str                     # 'GPU', 'FPGA' or 'ASIC/NVM'
  gops_per_w: float | None
  gops_per_mm2: float | None
  source: str


REFERENCES = (
    Reference("Titan Xp (DeepBench LSTM h=1536 b=4)", "GPU", 550.0 / 250.0,
              550.0 / GP102_DIE_MM2, "DeepBench 0.55 TFLOPS FP32 / 250 W board; GP102 471 mm^2"),
    Reference("GTX 1080 Ti (DeepBench LSTM h=256 b=4)", "GPU", 190.0 / 250.0,
              190.0 / GP102_DIE_MM2, "DeepBench 0.19 TFLOPS FP32 / 250 W board; GP102 471 mm^2"),
    Reference("ESE sparse (KU060)", "FPGA", 282.0 / 41.0, None,
              "ESE, FPGA 2017: 282 GOPS on the sparse LSTM at 41 W"),
    Reference("ESE dense-equivalent (KU060)", "FPGA", 2520.0 / 41.0, None,
              "ESE, FPGA 2017: 2.52 TOPS dense-equivalent at 41 W"),
    Reference("C-LSTM (33.5x ESE dense-eq.)", "FPGA", 33.5 * 2520.0 / 41.0, None,
              "C-LSTM, FPGA 2018: 33.5x ESE's energy efficiency, on ESE's dense-equivalent basis"),
    Reference("ISAAC", "ASIC/NVM", None, 479.0, "ISAAC, ISCA 2016: 479 GOPS/s/mm^2"),
    Reference("PUMA", "ASIC/NVM", 837.0, 577.0,
              "PUMA, ASPLOS 2019: 837 GOPS/s/W, 577 GOPS/s/mm^2 at 1 GHz"),
)
