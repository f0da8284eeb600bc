"""aihwkit's outputs for the parity cases (cases.py), run in aihwkit's venv (setup.sh):

    taskset -c 0 /work/aihwkit_venv/bin/python experiments/aihwkit/make_golden.py

writes tests/analog/golden/aihwkit_exact.npz (noise-off behaviours) and aihwkit_pcm.npz (PCM draws,
torch.manual_seed(0): the same bytes on every run). `--out DIR --out_noise S --min_outputs N`
writes the larger, noisier samples parity.py compares against, at least N outputs per case (not
byte-reproducible: the C++ tile seeds its output noise from the clock). Layers run on aihwkit
1.1.0's C++ `InferenceTile` (CPU), as `InferenceRPUConfig` does by default; PCM follows aihwkit's
documented loop: `program_analog_weights()`, `drift_analog_weights(t)`, evaluate.
"""

from __future__ import annotations

import argparse
import io as bytes_io
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cases  # noqa: E402

from aihwkit.inference import GlobalDriftCompensation, PCMLikeNoiseModel  # noqa: E402
from aihwkit.nn import AnalogConv2d, AnalogLinear  # noqa: E402
from aihwkit.simulator.configs import InferenceRPUConfig  # noqa: E402
from aihwkit.simulator.parameters.enums import BoundManagementType  # noqa: E402

GOLDEN = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "analog", "golden")


def rpu_config(case: dict, out_noise=None) -> InferenceRPUConfig:
  config = InferenceRPUConfig()
  for k, v in cases.io_fields(case, out_noise).items():
    setattr(config.forward, k, BoundManagementType[v.upper()] if k == "bound_management" else v)
  for k, v in case["mapping"].items():
    setattr(config.mapping, k, v)
  config.noise_model = PCMLikeNoiseModel()
  config.drift_compensation = GlobalDriftCompensation() if case.get("compensation") else None
  return config


def layer(case: dict, out_noise=None):
  """The aihwkit layer of a case with its weights, in eval mode."""
  w = torch.from_numpy(case["w"])
  if case["kind"] == "dense":
    m = AnalogLinear(w.shape[0], w.shape[1], bias=False, rpu_config=rpu_config(case, out_noise))
    m.set_weights(w.T.contiguous())
  else:
    kh, kw, c, o = w.shape
    m = AnalogConv2d(c, o, (kh, kw), bias=False, rpu_config=rpu_config(case, out_noise),
                     **case["conv"])
    m.set_weights(w.permute(3, 2, 0, 1).contiguous())
  return m.eval()


def forward(m, case: dict) -> np.ndarray:
  x = torch.from_numpy(case["x"])
  with torch.no_grad():
    if case["kind"] == "conv":
      return m(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    return m(x).numpy()


def pcm_draws(case: dict, draws: int, out_noise=None) -> np.ndarray:
  """[draws, N, O]: each draw programs a fresh chip, drifts it to t, evaluates."""
  m = layer(case, out_noise)
  out = []
  for _ in range(draws):
    m.program_analog_weights()
    m.drift_analog_weights(case["t"])
    out.append(forward(m, case))
  return np.stack(out)


def refusal() -> str:
  """aihwkit's error for inp_bound != 1 with noise management (issue 28 #5)."""
  config = InferenceRPUConfig()
  config.forward.inp_bound = 2.0
  try:
    AnalogLinear(4, 2, rpu_config=config).eval()(torch.ones(1, 4))
  except Exception as e:  # pylint: disable=broad-except
    return f"{type(e).__name__}: {e}"
  return "accepted"


def save(path: str, arrays: dict) -> None:
  """np.savez with a fixed member order, written through a temp file and a rename."""
  buf = bytes_io.BytesIO()
  np.savez(buf, **dict(sorted(arrays.items())))
  tmp = path + ".tmp"
  with open(tmp, "wb") as f:
    f.write(buf.getvalue())
  os.replace(tmp, path)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--out", default=GOLDEN, help="folder for the .npz files")
  parser.add_argument("--draws", type=int, default=25, help="PCM draws per case")
  parser.add_argument("--out_noise", type=float, default=None,
                      help="the forward's output noise for every case (default: the case's)")
  parser.add_argument("--min_outputs", type=int, default=0,
                      help="repeat each case (PCM: draw chips) until it has this many outputs")
  args = parser.parse_args(argv)
  torch.manual_seed(0)
  torch.set_num_threads(1)
  os.makedirs(args.out, exist_ok=True)
  exact = {}
  for name, case in cases.exact_cases().items():
    m = layer(case, args.out_noise)
    if args.min_outputs:  # [R, ...]: repeated noisy forwards
      y = forward(m, case)
      exact[name] = np.stack([y] + [forward(m, case) for _ in range(-(-args.min_outputs // y.size)
                                                                     - 1)])
      continue
    y = forward(m, case)
    exact[name] = y[case["zero_rows"]] if "zero_rows" in case else y
  exact["refusal_inp_bound_2"] = np.array(refusal())
  save(os.path.join(args.out, "aihwkit_exact.npz"), exact)
  pcm = {}
  for name, case in cases.pcm_cases().items():
    size = case["x"].shape[0] * case["w"].shape[1]
    draws = -(-args.min_outputs // size) if args.min_outputs else args.draws
    pcm[name] = pcm_draws(case, draws, args.out_noise)
  save(os.path.join(args.out, "aihwkit_pcm.npz"), pcm)
  print(f"aihwkit {__import__('aihwkit').__version__}, torch {torch.__version__}: wrote "
        f"{len(exact)} + {len(pcm)} arrays to {os.path.abspath(args.out)}")


if __name__ == "__main__":
  main()
