"""Quantization-aware LSTM for NVM crossbars (paper 4): every product with a DAC, quantized weights
and an ADC (`config.quant`), on sequential MNIST or the PTB word-level LM.

Commands:
  python -m freqnoise.main --config=configs/nvm_lstm.py:task=seqmnist,bits=4 --workdir=/tmp/nvm_w4
  python -m freqnoise.main --config=configs/nvm_lstm.py:task=ptb,bits=4 --workdir=/tmp/nvm_ptb_w4
  # noise-aware QAT: 0.5 LSB of ADC noise and 5% weight noise while training
  python -m freqnoise.main --config=configs/nvm_lstm.py:task=seqmnist,bits=4,noisy --workdir=...
  # fine-tune a float run instead of training from scratch
  python -m freqnoise.main --config=configs/nvm_lstm.py:task=seqmnist,bits=4 --workdir=... \
      --config.init_from=/tmp/nvm_float
Arguments (`configs/nvm_lstm.py:KEY=VALUE,...`): `task=seqmnist|ptb` (default seqmnist);
`bits=0..16`, the weight, DAC and ADC bits (0 = the float model; default 4); `noisy`; `tiny` for a
few-step run on sklearn's digits (tests).
The recipe (chosen on sequential MNIST, experiments/nvm_lstm/README.md): weights per output
column at their own max|W|; DACs of fixed range ±1, one on x_t and one on h_{t-1} (as the patent
draws them); ADCs with a learned step (LSQ), started at ±4. On PTB the learned ADC step collapsed
(the ranges shrank until the second layer was cut off), so there the ADC ranges are tracked (an EMA
of each product's max), and the 10k-way softmax layer stays digital. The training runs are configs/dni_seqmnist.py:cell=lstm,short (2 epochs) and
configs/dni_ptb.py:quick (1 epoch), exactly what experiments/nvm_lstm/run.sh records.
Runtime on 2 CPU cores (experiments/nvm_lstm/results/*.json, `train_seconds`): sequential MNIST
~35 s float, ~60 s at 4 bits; PTB ~5.5 min float, 6-9 min quantized. Result at 4/4/4 (mean of 2
seeds): sequential MNIST 95.92% vs float 96.50%; PTB test perplexity 273.2 vs float 281.6
(experiments/nvm_lstm/README.md).
"""

import ml_collections

from configs import dni_ptb, dni_seqmnist
from configs.common import check_choice, parse_arg

TASKS = ("seqmnist", "ptb")
ADC_NOISE_LSB, WEIGHT_SIGMA = 0.5, 0.05  # noise-aware QAT (`noisy`)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Keys: task (seqmnist | ptb), bits (0 = float), noisy, tiny; see the module docstring."""
  args = parse_arg(arg, task="seqmnist", bits=4, noisy=False, tiny=False)
  check_choice("task", args.task, TASKS)
  if not 0 <= args.bits <= 16:
    raise ValueError(f"config argument bits={args.bits} must be in [1, 16], or 0 for the float model")
  if args.noisy and not args.bits:
    raise ValueError("config argument noisy needs bits > 0 (ADC noise is in LSBs of the ADC)")
  if args.task == "seqmnist":
    c = dni_seqmnist.get_config("cell=lstm," + ("tiny" if args.tiny else "short"))
  else:
    c = dni_ptb.get_config("tiny" if args.tiny else "quick")
  c.tensorboard = False          # no event files (run.sh recorded these runs without them)
  if args.bits:
    q = c.quant
    q.weight_bits = q.dac_bits = q.adc_bits = args.bits  # W / DAC / ADC
    q.weight_per_channel = True   # one weight range per output column
    if args.task == "seqmnist":
      q.adc_mode = "learned"      # LSQ: the ADC step is trained with the weights ...
      q.adc_bound = 4.0           # ... from a range of ±4
    else:
      q.adc_mode = "tracked"      # EMA of the max: the learned step collapsed on PTB (README)
      q.layers = "all_but_last"   # the 10k-way softmax layer stays digital
  if args.noisy:
    c.quant.adc_noise_lsb = ADC_NOISE_LSB          # Gaussian, std in ADC LSBs, before the ADC
    c.train_noise.weight_noise = "additive"        # W + σ·max|W|·ε, a new chip every step
    c.train_noise.weight_sigma = WEIGHT_SIGMA      # 5% of each array's max|W|
  return c
