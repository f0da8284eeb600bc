#!/usr/bin/env bash
# aihwkit 1.1.0 (IBM) in its own venv, for experiments/aihwkit: make_golden.py and parity.py run
# the peer there; freqnoise itself never imports torch. Usage:
#   AIHWKIT_VENV=/path/to/venv bash experiments/aihwkit/setup.sh
# aihwkit 1.1.0's cp311 manylinux wheel (1.2.0 is source-only) with --no-deps: its metadata pulls
# cmake, scikit-build, mypy and torchvision, none needed to run it. Its C++ tile (what
# InferenceRPUConfig uses on CPU) loads with torch 2.10.0 only (not 2.9 or 2.13); PyPI's Linux
# wheel of torch 2.10.0 brings its CUDA 12.8 libraries (about 3 GB in all, 7.2 GB installed),
# unused here. 3.5 minutes on the project's machine.
set -euo pipefail
VENV="${AIHWKIT_VENV:-$HOME/.cache/freqnoise/aihwkit_venv}"
PYTHON="${PYTHON:-python3.11}"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q torch==2.10.0
"$VENV/bin/pip" install -q --no-deps aihwkit==1.1.0
"$VENV/bin/pip" install -q scipy numpy requests tqdm protobuf scikit-learn
"$VENV/bin/python" - <<'PY'
import aihwkit, torch
from aihwkit.nn import AnalogLinear
from aihwkit.simulator.configs import InferenceRPUConfig
AnalogLinear(4, 2, rpu_config=InferenceRPUConfig()).eval()(torch.ones(1, 4))  # the C++ tile loads
print(f"aihwkit {aihwkit.__version__} with torch {torch.__version__}: ok")
PY
echo "venv: $VENV"
