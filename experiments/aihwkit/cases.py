"""The parity cases, shared by the aihwkit side (make_golden.py, in aihwkit's venv) and ours
(parity.py, tests/analog/test_aihwkit_golden.py): fixed weights and inputs (NumPy only) and the
aihwkit settings each case changes from `InferenceRPUConfig()`'s defaults.

Weights are in freqnoise's layout: dense [F, O], conv HWIO; inputs dense [N, F], conv NHWC.
"""

from __future__ import annotations

import numpy as np

YEAR = 365 * 24 * 3600.0
PCM_TIMES = (0.0, 3600.0, 86400.0, YEAR)  # s: 0, 1 h, 1 day, 1 year


def _rng(seed):
  return np.random.default_rng(seed)


def _dense(seed, n, f, o, w_scale):
  rng = _rng(seed)
  return (rng.standard_normal((n, f)).astype(np.float32),
          (rng.standard_normal((f, o)) * w_scale).astype(np.float32))


def exact_cases() -> dict[str, dict]:
  """Noise-off behaviours (issue 28's "What differs today" 1-5): name -> dict(kind, x, w, io
  (IOParameters fields), mapping (MappingParameter fields), conv (stride, padding) for convs)."""
  cases = {}
  x, w = _dense(0, 64, 784, 10, 0.05)
  x[:, :392] *= 0.01  # the first tile's inputs are small: its own α keeps their precision
  cases["tiles_784_inputs"] = dict(kind="dense", x=x, w=w, io={}, mapping={})
  x, w = _dense(1, 32, 40, 30, 0.3)
  cases["tiles_split_outputs"] = dict(kind="dense", x=x, w=w, io=dict(out_bound=2.0),
                                      mapping=dict(max_input_size=16, max_output_size=12))
  x, w = _dense(2, 32, 20, 6, 1.5)
  cases["res_zero_clipped"] = dict(kind="dense", x=x, w=w,
                                   io=dict(inp_res=0.0, out_res=-1.0, out_bound=3.0), mapping={})
  # (with bound management a clipping output is re-run until it fits: the clip shows without it)
  cases["res_zero_clipped_no_bm"] = dict(kind="dense", x=x, w=w, mapping={}, io=dict(
      inp_res=0.0, out_res=-1.0, out_bound=3.0, bound_management="none"))
  x, w = _dense(3, 64, 64, 8, 1.0)
  cases["bound_management"] = dict(kind="dense", x=x, w=w, io=dict(out_bound=4.0), mapping={})
  rng = _rng(4)
  x = rng.standard_normal((2, 6, 7, 3)).astype(np.float32)
  x[0, :3] *= 0.02  # a low-amplitude region
  k = (rng.standard_normal((3, 3, 3, 4)) * 0.4).astype(np.float32)
  cases["conv_per_patch"] = dict(kind="conv", x=x, w=k, io=dict(out_bound=1.5),
                                 mapping=dict(max_input_size=10), conv=dict(stride=1, padding=1))
  x, w = _dense(5, 16, 24, 8, 0.5)
  x[3] = 0
  x[7] = 0
  cases["zero_vector"] = dict(kind="dense", x=x, w=w, io=dict(out_noise=0.06), mapping={},
                              zero_rows=[3, 7])
  return cases


def pcm_cases() -> dict[str, dict]:
  """PCM programming noise + drift at each time, with and without global drift compensation
  (the forward's output noise off: the C++ tile's RNG is seeded from the clock, torch's is not)."""
  x, w = _dense(6, 16, 64, 32, 0.3)
  cases = {}
  for t in PCM_TIMES:
    for comp in (True, False):
      cases[f"pcm_t{t:g}_{'comp' if comp else 'nocomp'}"] = dict(
          kind="dense", x=x, w=w, io=dict(out_noise=0.0), mapping={}, t=t, compensation=comp)
  cases["pcm_two_tiles_t86400_comp"] = dict(kind="dense", x=x, w=w, io=dict(out_noise=0.0),
                                            mapping=dict(max_input_size=32), t=86400.0,
                                            compensation=True)
  return cases


def io_fields(case: dict, out_noise: float | None = None) -> dict:
  """The case's IOParameters fields: out_noise 0 unless the case (or `out_noise`) sets it."""
  io = {"out_noise": 0.0, **case["io"]}
  if out_noise is not None:
    io["out_noise"] = out_noise
  return io


def quant_block(case: dict, out_noise: float | None = None) -> dict:
  """Our config.quant block for a case: preset 'aihwkit' with its IO and mapping fields."""
  return {"preset": "aihwkit", "aihwkit": {**io_fields(case, out_noise), **case["mapping"]}}
