"""Crossbar efficiency model of an NVM LSTM accelerator (DESIGN.md, "Crossbar efficiency model").

One LSTM time step of `layers` stacked layers (4 gates; layer 0 reads `input_size` inputs, later
layers `hidden_size`) on resistive crossbars: every gate weight matrix is tiled onto rows x cols
arrays, all arrays hold their weights at once (no reprogramming), and per step

    energy = crossbar reads + DAC drives + ADC conversions + shift-adds + buffer + digital,
    ops    = 2 MACs = 2 * 4 H (K + H) per layer (K = its input size); biases and the element-wise
             cell update are not counted as ops, the usual convention,
    TOPS/W = ops / energy (1 op per pJ = 1 TOPS/W),  TOPS/mm^2 = ops / interval / area.

Mapping. Weights of `weight_bits` are cut into `slices = ceil(weight_bits / cell_bits)` cells
(twice as many with a differential pair, whose two currents are subtracted before the ADC); an
array holds `cols // cells_per_weight` weights per row. x_t and h_{t-1} drive separate arrays
(separate DACs, as in the patent US 11,074,318) or one array over the concatenation [x_t, h_{t-1}]
(`separate_inputs=False`); partial sums of row tiles and slices are added by shift-add units. An
input of `input_bits` is applied either by a multi-bit DAC in one read, or bit-serially by 1-bit
DACs in `input_bits` reads (as ISAAC does). Every read converts each used column (one conversion
per differential pair) and each array's `adcs_per_array` ADCs share its columns.

Time. A read takes max(`read_ns`, conversions per ADC / `adc_gsps`); the digital stage (bias,
3 sigmoids + 2 tanh, c = f*c + i*g, h = o*tanh(c): 13 lane operations per hidden unit on
`digital_lanes` lanes at `digital_ghz`) follows the reads. `overlap_digital`: the digital stage of
one sequence overlaps the reads of another (two interleaved sequences; the GPU figures use batch 4),
so a layer's step interval is max(analog, digital), else their sum. `pipeline_layers`: layer l runs
step t while layer l+1 runs step t-1, so the interval is the slowest layer's, else their sum.
Latency (one step through all layers) is always the sum of analog + digital over layers.

Costs (32 nm unless said; sources and derivations in `hardware_refs`): ADC from the ISAAC table
(Kull 2013 / Saberi 2011 via Accelergy), the Murmann-survey fit or FORMS (`adc_model`); 1-bit DAC
0.417 pJ, b-bit x 2^(b-1) (Accelergy); cell read energy and area per cell (defaults NeuroSim ReRAM
1T1R: 25 fJ, 48 F^2; ISAAC's array figures give 2.34 fJ, 1.49 F^2); shift-add 0.021 pJ, 60 um^2, one
per ADC (ISAAC); eDRAM 20.45 pJ per 256-bit access for x_t, h_{t-1} (read), h_t (write) and c
(`state_bits`, read + write), double-buffered, 0.083 mm^2 per 64 KB (ISAAC); digital lanes of one
16-bit float multiplier + adder (Horowitz, ISSCC 2014, 45 nm: 1.1 + 0.4 pJ, 1640 + 1360 um^2), an
activation costing one multiply-add (a piecewise-linear segment). Static power, sample-and-holds,
routers and off-chip I/O are not modelled.
"""

from __future__ import annotations

import dataclasses
import math

from freqnoise.analog import hardware_refs as refs

DAC_MODES = ("multibit", "bit_serial")
COMPONENTS = ("crossbar", "dac", "adc", "shift_add", "buffer", "digital")
GATES = 4
LANE_OPS_PER_UNIT = 13  # 5 activations + 3 products + 5 sums (4 biases, the c update)


