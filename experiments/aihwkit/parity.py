"""freqnoise's preset='aihwkit' against aihwkit 1.1.0 itself (issue 28), case by case (cases.py):

    bash experiments/aihwkit/setup.sh                      # once: aihwkit's venv
    taskset -c 0 python -m experiments.aihwkit.parity --venv /path/to/venv

Noise off (the goldens tests/analog/golden/aihwkit_exact.npz, which this first regenerates and
checks byte for byte): max |Δ| over every output. Noise on (the forward's out_noise = 0.06 for
every case, and PCM at t = 0, 1 h, 1 day, 1 year with and without global drift compensation):
a two-sample Kolmogorov-Smirnov test over >= 100,000 outputs a side (aihwkit: repeated forwards /
freshly programmed chips; ours: one vmapped call). Prints a markdown table and writes
experiments/aihwkit/results/parity.json. 3 minutes on the project's 2-core machine.

The C++ tile's Gaussian is not quite N(0, 1): 2e6 of its output-noise draws (zero weights,
out_res = 0) have std 1.0023 (standard error 0.0005), excess kurtosis 0.018, KS p = 7e-13 against
N(0, 1); ours are N(0, 1) (freqnoise.analog.gaussian). So the KS p of a case whose outputs are
mostly that noise (zero_vector, res_zero_clipped_no_bm) falls with the sample size (1e-6 at 3e5).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pathlib
import subprocess
import tempfile

import jax
import numpy as np
import scipy.stats

from experiments.aihwkit import cases, ours
from freqnoise.workdir import write_atomically

HERE = pathlib.Path(__file__).parent
GOLDEN = HERE.parent.parent / "tests" / "analog" / "golden"
BEHAVIOUR = {"tiles_784_inputs": "1 tiles (784 inputs: 2 × 392)",
             "tiles_split_outputs": "1 tiles (inputs and outputs split)",
             "res_zero_clipped": "2 res <= 0: no rounding (with BM)",
             "res_zero_clipped_no_bm": "2 res <= 0: clipped, no rounding (BM off)",
             "bound_management": "3 iterative bound management",
             "conv_per_patch": "4 convolution: α, tiles, BM per patch",
             "zero_vector": "5 zero input vector: exact zeros"}


def _digest(path: pathlib.Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()


def _aihwkit(venv: str, *args: str) -> str:
  python = os.path.join(venv, "bin", "python")
  out = subprocess.run(["taskset", "-c", "0", python, str(HERE / "make_golden.py"), *args],
                       check=True, capture_output=True, text=True)
  return out.stdout.strip()


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--venv", default=os.environ.get(
      "AIHWKIT_VENV", os.path.expanduser("~/.cache/freqnoise/aihwkit_venv")))
  parser.add_argument("--min_outputs", type=int, default=100_000)
  parser.add_argument("--out", default=str(HERE / "results" / "parity.json"))
  args = parser.parse_args(argv)
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    version = _aihwkit(args.venv, "--out", tmp)
    for name in ("aihwkit_exact.npz", "aihwkit_pcm.npz"):  # the goldens regenerate byte for byte
      same = _digest(pathlib.Path(tmp) / name) == _digest(GOLDEN / name)
      rows.append(dict(behaviour=f"golden {name} regenerated", test="sha256",
                       value="identical" if same else "DIFFERENT", n=1))
    exact = np.load(pathlib.Path(tmp) / "aihwkit_exact.npz")
    for name, case in cases.exact_cases().items():
      y = ours.outputs(case, jax.random.split(jax.random.key(0), 1))[0]
      y = y[case["zero_rows"]] if "zero_rows" in case else y
      rows.append(dict(behaviour=BEHAVIOUR[name], case=name, test="noise off: max |Δ|",
                       value=float(np.abs(y - exact[name]).max()), n=int(y.size)))
    rows.append(dict(behaviour="5 inp_bound != 1 with noise management", test="refused",
                     value=str(exact["refusal_inp_bound_2"]), n=1))
    _aihwkit(args.venv, "--out", tmp, "--out_noise", "0.06", "--min_outputs",
             str(args.min_outputs))
    noisy = np.load(pathlib.Path(tmp) / "aihwkit_exact.npz")
    pcm = np.load(pathlib.Path(tmp) / "aihwkit_pcm.npz")
  key = jax.random.key(2)
  for name, case in cases.exact_cases().items():
    ref = noisy[name]
    y = ours.outputs(case, jax.random.split(jax.random.fold_in(key, len(rows)), ref.shape[0]),
                     out_noise=0.06)
    rows.append(dict(behaviour=BEHAVIOUR[name], case=name, test="out_noise 0.06: KS p",
                     value=float(scipy.stats.ks_2samp(y.ravel(), ref.ravel()).pvalue),
                     n=int(ref.size)))
  for name, case in cases.pcm_cases().items():
    ref = pcm[name]
    y = ours.outputs(case, jax.random.split(jax.random.fold_in(key, len(rows)), ref.shape[0]),
                     out_noise=0.06)
    rows.append(dict(behaviour=f"PCM t = {case['t']:g} s, "
                               f"{'with' if case['compensation'] else 'no'} compensation"
                               + (", 2 tiles" if case["mapping"] else ""),
                     case=name, test="out_noise 0.06: KS p",
                     value=float(scipy.stats.ks_2samp(y.ravel(), ref.ravel()).pvalue),
                     n=int(ref.size)))
  tile = "C++ InferenceTile (CPU)"
  print(f"{version}\n\n| behaviour | test | max |Δ| or p | outputs a side | aihwkit | tile |")
  print("|---|---|---|---|---|---|")
  for r in rows:
    v = r["value"]
    v = f"{v:.3g}" if isinstance(v, float) else v
    print(f"| {r['behaviour']} | {r['test']} | {v} | {r['n']} | 1.1.0 | {tile} |")
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  write_atomically(args.out, json.dumps({"aihwkit": version, "tile": tile, "rows": rows},
                                        indent=1))


if __name__ == "__main__":
  main()
