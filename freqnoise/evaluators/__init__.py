"""Evaluators: a layer below the trainer that every evaluation goes through.

    evaluators.check_config(config)             # config.evals, before any data is read
    split_eval = evaluators.SplitEvaluator(experiment)
    metrics = split_eval(state, split="test")   # {'loss', 'accuracy'[, 'perplexity']}
    extra = evaluators.run_configured(experiment, state, writer, step)

`config.evals.<name> = dict(type=..., <fields it changes>)`; types: `montecarlo` (accuracy over
SNRs x noise draws, voting), `mc_perplexity` (language models), `craft` (a stored set of
adversarial examples) and `adversarial` (black-box / EOT white-box accuracy over SNRs x draws). Each evaluator calls
`experiment.predict` with keys from `experiment.key(<name>)` (freqnoise.rng). This package imports
experiment / robust / losses / rng, never the trainer.
"""

from freqnoise.evaluators import defense, montecarlo, perplexity  # noqa: F401 (registers types)
from freqnoise.evaluators.registry import (check_config, configured, known_types, register, run,
                                           run_configured, settings)
from freqnoise.evaluators.split import SplitEvaluator

__all__ = ["SplitEvaluator", "check_config", "configured", "known_types", "register", "run",
           "run_configured", "settings"]
