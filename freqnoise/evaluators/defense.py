"""Adversarial evaluators (paper 2's defense: noise at inference against black-box attacks).

    # on the substitute run: craft a stored transfer set from its test split
    config.evals.craft = dict(type="craft", epsilon=0.3, steps=40, limit=1000)
    # on the target run: accuracy on that set (black box) and white-box PGD with EOT, over a grid
    # of inference SNRs x noise draws, with voting
    config.evals.blackbox = dict(type="adversarial", source="/runs/substitute/adversarial_set.npz")
    config.evals.whitebox = dict(type="adversarial", source="whitebox", eot_draws=8)

`craft` writes `output` (npz: x_adv, label, index into the split) and `output + '.json'`
(provenance: the run, its checkpoint step, the attack, the substitute's own accuracy on the set),
so every defense is scored on the same examples. `adversarial` evaluates the target's
`config.eval_noise` at each SNR of `snrs_db` with `num_draws` draws through `mc_accuracy` (mean,
95% interval over draws, majority / mean-probability voting), on the adversarial inputs and on the
same clean examples. With `source='whitebox'` the examples are crafted against the target itself
at each SNR, the gradient averaged over `eot_draws` noise draws (expectation over transformation),
so a noisy defense is not credited for masking gradients. Attack fields are
`freqnoise.adversarial`'s (ε and step as fractions of the pixel range).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
from typing import Any

import numpy as np

from freqnoise import adversarial, rng
from freqnoise.data.dataset import sample_indices
from freqnoise.evaluators.montecarlo import (NoisyPredict, check_count, check_split,
                                             deterministic_at_inf, noise_summary, planned_devices,
                                             snr_grid, stack_rows, write_json)
from freqnoise.evaluators.registry import register
from freqnoise.robust.attacks import experiment_logits_fn
from freqnoise.robust.montecarlo import mc_accuracy, result_to_json
from freqnoise.workdir import fingerprint

_ATTACK = {k: adversarial.DEFAULTS[k] for k in adversarial.ATTACK_FIELDS}

CRAFT_DEFAULTS = {
    **_ATTACK,
    "noise": "off",       # the substitute's noise while crafting: off | eval (its eval_noise)
    "split": "test",      # which split to attack: train | test
    "limit": 0,           # attack a seeded sample of N examples of the split (0 = all)
    "batch_size": 0,      # examples per attack batch (0 = the run's eval batch size)
    "output": "adversarial_set.npz",  # file in the workdir (absolute paths allowed)
}

DEFENSE_DEFAULTS = {
    **_ATTACK,
    "source": "whitebox",  # whitebox (PGD on the target, EOT over its noise) | path of a crafted set
    "snrs_db": (),        # inference SNR grid in dB (inf = noiseless); () = eval_noise.snr_db
    "num_draws": 8,       # noise draws per SNR; voting uses K = 1..num_draws
    "split": "test",      # whitebox: which split to attack
    "limit": 0,           # whitebox: a seeded sample of N examples (0 = all)
    "batch_size": 0,      # examples per batch (0 = the run's eval batch size)
    "output": "defense.json",  # file in the workdir for the full arrays ("" = don't write)
}


def _check_craft(config, settings: dict) -> None:
  adversarial.check_pixel_input(config, "an attack")
  adversarial.attack_config(settings, "")
  if settings["noise"] not in ("off", "eval"):
    raise ValueError(f"noise must be 'off' or 'eval', got {settings['noise']!r}")
  check_split(settings)
  check_count(settings, "limit", 0)
  check_count(settings, "batch_size", 0)
  if not settings["output"] or not isinstance(settings["output"], str):
    raise ValueError(f"output must name the npz file to write, got {settings['output']!r}")


def _check_defense(config, settings: dict) -> None:
  adversarial.check_pixel_input(config, "an attack")
  adversarial.attack_config(settings, "")
  if not isinstance(settings["source"], str) or not settings["source"]:
    raise ValueError(f"source must be 'whitebox' or the path of a crafted set, got "
                     f"{settings['source']!r}")
  if settings["source"] != "whitebox" and not os.path.isfile(os.path.expanduser(settings["source"])):
    raise FileNotFoundError(f"source {settings['source']!r}: no such crafted set (make it with "
                            "a 'craft' evaluator on the substitute run)")
  if settings["source"] != "whitebox":  # its data and shapes: now, not after training
    adversarial.check_stored_set(config, settings["source"])
  snr_grid(settings, config)
  draws = check_count(settings, "num_draws", 1)
  devices = planned_devices(config)
  if devices and draws % devices:
    raise ValueError(f"num_draws={draws} must be a multiple of the run's {devices} devices")
  check_split(settings)
  check_count(settings, "limit", 0)
  check_count(settings, "batch_size", 0)


def _sample(experiment, settings: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(inputs, labels, indices into the split) of the split or its seeded sample (never a prefix:
  image folders are sorted by class)."""
  ds = getattr(experiment.splits, settings["split"])
  indices = sample_indices(len(ds), settings["limit"] or len(ds), experiment.config.seed)
  labels = ds.arrays[experiment.label_key][indices]
  if labels.ndim != 1:
    raise ValueError(f"adversarial evaluators need one label per example, got labels of shape "
                     f"{labels.shape}")
  return ds.arrays[experiment.input_key][indices], labels, indices


