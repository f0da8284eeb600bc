#!/usr/bin/env bash
# Paper 4's accuracy half: float vs QAT at W/DAC/ADC bits in {8, 6, 5, 4, 3, 2}, then the ADC-noise
# and weight-noise tolerance of the 4/4/4 model (Monte Carlo over noise draws).
# Usage (from the repository root):
#   experiments/nvm_lstm/run.sh seqmnist [RUNS_DIR]   # ~30 min on 2 CPU cores
#   experiments/nvm_lstm/run.sh ptb [RUNS_DIR]        # ~1 h 30 min on 2 CPU cores
#   experiments/nvm_lstm/run.sh recipes [RUNS_DIR]    # the 4/4/4 recipe comparison, ~9 min
# Every training run is recorded by experiments/record_run.py into results/<task>_<name>.json
# (a finished result file is skipped, so the script resumes); then `python experiments/tables.py`
# rewrites the README tables from them.
set -euo pipefail
task="${1:-seqmnist}"
runs="${2:-/tmp/nvm_lstm}"
python="${PYTHON:-python}"  # e.g. PYTHON=.venv/bin/python
results="experiments/nvm_lstm/results"
# The recipe (see README, "Accuracy vs bits"): weights per output column at their own max|W|,
# DACs of fixed range +-1 (x_t and h_{t-1} separately), ADCs with a learned step (LSQ) from +-4.
recipe=(--config.quant.weight_per_channel=True --config.quant.adc_mode=learned
        --config.quant.adc_bound=4.0)
case "$task" in
  seqmnist|recipes) config="configs/dni_seqmnist.py:cell=lstm,short" ;;  # 2 epochs, 936 steps
  ptb) config="configs/dni_ptb.py:quick"  # 1 epoch (1,327 steps), Adam 2e-3 cosine
       # The learned ADC step collapsed on PTB (8 bits: the second layer's ADC range shrank from
       # +-4 to +-0.07, perplexity 644 vs 285; results/ptb_recipe_lsq_w8d8a8_seed0.json): ADC
       # ranges tracked (EMA of the max) instead, the 10k-way softmax layer digital.
       recipe=(--config.quant.weight_per_channel=True --config.quant.adc_mode=tracked
               --config.quant.layers=all_but_last) ;;
  *) echo "unknown task $task (seqmnist | ptb | recipes)" >&2; exit 2 ;;
esac
data="${task/recipes/seqmnist}"

record() {  # record NAME ARGS...: one training run into results/<data>_NAME.json
  local name="$1"; shift
  local out="$results/${data}_$name.json"
  if [[ -f "$out" ]]; then echo "== $out exists, skipped"; return; fi
  echo "== $name"
  rm -rf "$runs/$data/$name"
  "$python" experiments/record_run.py "$out" -- "$python" -m freqnoise.main --config="$config" \
    --workdir="$runs/$data/$name" --config.tensorboard=False "$@"
}
bits() { echo "--config.quant.weight_bits=$1 --config.quant.dac_bits=$1 --config.quant.adc_bits=$1"; }

if [[ "$task" == recipes ]]; then  # 4/4/4, seed 0: which ranges get within a point of float
  # shellcheck disable=SC2046
  {
  record recipe_pertensor_dynamic $(bits 4)
  record recipe_perchannel_dynamic $(bits 4) --config.quant.weight_per_channel=True
  record recipe_perchannel_fixed2 $(bits 4) --config.quant.weight_per_channel=True \
    --config.quant.adc_mode=fixed --config.quant.adc_bound=2.0
  record recipe_perchannel_fixed4 $(bits 4) --config.quant.weight_per_channel=True \
    --config.quant.adc_mode=fixed --config.quant.adc_bound=4.0
  record recipe_perchannel_tracked $(bits 4) --config.quant.weight_per_channel=True \
    --config.quant.adc_mode=tracked
  record recipe_perchannel_lsq4 $(bits 4) "${recipe[@]}"
  record recipe_perchannel_lsq4_lsqweights $(bits 4) "${recipe[@]}" \
    --config.quant.weight_mode=learned
  # The recipe with a bits schedule: 8 bits for the first epoch third, 6 for the second, then 4.
  record recipe_perchannel_lsq4_schedule864 $(bits 4) "${recipe[@]}" \
    --config.quant.bits_schedule=8:312,6:624
  }
  exit 0
fi

record float_seed0 --config.seed=0
for b in 4 8 6 5 3 2; do  # 4 first: the claim
  # shellcheck disable=SC2046
  record "w${b}d${b}a${b}_seed0" --config.seed=0 $(bits "$b") "${recipe[@]}"
done
if [[ "$task" == ptb ]]; then  # beside the sweep: the learned ADC step, and the recipe at 16 bits
  # shellcheck disable=SC2046
  record recipe_lsq_w8d8a8_seed0 --config.seed=0 $(bits 8) --config.quant.weight_per_channel=True \
    --config.quant.adc_mode=learned --config.quant.adc_bound=4.0 --config.quant.layers=all_but_last
  # shellcheck disable=SC2046
  record recipe_tracked_w16d16a16_seed0 --config.seed=0 $(bits 16) "${recipe[@]}"
fi
# A second seed where the claim is decided: float vs 4/4/4.
record float_seed1 --config.seed=1
# shellcheck disable=SC2046
record w4d4a4_seed1 --config.seed=1 $(bits 4) "${recipe[@]}"

tolerance() {  # tolerance RUN: the ADC- and weight-noise curves of one finished run
  local out="$results/${data}_$1_tolerance.json"
  if [[ -f "$out" ]]; then echo "== $out exists, skipped"; return; fi
  echo "== tolerance of $1"
  "$python" experiments/nvm_lstm/tolerance.py "$runs/$data/$1" "$out" \
    --reference "$results/${data}_float_seed0.json" --draws "$draws" "${levels[@]}" --record
}
draws=8
levels=()
if [[ "$task" == ptb ]]; then  # one PTB pass over the test stream takes ~15 s
  draws=4
  levels=(--adc_lsb 0,0.5,1,2 --weight_sigma 0,0.05,0.1,0.2)
fi
tolerance w4d4a4_seed0
if [[ "$task" == seqmnist ]]; then  # (not run on PTB, for time)
  # Noise-aware QAT: 4/4/4 trained with 0.5 LSB ADC noise and 5% additive weight noise (a new
  # chip every step), its curves beside the clean-trained 4/4/4's.
  # shellcheck disable=SC2046
  record w4d4a4_noisy_seed0 --config.seed=0 $(bits 4) "${recipe[@]}" \
    --config.quant.adc_noise_lsb=0.5 --config.train_noise.weight_noise=additive \
    --config.train_noise.weight_sigma=0.05
  tolerance w4d4a4_noisy_seed0
  "$python" experiments/nvm_lstm/tolerance.py compare "$results/${data}_tolerance.png" \
    "$results/${data}_w4d4a4_seed0_tolerance.json" "$results/${data}_w4d4a4_noisy_seed0_tolerance.json" \
    --record
fi
