#!/usr/bin/env bash
# Trains one model per training SNR and Monte-Carlo-evaluates each (the config's `evals`).
# Usage (from the repository root): experiments/noisy_inference/sweep.sh [mnist|cifar] [RUNS_DIR]
# Then: python experiments/noisy_inference/summarize.py RUNS_DIR/<task>  (table + plots)
# Run folders are named snr0, snr5, snr10 and clean (SNR inf), as summarize.py expects.
set -euo pipefail
task="${1:-mnist}"
runs="${2:-/tmp/noisy}"
case "$task" in
  mnist) config=configs/noisy_mnist.py; snrs="0 inf 5 10" ;;
  cifar) config=configs/noisy_cifar10.py; snrs="0 inf" ;;
  *) echo "unknown task $task (mnist|cifar)" >&2; exit 2 ;;
esac
mkdir -p "$runs/$task"
for snr in $snrs; do
  if [ "$snr" = inf ]; then name=clean; else name="snr$snr"; fi
  echo "== $task $name"
  nice -n 10 python -m freqnoise.main --config="$config:snr=$snr" --workdir="$runs/$task/$name" \
    2>&1 | grep -v -i warning | tee "$runs/$task/$name.log"
done
