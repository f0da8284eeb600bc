"""Runs the frequency-domain comparison: trains each variant, then records top-1, input size, FLOPs,
run length, the learned gate's heat map and the static top-k mask it induces.

  python experiments/frequency_domain/run.py --config tiny_imagenet \
      --variants spatial32,dct24,dct48,dct64,dct192,gate,spatial64 --workroot runs/freq --record
  python experiments/frequency_domain/run.py --config cifar10 --variants dct24 \
      --set num_steps=100 --tag _short       # a quick try: runs/freq/results, never results/

Each variant's results go to `<out>/<config>_<variant><tag>[_seed<s>].json` as soon as it finishes;
`<out>/<config><tag>.md` is the table. `<out>` is `<workroot>/results` (or `--out DIR`);
`--record` writes the README's `experiments/frequency_domain/results/` instead, refused when the
run differs from that result set's recorded protocol (`PROTOCOLS`). A result whose JSON exists is
skipped with a printed line (`--force` reruns it; never skipped under other settings), and
unfinished runs resume from their checkpoints (experiments/recording.py has the rule).
`key=value` overrides (`--set model.width=16 num_epochs=1`) apply to every variant; name them
with `--tag`. After the `gate` variant, `--static_from_gate 24,48` also trains the learned static
subsets.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from configs.common import override
from freqnoise.freq import selection
from freqnoise.experiment import Experiment
from freqnoise.sweep import parse_seeds

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
from experiments import recording  # noqa: E402
from experiments.record_run import code_commit  # noqa: E402

COMMIT = code_commit()  # read once, at the start: the code this process runs
PAPER = "frequency_domain"
# The recorded protocol of each result set (results/<config>_<variant><tag>[_seed<s>].json): the
# config's variant with these `--set` overrides and `--config_arg`; `--record` refuses others (to
# record a new ablation, add its tag and settings here first).
_PLAIN = {"set": [], "config_arg": ""}
PROTOCOLS = {
    ("tiny_imagenet", ""): _PLAIN,
    ("tiny_imagenet", "_seededstats"): _PLAIN,  # rerun with seeded input statistics
    ("tiny_imagenet", "_lambda0.02"): {**_PLAIN, "set": ["model.gate_sparsity=0.02"]},
    ("cifar10", ""): {**_PLAIN, "set": ["num_epochs=1"]},
    ("imagenette", ""): _PLAIN,
    ("imagenette", "_mbv2"): {**_PLAIN, "config_arg": "model=mobilenet_v2"},
}


def input_size_and_flops(experiment: Experiment, state) -> dict:
  """Model input per example (elements, float32 bytes) and XLA's FLOP count of one eval forward."""
  sample = jnp.asarray(experiment.splits.test.arrays[experiment.input_key][:1])
  x = experiment.transform(experiment.stats_device, sample)
  forward = jax.jit(lambda v, x: experiment.model.clone(noise=None).apply(v, x, train=False))
  variables = {"params": state.params, **state.model_state}
  cost = forward.lower(variables, x).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return {"input_shape": list(x.shape[1:]), "input_elements": int(np.prod(x.shape[1:])),
          "input_bytes_float32": int(np.prod(x.shape[1:])) * 4,
          "forward_flops": float(cost.get("flops", float("nan")))}


def restore_state(config, workdir: str):
  experiment = Experiment(config, workdir)
  return experiment, experiment.restore()


def gate_summary(state, out_prefix: str, ks=(6, 24, 32, 48, 64)) -> dict:
  """Heat map PNG + top-k subsets of the learned gate, compared with the published presets."""
  freq = selection.selection_frequency(jax.device_get(state.model_state["gate_stats"]))
  summary = {"selection_frequency": freq.round(4).tolist(),
             "mean_active_channels": float(freq.sum())}
  for k in ks:
    top = selection.top_k_channels(freq, k)
    preset = selection.preset_channels(k)
    summary[f"top{k}"] = top.tolist()
    summary[f"top{k}_overlap_with_preset{k}"] = int(len(set(top) & set(preset)))
    summary[f"top{k}_per_plane"] = [int(((top >= 64 * p) & (top < 64 * (p + 1))).sum()) for p in range(3)]
  with recording.atomic_path(out_prefix + "_heatmap.png") as path:
    selection.plot_heat_map(freq, path, highlight=selection.preset_channels(24),
                            title="learned gate: fraction of training images with each channel on "
                                  "(red: published 24-channel preset)")
  return summary


def seed_suffix(seed: int) -> str:
  """Seed 0's files carry no suffix (the first runs were recorded so); seed s > 0 `_seed<s>`."""
  return f"_seed{seed}" if seed else ""


