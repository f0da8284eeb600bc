"""Test setup: 4 fake CPU devices (before JAX is imported), quiet logs, shared fixtures."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib  # noqa: E402

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> pathlib.Path:
  """`../shared/data`, or a skip with the reason when this checkout has none beside it."""
  if not SHARED_DATA.is_dir():
    pytest.skip(f"real datasets not present at {SHARED_DATA} (only on the project's machines)")
  return SHARED_DATA
