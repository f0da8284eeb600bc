"""The test-only peers the detection tests compare against, or a skip with the reason: torch and
torchvision are no dependency of freqnoise (CI does not install them), and a broken install (e.g. a
CUDA-only torchvision `_C.so` beside a CPU torch) must skip, not crash, hence the first call."""

from __future__ import annotations

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


def torch_or_skip():
  """(torch, torch.nn.functional), or a skip naming why not."""
  try:
    import torch
    import torch.nn.functional as F
  except Exception as e:  # noqa: BLE001
    pytest.skip(f"torch not importable: {type(e).__name__}: {e}")
  return torch, F
