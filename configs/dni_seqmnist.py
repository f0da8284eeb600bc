"""Deep Noise Injection on row-by-row sequential MNIST (28 steps of 28 pixels): RNN or LSTM.

Commands:
  python -m freqnoise.main --config=configs/dni_seqmnist.py:lstm --workdir=/tmp/dni_lstm
  python -m freqnoise.main --config=configs/dni_seqmnist.py:rnn --workdir=/tmp/dni_rnn
  # Deep Noise Injection: train with 10 dB noise in every product
  python -m freqnoise.main --config=configs/dni_seqmnist.py:lstm --workdir=/tmp/dni_lstm10 \
      --config.train_noise.snr_db=10
The data path defaults to ../shared/data/mnist (original IDX files); use
--config.data.source=seq:tfds:mnist for TFDS. Variants: `lstm`, `rnn`, `gru`; append `,tiny` for a
few-step run on sklearn's 8x8 digits (tests), `,short` for the 2-epoch runs of the DNI sweep.
Runtime on 2 shared CPU cores: see experiments/deep_noise_injection/README.md (LSTM ~ 60 ms/step).
Expected: clean LSTM >= 98% test accuracy (5 epochs); RNN lower (see the README).
"""

import ml_collections

from configs.common import base_config

CELLS = ("lstm", "rnn", "gru")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  parts = [p for p in (arg or "lstm").split(",") if p]
  cell = next((p for p in parts if p in CELLS), "lstm")
  unknown = [p for p in parts if p not in CELLS + ("tiny", "short")]
  if unknown:
    raise ValueError(f"unknown config variant(s) {unknown}; known: {CELLS} plus tiny, short")
  c = base_config()
  c.data.source = "seq:idx:../shared/data/mnist"  # seq: = the image source read row by row
  c.data.input_key = "inputs"     # [B, 28, 28] float rows
  c.data.pixel_by_pixel = False   # True: 784 steps of one pixel
  c.data.permutation_seed = -1    # >= 0 (with pixel_by_pixel): fixed pixel permutation
  c.data.batch_size = 128
  c.data.eval_batch_size = 1000
  c.input = ml_collections.ConfigDict()
  c.input.name = "sequence"       # inputs as they are (already in [0, 1])
  c.model = ml_collections.ConfigDict()
  c.model.name = "seq_classifier"
  c.model.cell = cell             # rnn | lstm | gru
  c.model.hidden = 128            # hidden units
  c.model.num_layers = 1          # stacked recurrent layers
  c.model.readout = "last"        # last state (or 'mean' over time) feeds the classifier
  c.model.dropout = 0.0           # dropout between layers / before the classifier
  c.optimizer.learning_rate = 1e-3 if cell != "rnn" else 5e-4
  c.optimizer.grad_clip_norm = 1.0  # recurrent nets: clip exploding gradients
  c.num_epochs = 5
  c.log_every = 100
  c.eval_every = 1000
  c.checkpoint_every = 1000
  c.train_noise.snr_db = float("inf")  # DNI training SNR in dB of every product (inf = clean)
  c.eval_noise.snr_db = float("inf")   # test-time SNR of the periodic evaluation (inf = clean)
  if "short" in parts:
    c.num_epochs = 2
  if "tiny" in parts:
    c.data.source = "seq:digits"  # 8 rows of 8 pixels, bundled with scikit-learn
    c.data.batch_size = 16
    c.data.eval_batch_size = 64
    c.data.limit_test = 128
    c.model.hidden = 8
    c.num_epochs = 0
    c.num_steps = 6
    c.log_every = 3
    c.eval_every = 6
    c.checkpoint_every = 6
    c.tensorboard = False
  return c