def _craft_against(experiment, state, noise, images, labels, settings, key, label):
  config = adversarial.attack_config(settings)
  return adversarial.craft(lambda v: experiment_logits_fn(experiment, v, noise),
                           experiment.variables(state), images, labels, config, key,
                           settings["batch_size"] or experiment.eval_batch_size, progress=label)


@register("craft", CRAFT_DEFAULTS, check=_check_craft)
def craft(experiment, state, key, settings: dict) -> dict[str, float]:
  """Crafts and stores adversarial examples of the split against this run's model."""
  import jax
  images, labels, indices = _sample(experiment, settings)
  noise = experiment.eval_noise if settings["noise"] == "eval" else None
  x_adv = _craft_against(experiment, state, noise, images, labels, settings,
                         rng.named_key(key, "attack"), "crafting")
  clean = _accuracy(experiment, state, images, labels, noise, key)
  attacked = _accuracy(experiment, state, x_adv, labels, noise, key)
  step = int(jax.device_get(state.step))
  path = os.path.join(experiment.workdir, settings["output"])
  adversarial.save_set(path, x_adv, labels, indices, {
      "workdir": os.path.abspath(experiment.workdir), "checkpoint_step": step,
      "fingerprint": fingerprint(experiment.config.to_dict()), "model": experiment.config.model.name,
      "data": experiment.config.data.source, "split": settings["split"], "seed":
      experiment.config.seed, "attack": adversarial.attack_record(settings),
      "noise": settings["noise"], "examples": len(labels), "substitute_clean_accuracy": clean,
      "substitute_adversarial_accuracy": attacked,
      "created": datetime.datetime.now().isoformat(timespec="seconds")})
  return {"clean_accuracy": clean, "adversarial_accuracy": attacked, "examples": len(labels)}


@dataclasses.dataclass(frozen=True)
class FixedPredict:
  """`apply_fn` of `mc_accuracy` with one fixed noise (None = noiseless) whatever the SNR."""

  experiment: Any
  noise: Any

  def __call__(self, variables, x, snr_db, key, program_key, mask):
    return self.experiment.predict(variables, x, noise=self.noise, key=key,
                                   program_key=program_key, mask=mask)


def _accuracy(experiment, state, images, labels, noise, key) -> float:
  """The fraction of `labels` that one pass of `predict` under `noise` (a draw from `key`) gets."""
  result = mc_accuracy(FixedPredict(experiment, noise), experiment.variables(state), images, labels,
                       snrs_db=[math.inf], num_draws=1, key=key,
                       batch_size=experiment.eval_batch_size, static_at_inf=noise is None)
  return float(result.accuracy[0, 0])


@register("adversarial", DEFENSE_DEFAULTS, check=_check_defense)
def defense(experiment, state, key, settings: dict) -> dict[str, float]:
  """Accuracy on adversarial inputs (and the same clean ones) per inference SNR x noise draw."""
  spec = experiment.eval_noise_spec
  snrs = snr_grid(settings, experiment.config)
  batch = settings["batch_size"] or experiment.eval_batch_size
  run = lambda x, y, grid, k: mc_accuracy(
      NoisyPredict(experiment, spec), experiment.variables(state), x, y, snrs_db=grid,
      num_draws=settings["num_draws"], key=k, batch_size=batch, mesh=experiment.mesh,
      static_at_inf=deterministic_at_inf(spec, experiment.quant))
  if settings["source"] == "whitebox":
    images, labels, indices = _sample(experiment, settings)
    provenance = {"source": "whitebox", "attack": adversarial.attack_record(settings)}
    rows = []
    for i, snr in enumerate(snrs):  # the attack sees the noise it is scored under (EOT)
      noise = None if math.isinf(snr) and deterministic_at_inf(spec, experiment.quant) else spec.replace(
          snr_db=snr, snr_db_range=None)
      x_adv = _craft_against(experiment, state, noise, images, labels, settings,
                             rng.named_key(key, f"attack/{i}"), f"white-box PGD at {snr} dB")
      rows.append(run(x_adv, labels, [snr], key))
    attacked = stack_rows(rows)
  else:
    x_adv, labels, indices, provenance = adversarial.load_set(settings["source"])
    images = _matching_clean(experiment, x_adv, labels, indices, provenance, settings["source"])
    attacked = run(x_adv, labels, snrs, key)
  clean = run(images, labels, snrs, key)
  if settings["output"]:
    write_json(os.path.join(experiment.workdir, settings["output"]), {
        "noise": noise_summary(spec, experiment.quant), "set": provenance,
        "adversarial": result_to_json(attacked),
        "clean": result_to_json(clean)})
  return {**attacked.metrics(prefix=""), **clean.metrics(prefix="clean")}


def _matching_clean(experiment, x_adv, labels, indices, provenance, path) -> np.ndarray:
  """The clean inputs the stored set was crafted from, in this run's split; a set made on other
  data (labels or shapes differ) is a clear error."""
  ds = getattr(experiment.splits, provenance.get("split", "test"))
  inputs = ds.arrays[experiment.input_key]
  if x_adv.shape[1:] != inputs.shape[1:]:
    raise ValueError(f"{path}: examples of shape {x_adv.shape[1:]}, but this run's inputs are "
                     f"{inputs.shape[1:]}")
  if indices.max(initial=-1) >= len(inputs) or not np.array_equal(
      ds.arrays[experiment.label_key][indices], labels):
    raise ValueError(f"{path} was crafted on other data than this run's "
                     f"{provenance.get('split', 'test')} split (its labels do not match the "
                     "examples it indexes); craft it on a substitute trained on the same data "
                     "source")
  return inputs[indices]