def run_variant(config_module, name: str, variant: str, overrides, workroot: str, out: str,
                channels=None, base: str | None = None, tag: str = "", config_arg: str = "",
                seed: int = 0, rerun: bool = False) -> dict:
  """Trains `get_config("variant=" + (base or variant))`; with `channels`, as a static DCT subset
  without the gate.

  `tag` is appended to the variant's name in files and tables (e.g. for an ablation's overrides);
  `config_arg` adds `KEY=VALUE,...` to the config's argument (e.g. `model=mobilenet_v2`). An
  existing result file is read, not rerun, unless `rerun` (--force, or settings off the protocol).
  """
  extra_arg, config_arg, variant = config_arg, base or variant, variant + tag
  path = os.path.join(out, f"{name}_{variant}{seed_suffix(seed)}.json")
  if recording.skip_existing(path, rerun):
    with open(path) as f:
      return json.load(f)
  config = config_module.get_config(",".join(a for a in (f"variant={config_arg}", extra_arg) if a))
  for assignment in overrides:
    override(config, assignment)
  config.seed = seed  # init, data order and draws: seed s of every variant shares them
  if channels is not None:  # the learned static subset replaces the gate
    config.model.gate = False
    config.input = dict(config.input, channels=tuple(int(c) for c in channels))
  workdir = os.path.join(workroot, f"{name}_{variant}{seed_suffix(seed)}")
  metrics, wall = recording.train(config, workdir)  # wall None: resumed (not this call's time)
  experiment, state = restore_state(config, workdir)
  row = {"variant": variant, "seed": seed, "commit": COMMIT, "overrides": list(overrides),
         "config_arg": extra_arg, "test_top1": metrics["test_accuracy"],
         "test_loss": metrics["test_loss"],
         "steps": metrics["steps"], "epochs": config.num_epochs, "batch_size": config.data.batch_size,
         "train_steps_per_sec": metrics["train_steps_per_sec"],
         "train_seconds": metrics["train_seconds"], "run_wall_seconds": wall,
         "params": int(sum(x.size for x in jax.tree.leaves(state.params))),
         "device": jax.devices()[0].platform, **input_size_and_flops(experiment, state)}
  if "gate_stats" in state.model_state:
    row["gate"] = gate_summary(state, os.path.join(out, f"{name}_{variant}"))
  recording.write_json(path, row)
  return row


def table(rows) -> str:
  lines = ["| variant | seed | top-1 (%) | input per image (elements) | input bytes (float32) | forward MFLOPs | "
           "params | steps (epochs) | train wall (min) | steps/s |",
           "|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    shape = "x".join(str(s) for s in r["input_shape"])
    lines.append(f"| {r['variant']} | {r.get('seed', '')} | {100 * r['test_top1']:.2f} | {shape} = {r['input_elements']:,} | "
                 f"{r['input_bytes_float32']:,} | {r['forward_flops'] / 1e6:.1f} | {r['params']:,} | "
                 f"{r['steps']} ({r['epochs']}) | {r['train_seconds'] / 60:.1f} | "
                 f"{r['train_steps_per_sec']:.2f} |")
  return "\n".join(lines)


def protocol_differences(args) -> list[str]:
  """How this command differs from the recorded protocol of its result set ([] = it is that)."""
  settings = {"set": sorted(args.set), "config_arg": args.config_arg}
  differs = recording.differences(settings, PROTOCOLS, (args.config, args.tag),
                                  f"--config {args.config} --tag {args.tag!r}")
  if args.gate_result and not recording.is_results_path(args.gate_result):
    differs.append(f"--gate_result {args.gate_result}: not a recorded result (results/)")
  return differs


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--config", default="tiny_imagenet", help="configs/freq_<config>.py")
  parser.add_argument("--variants", default="spatial32,dct24,dct48,dct64,dct192,gate,spatial64")
  parser.add_argument("--set", nargs="*", default=[], help="config overrides key=value for every variant")
  parser.add_argument("--static_from_gate", default="", help="k values: train the gate's top-k subsets")
  parser.add_argument("--tag", default="", help="suffix for variant names (ablations with --set)")
  parser.add_argument("--config_arg", default="",
                      help="more KEY=VALUE,... for get_config, e.g. model=mobilenet_v2 (with --tag)")
  parser.add_argument("--seeds", default="0", help="seeds to run, e.g. 0-7 or 0,3: seed s of every "
                      "variant shares init seed and data order (paired)")
  parser.add_argument("--gate_result", default="",
                      help="with --static_from_gate and no gate variant: the gate run's result JSON")
  parser.add_argument("--workroot", default="runs/freq")
  recording.add_arguments(parser, "WORKROOT/results")
  args = parser.parse_args(argv)
  seeds = parse_seeds(args.seeds)
  if any(a.partition("=")[0] == "seed" for a in args.set):  # run_variant sets it from --seeds
    raise SystemExit("--set seed=...: give the seeds with --seeds")
  differs = protocol_differences(args)
  out = recording.destination(args, PAPER, os.path.join(args.workroot, "results"), differs)
  rerun = args.force or bool(differs)
  module = importlib.import_module(f"configs.freq_{args.config}")
  variants = [v for v in args.variants.split(",") if v]
  ks = [int(k) for k in args.static_from_gate.split(",") if k]
  if ks and "gate" not in variants and not args.gate_result:
    raise ValueError("--static_from_gate needs the gate variant in --variants or --gate_result")
  gate_row = None
  if args.gate_result:
    with open(args.gate_result) as f:
      gate_row = json.load(f)
  rows = []
  for seed in seeds:
    for variant in variants:
      rows.append(run_variant(module, args.config, variant, args.set, args.workroot, out,
                              tag=args.tag, config_arg=args.config_arg, seed=seed, rerun=rerun))
      gate_row = gate_row or (rows[-1] if "gate" in rows[-1] else None)
      print(table(rows), flush=True)
    for k in ks:  # the static subset of the first gate run, trained under each seed
      rows.append(run_variant(module, args.config, f"learned{k}", args.set, args.workroot, out,
                              channels=gate_row["gate"][f"top{k}"],
                              base=gate_row["variant"].removesuffix(args.tag), tag=args.tag,
                              config_arg=args.config_arg, seed=seed, rerun=rerun))
      print(table(rows), flush=True)
  recording.write_text(os.path.join(out, f"{args.config}{args.tag}.md"), table(rows) + "\n")


if __name__ == "__main__":
  main()
