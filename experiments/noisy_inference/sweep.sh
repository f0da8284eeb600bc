#!/usr/bin/env bash
# Trains one model per training SNR and Monte-Carlo-evaluates each (the config's `evals`), through
# the sweep launcher (freqnoise.sweep): run folders RUNS_DIR/<task>/snr=0, snr=inf (clean), snr=5,
# snr=10, their logs in RUNS_DIR/<task>/logs, the test accuracy of each in
# RUNS_DIR/<task>/summary.md.
# A rerun resumes unfinished runs and leaves finished ones alone. Extra --config.FIELD=V flags apply
# to every run (e.g. the CIFAR-10 CPU protocol: --config.num_epochs=2
# --config.evals.montecarlo.num_draws=4).
# Usage (from the repository root):
#   experiments/noisy_inference/sweep.sh [mnist|cifar] [RUNS_DIR] [--config.FIELD=V ...]
# Then: python experiments/noisy_inference/summarize.py RUNS_DIR/<task>  (table + plots)
set -euo pipefail
task="${1:-mnist}"
runs="${2:-/tmp/noisy}"
shift $(( $# < 2 ? $# : 2 ))
case "$task" in
  mnist) config=configs/noisy_mnist.py; snrs="0,inf,5,10" ;;
  cifar) config=configs/noisy_cifar10.py; snrs="0,inf" ;;
  *) echo "unknown task $task (mnist|cifar)" >&2; exit 2 ;;
esac
nice -n 10 python -m freqnoise.sweep --config="$config" --grid ":snr=$snrs" --root "$runs/$task" \
  "$@"
