"""The `mc_perplexity` evaluator: test perplexity of a language model under D noise draws per SNR.

    config.evals.mc_perplexity = dict(type="mc_perplexity", snrs_db=(0.0, float("inf")))

Perplexity of one pass = exp(mean token NLL over the real rows of the split). A model that carries
its LSTM state across batches (`carry_state`) is run over the rows in stream order,
`eval_batch_size` streams at a time, from a zero state, exactly as the trainer's SplitEvaluator
runs it; otherwise rows are independent and `batch_size` of them run at once.

Keys as `montecarlo`'s (freqnoise.robust.montecarlo): draw d is one chip,
`draw_program_key(key, d)`, for the whole pass, and batch b of it uses `draw_noise_key(key, d, b)`.
At SNR inf with nothing else random, the draws are one pass, computed once. A progress line
with the ETA is printed after each SNR (freqnoise.evaluators.progress).
"""

from __future__ import annotations

import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

from freqnoise import sharding
from freqnoise.data.pipeline import eval_batches
from freqnoise.evaluators.montecarlo import (check_count, check_split, deterministic_at_inf,
                                             noise_summary, planned_devices, snr_grid, write_json)
from freqnoise.evaluators.progress import SweepProgress
from freqnoise.evaluators.registry import register
from freqnoise.evaluators.split import zero_carry
from freqnoise.experiment import CARRY
from freqnoise.losses import cross_entropy
from freqnoise.robust.montecarlo import draw_noise_key, draw_program_key, snr_name

DEFAULTS = {
    "snrs_db": (),           # eval SNR grid in dB (inf = noiseless); () = eval_noise.snr_db
    "num_draws": 4,          # independent noise draws (chips) per SNR
    "batch_size": 0,         # rows per batch without a carried state (0 = the eval batch size);
                             # a carried state always runs eval_batch_size streams at a time
    "split": "test",         # which split to evaluate: train | test
    "output": "mc_perplexity.json",  # file in the workdir for the [snr, draw] array ("" = none)
}


def _check(config, settings: dict) -> None:
  snr_grid(settings, config)
  check_count(settings, "num_draws", 1)
  batch = check_count(settings, "batch_size", 0)
  check_split(settings)
  if not isinstance(settings["output"], str):
    raise ValueError(f"output must be a file name (or ''), got {settings['output']!r}")
  devices = planned_devices(config)
  if batch and devices and batch % devices:
    raise ValueError(f"batch_size={batch} must be a multiple of the run's {devices} devices")


@functools.partial(jax.jit, static_argnames=("experiment", "noise"))
def _nll_sum(experiment, noise, variables, batch, carry, snr_db, key, draw, index):
  """(summed token NLL, token count) of one batch and the carry after it. `snr_db` None: `noise`
  as it is (static); else `noise` at the traced SNR."""
  if snr_db is not None:
    noise = noise.replace(snr_db=snr_db, snr_db_range=None)
  out = experiment.predict(variables, batch[experiment.input_key], noise=noise,
                           key=draw_noise_key(key, draw, index),
                           program_key=draw_program_key(key, draw), carry=carry,
                           mask=batch["mask"])
  logits, carry = out if carry is not None else (out, None)
  nll, count = cross_entropy(logits, batch[experiment.label_key], 0.0, batch["mask"])
  return nll, count, carry


@register("mc_perplexity", DEFAULTS, check=_check)
def mc_perplexity(experiment, state, key, settings: dict) -> dict[str, float]:
  """perplexity[snr, draw] under `config.eval_noise` at each SNR of the grid."""
  carried = CARRY in state.model_state
  rows = experiment.eval_batch_size if carried else (settings["batch_size"]
                                                     or experiment.eval_batch_size)
  sharding.check_batch_size(rows, experiment.mesh, "mc_perplexity batch_size")
  split = getattr(experiment.splits, settings["split"])
  # Token splits are small: put them on the devices once for all passes.
  batches = [sharding.shard_batch(b, experiment.mesh) for b in eval_batches(
      split, rows, process_index=jax.process_index(), process_count=jax.process_count())]
  variables = experiment.variables(state)
  spec = experiment.eval_noise_spec
  static = deterministic_at_inf(spec, experiment.quant)

  def one_pass(snr: float, draw: int) -> float:
    noise, snr_arg = (spec.replace(snr_db=math.inf, snr_db_range=None), None) \
        if static and math.isinf(snr) else (spec, jnp.float32(snr))
    carry, nll, count = zero_carry(experiment, state, rows), 0.0, 0.0
    for index, batch in enumerate(batches):
      b_nll, b_count, carry = _nll_sum(experiment, noise, variables, batch, carry, snr_arg, key,
                                       jnp.int32(draw), jnp.int32(index))
      nll, count = nll + b_nll, count + b_count
    return math.exp(float(nll) / float(count))

  snrs = snr_grid(settings, experiment.config)
  ppl = np.zeros((len(snrs), settings["num_draws"]))
  progress = SweepProgress("mc_perplexity", snrs, settings["num_draws"],
                           f"{len(split):,} {settings['split']} rows")
  for i, snr in enumerate(snrs):
    if static and math.isinf(snr):  # every draw is the same noiseless pass
      ppl[i] = one_pass(snr, 0)
    else:
      ppl[i] = [one_pass(snr, d) for d in range(settings["num_draws"])]
    progress.row(snr, {"perplexity": float(ppl[i].mean())})
  if settings["output"]:
    write_json(os.path.join(experiment.workdir, settings["output"]),
               {"noise": noise_summary(spec, experiment.quant),
                "snrs_db": ["inf" if math.isinf(s) else s for s in snrs],
                "perplexity": ppl.tolist()})
  std = ppl.std(axis=1, ddof=1) if ppl.shape[1] > 1 else np.zeros(len(snrs))
  out = {}
  for s, m, sd in zip(snrs, ppl.mean(axis=1), std):
    out.update({f"snr_{snr_name(s)}/mean": float(m), f"snr_{snr_name(s)}/std": float(sd)})
  return out
