"""Trains Mask R-CNN variants of configs/maskrcnn_coco.py and records COCO AP, run length and input
size per variant in `results/<scale>_<variant>[_seedN].json`, with the picture of its detections.

  python experiments/maskrcnn/run.py --scale overfit --variants spatial --record
  python experiments/maskrcnn/run.py --scale coco128 --variants spatial,dct24,dct64 --record

Results go to `<workroot>/results` (or `--out DIR`); `--record` writes the README's
`experiments/maskrcnn/results/` instead, refused when the run differs from the recorded protocol
(`PROTOCOLS`). A variant whose result file exists is skipped with a printed line (`--force` reruns
it; never skipped under other settings); an unfinished workdir resumes from its checkpoint, and a
finished one returns its stored final metrics (freqnoise.final_metrics), not retrained.
`--set key=value ...` overrides config fields for every variant (name the change with `--tag`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import jax
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from configs import maskrcnn_coco  # noqa: E402
from configs.common import override  # noqa: E402
from experiments import recording  # noqa: E402
from experiments.record_run import code_commit  # noqa: E402
from freqnoise.experiment import Experiment  # noqa: E402

AP_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
COMMIT = code_commit()  # the code this process runs, read when it starts (not when it records)
PAPER = "maskrcnn"
# The recorded protocol of each result set (results/<scale>_<variant><tag>[_seed<s>].json): the
# config's scale and variant with these `--set` overrides; `--record` refuses others (to record
# an ablation, add its tag and overrides here first).
PROTOCOLS = {("overfit", ""): {"set": []}, ("coco128", ""): {"set": []}}


def run_variant(scale: str, variant: str, overrides, workroot: str, out: str, seed: int = 0,
                tag: str = "", rerun: bool = False) -> dict:
  """Trains (or resumes) one variant and writes its result row; an existing row is read instead
  unless `rerun` (--force, or settings off the protocol)."""
  name = f"{scale}_{variant}{tag}" + (f"_seed{seed}" if seed else "")
  path = os.path.join(out, name + ".json")
  if recording.skip_existing(path, rerun):
    with open(path) as f:
      return json.load(f)
  config = maskrcnn_coco.get_config(f"variant={variant},scale={scale}")
  config.seed = seed
  for assignment in overrides:
    override(config, assignment)
  workdir = os.path.join(workroot, name)
  metrics, wall = recording.train(config, workdir)  # wall None: resumed (not this call's time)
  experiment = Experiment(config, workdir)
  state = experiment.restore()
  sample = experiment.splits.test.head(1)
  x = experiment.transform(experiment.stats_device, sample[experiment.input_key])
  row = {"name": name, "scale": scale, "variant": variant, "seed": seed, "tag": tag,
         "overrides": list(overrides), "source": config.data.source,
         "train_images": len(experiment.splits.train), "test_images": len(experiment.splits.test),
         "image_size": config.data.image_size, "steps": metrics["steps"],
         "epochs": config.num_epochs, "batch_size": config.data.batch_size,
         "train_seconds": metrics.get("train_seconds"), "run_wall_seconds": wall,
         "train_steps_per_sec": metrics.get("train_steps_per_sec"),
         "params": int(sum(v.size for v in jax.tree.leaves(state.params))),
         "model": dict(config.model), "input": dict(config.input),
         "input_shape": list(x.shape[1:]), "input_elements": int(np.prod(x.shape[1:])),
         "input_bytes_float32": int(np.prod(x.shape[1:])) * 4,
         "device": jax.devices()[0].platform, "jax": jax.__version__, "commit": COMMIT}
  for kind in ("box", "mask"):
    for k in AP_KEYS:
      row[f"{kind}_{k}"] = metrics.get(f"test_{kind}_{k}")
  picture = os.path.join(workdir, "detections_test.png")
  if os.path.isfile(picture):
    with recording.atomic_path(os.path.join(out, name + "_detections.png")) as copy:
      shutil.copyfile(picture, copy)
    row["picture"] = name + "_detections.png"
  recording.write_json(path, row)
  return row


def table(rows) -> str:
  lines = ["| run | box AP | box AP50 | mask AP | mask AP50 | input per image | steps (epochs) | "
           "train wall (min) |", "|---|---|---|---|---|---|---|---|"]
  fmt = lambda v: "n/a" if v is None else f"{100 * v:.1f}"
  for r in rows:
    shape = "x".join(map(str, r["input_shape"]))
    lines.append(f"| {r['name']} | {fmt(r['box_AP'])} | {fmt(r['box_AP50'])} | {fmt(r['mask_AP'])} "
                 f"| {fmt(r['mask_AP50'])} | {shape} | {r['steps']} ({r['epochs']}) | "
                 f"{(r['train_seconds'] or float('nan')) / 60:.1f} |")
  return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--scale", default="overfit", choices=maskrcnn_coco.SCALES)
  parser.add_argument("--variants", default="spatial")
  parser.add_argument("--seeds", default="0")
  parser.add_argument("--set", nargs="*", default=[], help="config overrides key=value")
  parser.add_argument("--tag", default="", help="suffix of the result names (with --set)")
  parser.add_argument("--workroot", default="runs/maskrcnn")
  recording.add_arguments(parser, "WORKROOT/results")
  args = parser.parse_args(argv)
  differs = recording.differences({"set": sorted(args.set)}, PROTOCOLS, (args.scale, args.tag),
                                  f"--scale {args.scale} --tag {args.tag!r}")
  out = recording.destination(args, PAPER, os.path.join(args.workroot, "results"), differs)
  rows = []
  for seed in [int(s) for s in args.seeds.split(",") if s]:
    for variant in [v for v in args.variants.split(",") if v]:
      rows.append(run_variant(args.scale, variant, args.set, args.workroot, out, seed,
                              args.tag, rerun=args.force or bool(differs)))
      print(table(rows), flush=True)


if __name__ == "__main__":
  main()
