"""Word-level LSTM language model on Penn Treebank, optionally with Deep Noise Injection.

Command:
  python -m freqnoise.main --config=configs/dni_ptb.py --workdir=/tmp/dni_ptb
  # DNI: --config.train_noise.snr_db=10
Reads ../shared/data/ptb (ptb.{train,valid,test}.txt). The default is Zaremba et al.'s *small*
model (2 x 200 LSTM, 20 x 35 BPTT batches, SGD lr 1 with decay, clip 5; 13 epochs, ~115 test
perplexity in the paper); `medium` is their 2 x 650 model with dropout 0.5 (39 epochs, ~82).
As in the paper, the LSTM state is carried from one 35-token batch to the next (batches in stream
order, state reset at every epoch start and evaluated the same way over the test stream);
`--config.model.carry_state=False --config.data.order=shuffled` resets it at every row instead.
Variants: `small` (default), `medium`, `short` (2 epochs of small), `quick` (small with Adam 2e-3 and
a cosine schedule, which learns much faster in the first few hundred steps than SGD: the DNI sweep's
CPU-bounded runs; 500 SGD steps only reach the unigram level, ~700 perplexity), `tiny` (tests).
Runtime on 2 shared CPU cores: see experiments/deep_noise_injection/README.md.
"""

import ml_collections

from configs.common import base_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  variant = arg or "small"
  if variant not in ("small", "medium", "short", "quick", "tiny"):
    raise ValueError(f"unknown config variant {variant!r}; known: small, medium, short, quick, tiny")
  c = base_config()
  c.data.source = "ptb:../shared/data/ptb"
  c.data.input_key = "tokens"     # [B, T] word ids
  c.data.label_key = "targets"    # the next word of every position
  c.data.num_steps = 35           # BPTT length T
  c.data.eval_split = "test"      # 'test' or 'valid' becomes the evaluated split
  c.data.batch_size = 20
  c.data.eval_batch_size = 20
  c.data.order = "sequential"     # row b of batch k+1 continues row b of batch k
  c.input = ml_collections.ConfigDict()
  c.input.name = "sequence"       # token ids pass through to the embedding
  c.model = ml_collections.ConfigDict()
  c.model.name = "lstm_lm"
  c.model.embed_dim = 200         # embedding width
  c.model.hidden = 200            # LSTM units per layer
  c.model.num_layers = 2          # stacked LSTM layers
  c.model.dropout = 0.0           # dropout on embeddings, between layers, before the softmax
  c.model.tie_weights = False     # share the embedding with the softmax layer
  c.model.init_scale = 0.1        # uniform init range of embedding and softmax weights
  c.model.carry_state = True      # carry (c, h) across BPTT batches (needs data.order sequential)
  c.optimizer.name = "sgd"
  c.optimizer.momentum = 0.0
  c.optimizer.learning_rate = 1.0
  c.optimizer.schedule = "step"   # x0.5 per epoch after epoch 4 (approximated by boundaries)
  c.optimizer.boundaries = (0.4, 0.55, 0.7, 0.85)
  c.optimizer.decay_factor = 0.5
  c.optimizer.grad_clip_norm = 5.0
  c.num_epochs = 13
  c.report_perplexity = True      # report exp(mean token cross-entropy)
  c.log_every = 200
  c.eval_every = 2000
  c.checkpoint_every = 2000
  c.train_noise.snr_db = float("inf")  # DNI training SNR in dB (inf = clean)
  c.eval_noise.snr_db = float("inf")   # test-time SNR of the periodic evaluation
  if variant == "medium":
    c.model.embed_dim = c.model.hidden = 650
    c.model.dropout = 0.5
    c.model.init_scale = 0.05
    c.num_epochs = 39
  elif variant == "short":
    c.num_epochs = 2
    c.optimizer.boundaries = (0.5, 0.75)
  elif variant == "quick":
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 2e-3
    c.optimizer.schedule = "cosine"
    c.num_epochs = 1
  elif variant == "tiny":
    c.data.source = "ptb:tests/data/ptb_tiny"  # replaced by the tests with files they write
    c.data.num_steps = 5
    c.data.batch_size = 4
    c.data.eval_batch_size = 4
    c.model.embed_dim = c.model.hidden = 8
    c.model.tie_weights = True
    c.num_epochs = 0
    c.num_steps = 4
    c.log_every = 2
    c.eval_every = 4
    c.checkpoint_every = 4
    c.tensorboard = False
  return c
