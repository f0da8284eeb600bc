#!/usr/bin/env bash
# Noise fine-tuning: continue the clean-trained MNIST run with 0 dB output noise for 2 more epochs
# (the trainer resumes from the copied checkpoint at step 1404 of 2340; cosine LR continues).
# Usage (from the repository root, after sweep.sh has trained RUNS_DIR/mnist/clean):
#   experiments/noisy_inference/finetune.sh [RUNS_DIR]
set -euo pipefail
runs="${1:-/tmp/noisy}"
src="$runs/mnist/clean"
dst="$runs/mnist/snr0_ft"
[ -d "$src/checkpoints" ] || { echo "no clean run at $src" >&2; exit 2; }
mkdir -p "$dst"
[ -d "$dst/checkpoints" ] || cp -r "$src/checkpoints" "$src/input_stats.npz" "$dst/"
nice -n 10 python -m freqnoise.main --config=configs/noisy_mnist.py:snr=0 --workdir="$dst" \
  --config.num_epochs=5 2>&1 | grep -v -i warning | tee "$runs/mnist/snr0_ft.log"
