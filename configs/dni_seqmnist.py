"""Deep Noise Injection on row-by-row sequential MNIST (28 steps of 28 pixels): RNN or LSTM.

Commands:
  python -m freqnoise.main --config=configs/dni_seqmnist.py:cell=lstm --workdir=/tmp/dni_lstm
  python -m freqnoise.main --config=configs/dni_seqmnist.py:cell=rnn --workdir=/tmp/dni_rnn
  # Deep Noise Injection: train with 10 dB noise in every product
  python -m freqnoise.main --config=configs/dni_seqmnist.py:cell=lstm --workdir=/tmp/dni_lstm10 \
      --config.train_noise.snr_db=10
Arguments (`configs/dni_seqmnist.py:KEY=VALUE,...`): `cell=lstm|rnn|gru` (default lstm); `short`
for the 2-epoch runs of the DNI sweep; `tiny` for a few-step run on sklearn's 8x8 digits (tests),
e.g. `cell=lstm,tiny`. The data path defaults to ../shared/data/mnist (original IDX files); use
--config.data.source=seq:tfds:mnist for TFDS.
Runtime on 2 CPU cores, as recorded in experiments/deep_noise_injection/results/seqmnist.json
(train_seconds / steps, batch 128, other jobs sharing the cores): clean LSTM 81 ms/step, clean
RNN 21 ms/step; noisy training 1.3-2.7x that. Expect less on idle cores.
Expected: clean LSTM >= 98% test accuracy (5 epochs); RNN lower (see the README).
"""

import ml_collections

from configs.common import base_config, brief_run, check_choice, parse_arg, shared_data

CELLS = ("lstm", "rnn", "gru")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Keys: cell (lstm | rnn | gru), short, tiny; see the module docstring."""
  args = parse_arg(arg, cell="lstm", short=False, tiny=False)
  check_choice("cell", args.cell, CELLS)
  cell = args.cell
  c = base_config()
  c.data.source = "seq:idx:" + shared_data("mnist")  # seq: = the image source read row by row
  c.data.input_key = "inputs"     # [B, 28, 28] float rows
  c.data.pixel_by_pixel = False   # True: 784 steps of one pixel
  c.data.permutation_seed = -1    # >= 0 (with pixel_by_pixel): fixed pixel permutation
  c.data.batch_size = 128         # training sequences per step
  c.data.eval_batch_size = 1000   # test sequences per evaluation batch
  c.input = ml_collections.ConfigDict()
  c.input.name = "sequence"       # inputs as they are (already in [0, 1])
  c.model = ml_collections.ConfigDict()
  c.model.name = "seq_classifier"  # recurrent layers -> dense classifier (models/sequence.py)
  c.model.cell = cell             # rnn | lstm | gru
  c.model.hidden = 128            # hidden units
  c.model.num_layers = 1          # stacked recurrent layers
  c.model.readout = "last"        # last state (or 'mean' over time) feeds the classifier
  c.model.dropout = 0.0           # dropout between layers / before the classifier
  c.optimizer.learning_rate = 1e-3 if cell != "rnn" else 5e-4  # Adam; the plain RNN needs less
  c.optimizer.grad_clip_norm = 1.0  # recurrent nets: clip exploding gradients
  c.num_epochs = 5                # 2,340 steps of 128
  c.log_every = 100               # steps between progress lines
  c.eval_every = 1000             # steps between test-set evaluations
  c.checkpoint_every = 1000       # steps between checkpoints
  c.train_noise.snr_db = float("inf")  # DNI training SNR in dB of every product (inf = clean)
  c.eval_noise.snr_db = float("inf")   # test-time SNR of the periodic evaluation (inf = clean)
  if args.short:
    c.num_epochs = 2              # the DNI sweep's runs
  if args.tiny:
    c.data.source = "seq:digits"  # 8 rows of 8 pixels, bundled with scikit-learn
    c.data.batch_size = 16        # small batches
    c.data.eval_batch_size = 64   # 2 evaluation batches ...
    c.data.limit_test = 128       # ... of 128 test digits
    c.model.hidden = 8            # 8 units
    brief_run(c, 6)               # 6 steps, logged twice, evaluated and checkpointed at the end
  return c
