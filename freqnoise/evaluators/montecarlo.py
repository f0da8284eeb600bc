"""The `montecarlo` evaluator: accuracy[snr, draw] and voting over draws (freqnoise.robust).

    config.evals.montecarlo = dict(type="montecarlo", snrs_db=(-5.0, 0.0, float("inf")))

The noise is `config.eval_noise` (kind / power / layers / weight noise, even when its own SNR is
inf) with the SNR taken from the grid. The grid runs one SNR at a time (each row one compiled
`mc_accuracy` call, the same keys as a call over the whole grid, so the same numbers), printing
a progress line with the ETA after each. Writes the full arrays to the workdir as JSON (redraw
plots with freqnoise.plots) and returns flat scalars 'snr_X/mean', 'snr_X/ci95', ....
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any

import jax
import numpy as np

from freqnoise.analog.noise import NoiseConfig, noise_from_config
from freqnoise.evaluators.progress import SweepProgress
from freqnoise.evaluators.registry import register
from freqnoise.experiment import CARRY
from freqnoise.robust.montecarlo import MCResult, mc_accuracy, result_to_json
from freqnoise.workdir import write_atomically

DEFAULTS = {
    "snrs_db": (),           # eval SNR grid in dB (inf = noiseless); () = eval_noise.snr_db
    "num_draws": 16,         # independent noise draws (chips) per SNR; voting uses K = 1..num_draws
    "draws_per_chunk": 0,    # draws evaluated at once, bounds memory (0 = all at once); a multiple
                             # of the run's devices (draws are sharded over the mesh)
    "batch_size": 0,         # examples per batch (0 = the run's eval batch size)
    "split": "test",         # which split to evaluate: train | test
    "limit": 0,              # evaluate a seeded sample of N examples across the split (0 = all)
    "output": "montecarlo.json",  # file in the workdir for the full arrays ("" = don't write)
}

CARRIED = ("the montecarlo evaluator treats examples as independent, but this model carries its "
           "recurrent state across batches (config.model.carry_state); evaluate it with the "
           "mc_perplexity evaluator (python -m freqnoise.evaluate --eval=mc_perplexity)")

_INF_SPELLINGS = {"inf", "+inf", "infinity", "float('inf')", 'float("inf")', "math.inf", "np.inf"}


def parse_snr_grid(grid) -> list[float]:
  """SNRs in dB from a sequence of numbers or a string such as "-5,0,inf" or "(0.0, float('inf'))"
  (what a command-line override of a tuple field arrives as). Raises ValueError naming the bad
  entry; NaN, -inf and non-numbers are rejected."""
  if not isinstance(grid, str) and any(isinstance(g, str) for g in grid):
    grid = ",".join(str(g) for g in grid)  # e.g. ("(0.0, float('inf'))",) from a tuple override
  if isinstance(grid, str):
    text = grid.strip()
    if text[:1] in "([" and text[-1:] in ")]":  # one pair of outer brackets
      text = text[1:-1]
    grid = [g.strip() for g in text.split(",") if g.strip()]
  out = []
  for g in grid:
    if isinstance(g, str):
      token = g.strip().lower().replace(" ", "")
      if token in _INF_SPELLINGS:
        out.append(math.inf)
        continue
      try:
        g = float(token)
      except ValueError:
        raise ValueError(f"snrs_db: cannot read {g!r} as an SNR in dB (write numbers and inf, "
                         "e.g. '-5,0,5,inf')") from None
    if isinstance(g, bool) or not isinstance(g, (int, float, np.integer, np.floating)):
      raise TypeError(f"snrs_db: {g!r} is not a number")
    if math.isnan(g) or g == -math.inf:
      raise ValueError(f"snrs_db: {g} is not a valid SNR in dB")
    out.append(float(g))
  return out


def snr_grid(settings: dict, config) -> list[float]:
  """The SNR grid: `snrs_db`, else the eval noise's own SNR (an error when that is off)."""
  grid = parse_snr_grid(settings["snrs_db"])
  if grid:
    return grid
  eval_noise = noise_from_config(config.get("eval_noise"))
  if eval_noise is None:
    raise ValueError("snrs_db is empty and config.eval_noise is off: give the SNR grid "
                     "(e.g. snrs_db=(0.0, float('inf'))) or config.eval_noise.snr_db")
  return [float(eval_noise.snr_db)]


def check_count(settings: dict, name: str, minimum: int) -> int:
  v = settings[name]
  if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
    raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")
  return int(v)


def check_split(settings: dict) -> None:
  if settings["split"] not in ("train", "test"):
    raise ValueError(f"split must be 'train' or 'test', got {settings['split']!r}")


def planned_devices(config) -> int | None:
  """The size of the mesh the run will build, when known before any JAX backend starts.

  A multi-process run must call jax.distributed.initialize() before touching JAX, so there the
  count is left to the run-time check."""
  if config.get("num_devices", 0):
    return int(config.num_devices)
  if config.get("num_processes", 1) > 1:
    return None
  return jax.device_count()


