#!/usr/bin/env bash
# Noise fine-tuning: continue the clean-trained MNIST run with 0 dB output noise for 2 more epochs
# (the trainer resumes from the copied checkpoint at the clean run's last step, 9,360 of 10,296: a
# count of epochs at or below the checkpoint's is an error, not a silent no-op; the cosine schedule is
# that of 22 epochs, so the 2 extra epochs run at its small tail learning rate).
# Usage (from the repository root, after sweep.sh has trained RUNS_DIR/mnist/snr=inf, the clean run;
# `clean` in sweeps made before freqnoise.sweep):
#   experiments/noisy_inference/finetune.sh [RUNS_DIR]
set -euo pipefail
runs="${1:-/tmp/noisy}"
src="$runs/mnist/snr=inf"
[ -d "$src" ] || [ ! -d "$runs/mnist/clean" ] || src="$runs/mnist/clean"
dst="$runs/mnist/snr0_ft"
[ -d "$src/checkpoints" ] || { echo "no clean run at $src" >&2; exit 2; }
mkdir -p "$dst"
[ -d "$dst/checkpoints" ] || cp -r "$src/checkpoints" "$src/input_stats.npz" "$dst/"
nice -n 10 python -m freqnoise.main --config=configs/noisy_mnist.py:snr=0 --workdir="$dst" \
  --config.num_epochs=22 2>&1 | grep -v -i warning | tee "$runs/mnist/snr0_ft.log"
