"""Train-step time of the 4/4/4 quantization-aware LSTM (4-bit weights, DAC and ADC) against the
same LSTM in float, measured in the same run (paper 4; goal: QAT ≤ 1.5× float).

    python experiments/benchmarks/bench_quant.py            # both shapes, 50 steps
    python experiments/benchmarks/bench_quant.py --quick    # seconds: a smoke test

Shapes (the registered models, built by `build_model` exactly as a run builds them):
* ptb: `lstm_lm`, Zaremba et al.'s small PTB LSTM: 2 layers of 200, vocabulary 10,000, batch 20,
  35 steps (tokens drawn at random: the time does not depend on them).
* seqmnist: `seq_classifier`, 1 LSTM layer of 128 over 28 rows of 28 pixels, batch 128.
QAT: `config.quant` weight_bits = dac_bits = adc_bits = 4; weights dynamic (max|W| per array), the
DAC fixed ±1, the ADC tracked (an EMA range in 'quant_ranges', updated every step of every layer),
on every product (both LSTM arrays of every layer with their own DACs and ADCs, and the softmax
layer). Float: the same model with `quant=None`. One jitted step each (forward, backward, Adam,
the 'quant_ranges' update); timed round-robin, one step of each in turn after `--warmup` steps, so
that load from other processes hits both alike; medians of `--steps`, `block_until_ready` on the
new params.

aihwkit (IBM's analog toolkit; its 4-bit `InferenceRPUConfig` LSTM would be the peer): `pip install
--dry-run aihwkit` here resolves aihwkit 1.2.0 as a source distribution only (no wheel for this
Python/platform: a C++/pybind11 build) pulling torch 2.14.1 and about 3 GB of CUDA wheels; it would
not change jax or numpy, but it is not installed, so no comparison with it is made here.

Writes the table to stdout and the raw figures to `--out` (default
experiments/benchmarks/results/quant.json, written through a temporary file and os.replace; with
`--quick` only when `--out` is given).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from freqnoise.analog.product_quant import DEFAULTS, quant_from_config  # noqa: E402
from freqnoise.models import build_model  # noqa: E402
from bench_rnn import interleaved_ms  # noqa: E402  (this folder: the one round-robin timer)

RESULTS = os.path.join(ROOT, "experiments", "benchmarks", "results", "quant.json")
QAT = {**DEFAULTS, "weight_bits": 4, "dac_bits": 4, "dac_mode": "fixed", "dac_bound": 1.0,
       "adc_bits": 4, "adc_mode": "tracked"}
# name -> (model config, num_classes, batch, steps, features (0: tokens))
SHAPES = {
    "ptb": ({"name": "lstm_lm", "embed_dim": 200, "hidden": 200, "num_layers": 2}, 10000, 20, 35, 0),
    "seqmnist": ({"name": "seq_classifier", "cell": "lstm", "hidden": 128}, 10, 128, 28, 28),
}
QUICK = {  # --quick: a few seconds per variant
    "ptb": ({"name": "lstm_lm", "embed_dim": 32, "hidden": 32, "num_layers": 2}, 500, 8, 12, 0),
    "seqmnist": ({"name": "seq_classifier", "cell": "lstm", "hidden": 32}, 10, 16, 8, 8),
}


def train_step(model_config: dict, num_classes: int, batch: int, steps: int, features: int,
               quant):
  """A closure running one jitted train step of the model (with `quant` or float)."""
  model = build_model(model_config, num_classes=num_classes, quant=quant)
  rng = np.random.default_rng(0)
  if features:
    x = jnp.asarray(rng.random((batch, steps, features), np.float32))
    y = jnp.asarray(rng.integers(0, num_classes, batch))
  else:
    x = jnp.asarray(rng.integers(0, num_classes, (batch, steps)))
    y = jnp.asarray(rng.integers(0, num_classes, (batch, steps)))
  variables = jax.jit(lambda k: model.init(k, x, train=False))(jax.random.key(0))
  params = variables.pop("params")
  tx = optax.adam(1e-3)
  state = {"params": params, "model": variables, "opt": tx.init(params)}

  @jax.jit
  def step(params, model_state, opt, key):
    def loss_fn(p):
      logits, updates = model.apply({"params": p, **model_state}, x, train=True,
                                    rngs={"noise": key, "dropout": key}, mutable=list(model_state))
      return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), updates
    grads, updates = jax.grad(loss_fn, has_aux=True)(params)
    deltas, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, deltas), {**model_state, **updates}, opt

  def run(i: int) -> None:
    state["params"], state["model"], state["opt"] = step(state["params"], state["model"],
                                                         state["opt"], jax.random.key(i))
    jax.block_until_ready(state["params"])

  return run


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--shapes", default="ptb,seqmnist", help="comma list of " + ", ".join(SHAPES))
  parser.add_argument("--steps", type=int, default=50, help="timed steps per variant")
  parser.add_argument("--warmup", type=int, default=5, help="untimed steps (compile included)")
  parser.add_argument("--quick", action="store_true", help="small shapes, 5 steps: a smoke test")
  parser.add_argument("--out", default=None, help=f"raw figures (JSON); default {RESULTS}")
  args = parser.parse_args()
  shapes = QUICK if args.quick else SHAPES
  steps, warmup = (5, 2) if args.quick else (args.steps, args.warmup)
  out = None if args.quick and args.out is None else (args.out or RESULTS)
  qat = quant_from_config(QAT)
  load_before = os.getloadavg()
  rows = []
  print(f"{platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} CPU "
        f"threads, jax {jax.__version__} ({jax.default_backend()}), load {load_before[0]:.1f}; "
        f"median of {steps} train steps (ms){' [quick]' if args.quick else ''}")
  print("| shape | QAT 4/4/4 (ms) | float (ms) | ratio (goal <= 1.5) |\n|---|---|---|---|")
  for name in args.shapes.split(","):
    model_config, classes, batch, length, features = shapes[name]
    runs = {v: train_step(model_config, classes, batch, length, features, q)
            for v, q in (("qat", qat), ("float", None))}
    ms = interleaved_ms(runs, steps, warmup)
    rows.append({"shape": name, "model": model_config, "num_classes": classes, "batch": batch,
                 "steps": length, "qat_ms": ms["qat"], "float_ms": ms["float"],
                 "ratio": ms["qat"] / ms["float"]})
    print(f"| {name} | {ms['qat']:.2f} | {ms['float']:.2f} | {ms['qat'] / ms['float']:.2f}x |",
          flush=True)
  if out:
    record = {"date_utc": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()), "quick": args.quick,
              "timed_steps": steps, "warmup": warmup, "quant": QAT, "jax": jax.__version__,
              "backend": jax.default_backend(), "cpu_threads": len(os.sched_getaffinity(0)),
              "load_before": load_before, "load_after": os.getloadavg(), "rows": rows,
              "aihwkit": "not installed (source build only; see the script's docstring)"}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".tmp", "w") as f:
      json.dump(record, f, indent=1)
    os.replace(out + ".tmp", out)
    print(f"raw figures: {out}")


if __name__ == "__main__":
  main()
