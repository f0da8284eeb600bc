#!/usr/bin/env bash
# Trains the substitute (which crafts the black-box transfer sets), then the adversarially trained
# target (which is scored on them and by EOT white-box PGD over inference SNRs x noise draws).
# Usage (from the repository root): experiments/noisy_defense/run.sh [mnist|cifar10] [RUNS_DIR]
# Then: python experiments/noisy_defense/summarize.py RUNS_DIR/mnist  (results JSON + figure)
set -euo pipefail
task="${1:-mnist}"
runs="${2:-/tmp/defense}"
python="${PYTHON:-python}"  # e.g. PYTHON=.venv/bin/python
case "$task" in
  mnist|cifar10) config="configs/noisy_defense.py:data=$task" ;;
  *) echo "unknown task $task (mnist|cifar10)" >&2; exit 2 ;;
esac
mkdir -p "$runs/$task"
sub="$runs/$task/substitute"
echo "== $task substitute"
"$python" -m freqnoise.main --config="$config,role=substitute" --workdir="$sub" \
  2>&1 | tee "$runs/$task/substitute.log"
echo "== $task target"
"$python" -m freqnoise.main --config="$config,role=target,substitute=$sub" \
  --workdir="$runs/$task/target" 2>&1 | tee "$runs/$task/target.log"