@dataclasses.dataclass(frozen=True)
class CrossbarSpec:
  """What to build. Defaults: the PTB "medium" LSTM (Zaremba et al. 2014, 2 x 650) with the paper's
  4-bit weights, 4-bit DAC and 4-bit ADC on ISAAC-sized 128 x 128 arrays."""
  input_size: int = 650          # inputs of layer 0 (the embedding width)
  hidden_size: int = 650         # H, LSTM units per layer
  layers: int = 2                # stacked LSTM layers
  separate_inputs: bool = True   # x_t, h_{t-1} on separate arrays (patent); False: [x_t, h_{t-1}]
  rows: int = 128                # array rows (inputs)
  cols: int = 128                # array columns (cells)
  weight_bits: int = 4           # bits per weight
  cell_bits: int = 2             # bits per NVM cell
  differential: bool = False     # two cells (G+ - G-) per slice, subtracted before the ADC
  input_bits: int = 4            # bits of x_t and h_{t-1}
  dac: str = "multibit"          # 'multibit': one read per product; 'bit_serial': input_bits reads
  adc_bits: int = 4              # ADC resolution
  adc_model: str = "isaac"       # 'isaac' table, 'survey' fit or 'forms' (hardware_refs)
  adcs_per_array: int = 1        # ADCs sharing one array's columns (ISAAC: 1)
  adc_gsps: float = refs.ADC_GSPS            # conversions per ns of one ADC
  cell_read_fj: float = refs.NEUROSIM_CELL_FJ  # energy of one cell in one read (fJ)
  cell_area_f2: float = refs.NEUROSIM_CELL_F2  # cell area in F^2
  feature_nm: float = 32.0       # F, the feature size that cell_area_f2 is counted in
  read_ns: float = refs.ISAAC_READ_NS          # shortest array read (ISAAC: 128 ns)
  state_bits: int = 16           # bits of the cell state c in the buffer
  digital_lanes: int = 64        # multiply-add lanes per layer for the element-wise stage
  digital_ghz: float = 1.0       # clock of the digital lanes
  pipeline_layers: bool = True   # layers work on consecutive steps at once
  overlap_digital: bool = True   # digital stage hidden behind another sequence's reads

  def __post_init__(self):
    for name in ("input_size", "hidden_size", "layers", "rows", "cols", "adcs_per_array",
                 "digital_lanes"):
      _check_int(name, getattr(self, name), 1)
    for name in ("weight_bits", "cell_bits", "input_bits", "adc_bits", "state_bits"):
      _check_int(name, getattr(self, name), 1, 16)
    for name in ("adc_gsps", "cell_area_f2", "feature_nm", "read_ns", "digital_ghz"):
      _check_float(name, getattr(self, name), positive=True)
    _check_float("cell_read_fj", self.cell_read_fj, positive=False)
    for name in ("separate_inputs", "differential", "pipeline_layers", "overlap_digital"):
      if not isinstance(getattr(self, name), bool):
        raise ValueError(f"CrossbarSpec.{name} must be True or False, got {getattr(self, name)!r}")
    _check_choice("dac", self.dac, DAC_MODES)
    _check_choice("adc_model", self.adc_model, refs.ADC_MODELS)
    if self.cols < self.cells_per_weight:
      raise ValueError(f"CrossbarSpec.cols ({self.cols}) holds no weight: a weight needs "
                       f"{self.cells_per_weight} cells (weight_bits, cell_bits, differential)")
    if self.adcs_per_array > self.cols:
      raise ValueError(f"CrossbarSpec.adcs_per_array ({self.adcs_per_array}) exceeds the "
                       f"{self.cols} columns of an array")

  @property
  def slices(self) -> int:
    """Cells a weight is cut into (one per `cell_bits` of its bits)."""
    return _ceil(self.weight_bits, self.cell_bits)

  @property
  def cells_per_weight(self) -> int:
    return self.slices * (2 if self.differential else 1)

  @property
  def cycles(self) -> int:
    """Array reads per matrix-vector product."""
    return self.input_bits if self.dac == "bit_serial" else 1

  @property
  def dac_bits(self) -> int:
    return 1 if self.dac == "bit_serial" else self.input_bits


def _ceil(a: int, b: int) -> int:
  return -(-a // b)


def _check_int(name, value, lo, hi=None):
  if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi and value > hi):
    bound = f"in [{lo}, {hi}]" if hi else f">= {lo}"
    raise ValueError(f"CrossbarSpec.{name} must be an integer {bound}, got {value!r}")


