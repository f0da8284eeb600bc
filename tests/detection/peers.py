"""The test-only peers the detection tests compare against, or a skip with the reason: torch and
torchvision are no dependency of freqnoise (CI does not install them), and a broken install (e.g. a
CUDA-only torchvision `_C.so` beside a CPU torch) must skip, not crash, hence the first call.
Their outputs for fixed inputs are also stored in golden/ (`peer_outputs`), so that CI compares
against them without torch."""

from __future__ import annotations

import os

import numpy as np
import pytest


def torchvision_or_skip():
  """(torch, torchvision) with working compiled ops, or a skip naming why not."""
  try:
    import torch
    import torchvision
    import torchvision.ops  # noqa: F401
    torchvision.ops.box_iou(torch.zeros(1, 4), torch.zeros(1, 4))
  except Exception as e:  # noqa: BLE001 - any failure to load means "not available"
    pytest.skip(f"torchvision not usable: {type(e).__name__}: {e}")
  return torch, torchvision


GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")


def peer_outputs(case: str, source: str) -> dict:
  """A case of `golden/make_golden.py`: its inputs and its peer's outputs, either as stored in
  `golden/<case>.npz` (source "golden": needs no torch, so CI checks it) or computed now by the
  installed torch / torchvision (source "live": skips without them)."""
  if source == "golden":
    with np.load(os.path.join(GOLDEN, f"{case}.npz")) as data:
      return {k: data[k] for k in data.files}
  if source != "live":
    raise ValueError(f"source must be 'golden' or 'live', got {source!r}")
  torchvision_or_skip()
  from tests.detection.golden import make_golden
  return make_golden.outputs(case)