def _check(config, settings: dict) -> None:
  if (config.get("model") or {}).get("carry_state", False):
    raise ValueError(CARRIED)
  snr_grid(settings, config)
  draws = check_count(settings, "num_draws", 1)
  chunk = check_count(settings, "draws_per_chunk", 0) or draws
  for name in ("batch_size", "limit"):
    check_count(settings, name, 0)
  check_split(settings)
  if not isinstance(settings["output"], str):
    raise ValueError(f"output must be a file name (or ''), got {settings['output']!r}")
  if draws % chunk:
    raise ValueError(f"draws_per_chunk={chunk} must divide num_draws={draws}")
  processes = config.get("num_processes", 1)
  if processes > 1 and chunk % processes:
    raise ValueError(f"draws_per_chunk (= num_draws when 0) = {chunk} is not divisible by "
                     f"config.num_processes={processes}: draws are sharded over every process's "
                     "devices")
  devices = planned_devices(config)
  if devices and chunk % devices:
    raise ValueError(f"draws_per_chunk (= num_draws when 0) = {chunk} must be a multiple of the "
                     f"run's {devices} devices: draws are sharded over the mesh")


@dataclasses.dataclass(frozen=True)
class NoisyPredict:
  """`apply_fn` of `mc_accuracy`: `experiment.predict` with `noise` at the traced SNR. Hashable
  (the experiment by identity), so repeated evaluations of one run compile once."""

  experiment: Any
  noise: NoiseConfig

  def __call__(self, variables, x, snr_db, key, program_key, mask):
    noise = self.noise.replace(snr_db=snr_db, snr_db_range=None)
    return self.experiment.predict(variables, x, noise=noise, key=key, program_key=program_key,
                                   mask=mask)


def deterministic_at_inf(noise: NoiseConfig, quant=None) -> bool:
  """True when `noise` at SNR = inf adds nothing random (no weight noise) and neither do the
  model's converters `quant` (a ProductQuant: no ADC noise, no stochastic rounding): Monte Carlo
  draws at inf are then all the same pass."""
  if quant is not None:
    if quant.adc_noise is not None and quant.adc_noise.lsb:
      return False
    if getattr(quant, "periphery", None) is not None and quant.periphery.out_noise:
      return False  # aihwkit's output noise without an ADC (res <= 0)
    if any(c is not None and c.stochastic for c in (quant.weight, quant.dac, quant.adc)):
      return False
  return noise.replace(snr_db=math.inf, snr_db_range=None).statically_off


def evaluation_set(experiment, settings: dict) -> tuple[np.ndarray, np.ndarray]:
  """(inputs, labels) of the split, or a seeded sample of `limit` examples across it (never a
  prefix: image folders are sorted by class)."""
  ds = getattr(experiment.splits, settings["split"])
  if settings["limit"]:
    ds = ds.sample(settings["limit"], experiment.config.seed)
  labels = ds.arrays[experiment.label_key]
  if np.ndim(labels) != 1:
    raise ValueError(f"montecarlo evaluator needs one label per example, got labels of shape "
                     f"{np.shape(labels)}")
  return ds.arrays[experiment.input_key], labels


def stack_rows(rows: list[MCResult]) -> MCResult:
  """One MCResult of the rows of several (over the same examples and draws), in order."""
  cat = lambda name: np.concatenate([getattr(r, name) for r in rows])
  return MCResult(snrs_db=cat("snrs_db"), accuracy=cat("accuracy"), majority=cat("majority"),
                  mean_prob=cat("mean_prob"), num_examples=rows[0].num_examples)


def write_json(path: str, data: dict) -> None:
  """Writes `data` to `path` atomically (temp file + rename), from process 0 only."""
  if jax.process_index() == 0:
    write_atomically(path, json.dumps(data))


def noise_summary(noise: NoiseConfig, quant=None) -> dict:
  """The eval noise of a result file, with the ADC noise of the model's converters when on."""
  summary = {"kind": noise.kind, "power": noise.power, "layers": noise.layers,
             "weight_noise": noise.weight_noise, "weight_sigma": float(noise.weight_sigma),
             "weight_draw": getattr(noise, "weight_draw", "programming")}
  if quant is not None and quant.adc_noise is not None and quant.adc_noise.lsb:
    summary["adc_noise_lsb"] = float(quant.adc_noise.lsb)
    summary["adc_noise_position"] = quant.adc_noise.position
  return summary


@register("montecarlo", DEFAULTS, check=_check)
def montecarlo(experiment, state, key, settings: dict) -> dict[str, float]:
  """accuracy[snr, draw] under `config.eval_noise` at each SNR of the grid, and majority /
  mean-probability voting over the draws."""
  if CARRY in state.model_state:
    raise ValueError(CARRIED)
  spec = experiment.eval_noise_spec
  images, labels = evaluation_set(experiment, settings)
  snrs = snr_grid(settings, experiment.config)
  progress = SweepProgress("montecarlo", snrs, settings["num_draws"],
                           f"{len(labels):,} {settings['split']} examples")
  rows = []
  for snr in snrs:  # a row at a time, for the progress line: its keys do not depend on the row
    rows.append(mc_accuracy(
        NoisyPredict(experiment, spec), experiment.variables(state), images, labels,
        snrs_db=[snr], num_draws=settings["num_draws"], key=key,
        batch_size=settings["batch_size"] or experiment.eval_batch_size,
        draws_per_chunk=settings["draws_per_chunk"] or None, mesh=experiment.mesh,
        static_at_inf=deterministic_at_inf(spec, experiment.quant)))
    progress.row(snr, {"mean": float(rows[-1].mean[0])})
  result = stack_rows(rows)
  if settings["output"]:
    write_json(os.path.join(experiment.workdir, settings["output"]),
               {"noise": noise_summary(spec, experiment.quant), **result_to_json(result)})
  return result.metrics(prefix="")
