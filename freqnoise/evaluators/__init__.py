"""Evaluators: a layer below the trainer that every evaluation goes through.

    evaluators.check_config(config)             # config.evals, before any data is read
    split_eval = evaluators.split_evaluator(experiment)  # SplitEvaluator, or COCO AP for detectors
    metrics = split_eval(state, split="test")   # {'loss', 'accuracy'[, 'perplexity']} / {'box_AP', ...}
    extra = evaluators.run_configured(experiment, state, writer, step)

`config.evals.<name> = dict(type=..., <fields it changes>)`; types: `montecarlo` (accuracy over
SNRs x noise draws, voting), `mc_perplexity` (language models), `coco` (a detector's COCO AP and a
picture of its detections), `craft` (a stored set of
adversarial examples) and `adversarial` (black-box / EOT white-box accuracy over SNRs x draws). Each evaluator calls
`experiment.predict` with keys from `experiment.key(<name>)` (freqnoise.rng). This package imports
experiment / robust / losses / rng, never the trainer.
"""

from freqnoise.evaluators import defense, detection, montecarlo, perplexity  # noqa: F401 (types)
from freqnoise.evaluators.registry import (check_config, configured, known_types, register, run,
                                           run_configured, settings)
from freqnoise.evaluators.split import SplitEvaluator
from freqnoise.evaluators.detection import DetectionEvaluator, evaluator_of


def split_evaluator(experiment):
  """The trainer's periodic eval of `experiment`: COCO AP for a detector (`config.loss =
  'maskrcnn'`), loss and accuracy otherwise."""
  if experiment.objective == "maskrcnn":
    return evaluator_of(experiment)
  return SplitEvaluator(experiment)


__all__ = ["DetectionEvaluator", "SplitEvaluator", "split_evaluator", "check_config", "configured", "known_types", "register", "run",
           "run_configured", "settings"]
