#!/usr/bin/env bash
# Trains one model per training SNR and Monte-Carlo-evaluates each (the config's `evals`).
# Usage (from the repository root): experiments/noisy_inference/sweep.sh [mnist|cifar] [RUNS_DIR]
# Then: python experiments/noisy_inference/summarize.py RUNS_DIR/<task>  (table + plots)
set -euo pipefail
task="${1:-mnist}"
runs="${2:-/tmp/noisy}"
case "$task" in
  mnist) config=configs/noisy_mnist.py; variants="snr0 clean snr5 snr10" ;;
  cifar) config=configs/noisy_cifar10.py; variants="snr0 clean" ;;
  *) echo "unknown task $task (mnist|cifar)" >&2; exit 2 ;;
esac
mkdir -p "$runs/$task"
for v in $variants; do
  echo "== $task $v"
  nice -n 10 python -m freqnoise.main --config="$config:$v" --workdir="$runs/$task/$v" \
    2>&1 | grep -v -i warning | tee "$runs/$task/$v.log"
done