def _check_float(name, value, *, positive):
  ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        and (value > 0 if positive else value >= 0))
  if not ok:
    raise ValueError(f"CrossbarSpec.{name} must be a finite number {'> 0' if positive else '>= 0'}"
                     f", got {value!r}")


def _check_choice(name, value, choices):
  if value not in choices:
    raise ValueError(f"CrossbarSpec.{name} must be one of {', '.join(choices)}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class Report:
  """Per LSTM time step: energy (pJ) and area (mm^2) by component (keys `COMPONENTS`), latency and
  step interval (ns), MACs and ops (2 per MAC); tiling per layer."""
  spec: CrossbarSpec
  row_tiles: tuple[int, ...]     # arrays stacked along the inputs, per layer
  col_tiles: tuple[int, ...]     # arrays side by side along the 4H gate outputs, per layer
  arrays: int                    # all arrays
  utilisation: float             # weight cells / all cells of all arrays
  cycle_ns: float                # one array read incl. its conversions
  latency_ns: float              # one step through all layers
  interval_ns: float             # time between steps at full throughput
  macs: int
  ops: int
  energy_pj: dict[str, float]
  area_mm2: dict[str, float]

  @property
  def energy_total_pj(self) -> float:
    return sum(self.energy_pj.values())

  @property
  def area_total_mm2(self) -> float:
    return sum(self.area_mm2.values())

  @property
  def tops(self) -> float:
    return self.ops / self.interval_ns / 1e3

  @property
  def power_w(self) -> float:
    return self.energy_total_pj / self.interval_ns / 1e3

  @property
  def tops_per_w(self) -> float:
    return self.ops / self.energy_total_pj

  @property
  def tops_per_mm2(self) -> float:
    return self.tops / self.area_total_mm2

  def to_dict(self) -> dict:
    d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
    d["spec"] = dataclasses.asdict(self.spec)
    for name in ("energy_total_pj", "area_total_mm2", "tops", "power_w", "tops_per_w",
                 "tops_per_mm2"):
      d[name] = getattr(self, name)
    return d

  def table(self) -> str:
    s = self.spec
    lines = [f"LSTM {s.layers} x {s.hidden_size} (input {s.input_size}), {s.rows}x{s.cols} arrays, "
             f"{s.weight_bits}-bit weights in {s.cells_per_weight} x {s.cell_bits}-bit cells, "
             f"{s.input_bits}-bit inputs ({s.dac} DAC), {s.adc_bits}-bit ADC ({s.adc_model}), "
             f"{s.adcs_per_array} ADC/array",
             f"arrays {self.arrays} (row x col tiles per layer: "
             + ", ".join(f"{r}x{c}" for r, c in zip(self.row_tiles, self.col_tiles))
             + f"), utilisation {self.utilisation:.1%}",
             f"{'component':<10} {'energy pJ':>12} {'%':>6} {'area mm^2':>11} {'%':>6}"]
    for k in COMPONENTS:
      e, a = self.energy_pj[k], self.area_mm2[k]
      lines.append(f"{k:<10} {e:>12.1f} {e / self.energy_total_pj:>6.1%} {a:>11.4f} "
                   f"{a / self.area_total_mm2:>6.1%}")
    lines += [f"{'total':<10} {self.energy_total_pj:>12.1f} {'':>6} {self.area_total_mm2:>11.4f}",
              f"ops/step {self.ops:,}  latency {self.latency_ns:.1f} ns  interval "
              f"{self.interval_ns:.1f} ns  {self.tops:.2f} TOPS  {self.power_w:.3f} W",
              f"{self.tops_per_w:.3f} TOPS/W  {self.tops_per_mm2:.3f} TOPS/mm^2"]
    return "\n".join(lines)


def evaluate(spec: CrossbarSpec) -> Report:
  """The per-step costs of `spec` (see the module docstring for the model)."""
  s, H, G = spec, spec.hidden_size, GATES
  per_array = min(s.cols // s.cells_per_weight, G * H)  # weights along one array's columns
  conv_per_read = per_array * s.slices                   # conversions of one array in one read
  cycle_ns = max(s.read_ns, _ceil(conv_per_read, s.adcs_per_array) / s.adc_gsps)
  digital_ns = _ceil(LANE_OPS_PER_UNIT * H, s.digital_lanes) / s.digital_ghz
  analog_ns = s.cycles * cycle_ns
  layer_interval = (max(analog_ns, digital_ns) if s.overlap_digital else analog_ns + digital_ns)
  e = dict.fromkeys(COMPONENTS, 0.0)
  row_tiles, col_tiles, buffer_bits, macs = [], [], 0, 0
  for layer in range(s.layers):
    k = s.input_size if layer == 0 else H
    rt = _ceil(k, s.rows) + _ceil(H, s.rows) if s.separate_inputs else _ceil(k + H, s.rows)
    ct = _ceil(G * H, s.cols // s.cells_per_weight)
    row_tiles.append(rt)
    col_tiles.append(ct)
    macs += G * H * (k + H)
    conversions = s.cycles * rt * G * H * s.slices
    e["crossbar"] += s.cycles * (k + H) * G * H * s.cells_per_weight * s.cell_read_fj / 1e3
    e["dac"] += s.cycles * (k + H) * ct * refs.dac_energy_pj(s.dac_bits)
    e["adc"] += conversions * refs.adc_energy_pj(s.adc_bits, s.adc_model)
    e["shift_add"] += conversions * refs.SHIFT_ADD_PJ
    width = refs.EDRAM_ACCESS_BITS  # read x_t, h_{t-1}; write h_t; read and write c
    words = (_ceil((k + H) * s.input_bits, width) + _ceil(H * s.input_bits, width)
             + 2 * _ceil(H * s.state_bits, width))
    e["buffer"] += words * refs.EDRAM_PJ_PER_ACCESS
    e["digital"] += H * (5 * (refs.FP16_MULT_PJ + refs.FP16_ADD_PJ) + 3 * refs.FP16_MULT_PJ
                         + 5 * refs.FP16_ADD_PJ)
    buffer_bits += 2 * ((k + H) * s.input_bits + H * s.state_bits)
  arrays = sum(r * c for r, c in zip(row_tiles, col_tiles))
  adcs = arrays * s.adcs_per_array
  area = {
      "crossbar": arrays * s.rows * s.cols * s.cell_area_f2 * (s.feature_nm * 1e-6)**2,
      "dac": arrays * s.rows * refs.dac_area_um2(s.dac_bits) * 1e-6,
      "adc": adcs * refs.adc_area_um2(s.adc_bits, s.adc_model) * 1e-6,
      "shift_add": adcs * refs.SHIFT_ADD_UM2 * 1e-6,
      "buffer": buffer_bits * refs.EDRAM_MM2_PER_BIT,
      "digital": s.layers * s.digital_lanes * (refs.FP16_MULT_UM2 + refs.FP16_ADD_UM2) * 1e-6,
  }
  return Report(  # one weight per MAC
      spec=s, row_tiles=tuple(row_tiles), col_tiles=tuple(col_tiles), arrays=arrays,
      utilisation=macs * s.cells_per_weight / (arrays * s.rows * s.cols),
      cycle_ns=cycle_ns, latency_ns=s.layers * (analog_ns + digital_ns),
      interval_ns=layer_interval * (1 if s.pipeline_layers else s.layers),
      macs=macs, ops=2 * macs, energy_pj=e, area_mm2=area)


def compare(report: Report, references=refs.REFERENCES) -> dict[str, dict]:
  """Ratios of `report`'s efficiencies to each reference's: {name: {'kind', 'computing' (ops/s/W
  ratio), 'area' (ops/s/mm^2 ratio)}}, None where the reference gives no figure."""
  def ratio(ours, theirs):
    return None if theirs is None else ours / theirs

  return {r.name: {"kind": r.kind, "computing": ratio(report.tops_per_w * 1e3, r.gops_per_w),
                   "area": ratio(report.tops_per_mm2 * 1e3, r.gops_per_mm2)}
          for r in references}
