"""Sequence models built on the noisy recurrent cells (Deep Noise Injection, DESIGN.md).

  seq_classifier: [B, T, F] -> RNN/LSTM/GRU layers -> last state or mean over time -> logits [B, C]
  lstm_lm:        tokens [B, T] -> embedding -> LSTM layers -> softmax layer -> logits [B, T, V]

Every recurrent product and the output layer are analog products; `noise.layers` picks which are
noisy and `quant.layers` which have converters (products are counted layer by layer: recurrent
layer l is product l, the output layer is last).
The embedding is a table lookup, not a matrix product, so it is never noisy.

State across truncated-BPTT batches: by default every batch starts from a zero state. With
`lstm_lm(carry_state=True)` the final (c, h) of each layer is kept in the `carry` variable
collection and is the next call's initial state (Zaremba et al.'s training), so row b of batch k+1
must continue row b of batch k: train with `config.data.order = 'sequential'`. The trainer resets
the carry at every epoch start and evaluates from a zero carry threaded through the split in order.
No gradient flows into the carried state (it enters as a constant).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from freqnoise.analog.layers import AnalogProduct, NoisyDense
from freqnoise.analog.noise import NoiseConfig
from freqnoise.analog.product import analog_product, is_noisy, module_rng
from freqnoise.analog.product_quant import ProductQuant, analog_args
from freqnoise.analog.recurrent import CELLS, RecurrentScan
from freqnoise.models.registry import register

READOUTS = ("last", "mean")


def _check(cell: str, num_layers: int) -> None:
  if cell not in CELLS:
    raise ValueError(f"unknown cell {cell!r}; expected one of {', '.join(CELLS)}")
  if num_layers < 1:
    raise ValueError(f"num_layers must be >= 1, got {num_layers}")


@register("seq_classifier")
class SequenceClassifier(nn.Module):
  """Recurrent sequence classifier.

  Attributes:
    num_classes: output logits C.
    cell: 'rnn' (tanh), 'lstm' or 'gru'.
    hidden: hidden units per layer.
    num_layers: stacked recurrent layers.
    readout: 'last' (state after the last step) or 'mean' (mean of the states over time).
    dropout: dropout rate between layers and before the output layer (training only).
    noise: analog noise of every product (None = noiseless).
    quant: DAC / Q_w / ADC of every product (None = float; per `quant.layers`).
  Input float [B, T, F], output logits [B, C].
  """

  num_classes: int
  cell: str = "lstm"
  hidden: int = 128
  num_layers: int = 1
  readout: str = "last"
  dropout: float = 0.0
  noise: NoiseConfig | None = None
  quant: ProductQuant | None = None

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    _check(self.cell, self.num_layers)
    if self.readout not in READOUTS:
      raise ValueError(f"unknown readout {self.readout!r}; expected one of {', '.join(READOUTS)}")
    if x.ndim != 3:
      raise ValueError(f"seq_classifier expects inputs [batch, time, features], got {x.shape}")
    count = self.num_layers + 1
    analog = lambda i: analog_args(self.noise, self.quant, i, count)
    for layer in range(self.num_layers):
      _, x = RecurrentScan(self.cell, self.hidden, **analog(layer), name=f"rnn{layer}")(x)
      if self.dropout:
        x = nn.Dropout(self.dropout, deterministic=not train)(x)
    features = x[:, -1] if self.readout == "last" else jnp.mean(x, axis=1)
    return NoisyDense(self.num_classes, **analog(count - 1), name="logits")(features)


def _uniform(scale: float):
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -scale, scale)
  return init


@register("lstm_lm")
class LSTMLanguageModel(nn.Module):
  """Word-level LSTM language model (Zaremba et al., 2014 layout).

  Attributes:
    num_classes: vocabulary size V.
    embed_dim: embedding width (must equal `hidden` when `tie_weights`).
    hidden: LSTM units per layer.
    num_layers: stacked LSTM layers.
    dropout: dropout on the embedding output, between layers and before the softmax layer.
    tie_weights: the softmax layer reuses the embedding matrix (Press & Wolf, 2017; Inan et al., 2017).
    init_scale: embedding and softmax weights are uniform in [-init_scale, init_scale]; the LSTM
      weights keep the cells' Flax defaults (LeCun-normal input, orthogonal recurrent kernels).
    cell: recurrent cell ('lstm' normally; 'rnn'/'gru' for comparisons).
    carry_state: keep each layer's final state in the `carry` collection and start the next call
      from it (see the module docstring); the collection's batch size is fixed at init.
    noise: analog noise of every product (None = noiseless).
    quant: DAC / Q_w / ADC of every product (None = float; per `quant.layers`).
  Input int tokens [B, T], output logits [B, T, V].
  """

  num_classes: int
  embed_dim: int = 200
  hidden: int = 200
  num_layers: int = 2
  dropout: float = 0.0
  tie_weights: bool = False
  init_scale: float = 0.1
  cell: str = "lstm"
  carry_state: bool = False
  noise: NoiseConfig | None = None
  quant: ProductQuant | None = None

  @nn.compact
  def __call__(self, tokens: jax.Array, *, train: bool) -> jax.Array:
    _check(self.cell, self.num_layers)
    if tokens.ndim != 2 or not jnp.issubdtype(tokens.dtype, jnp.integer):
      raise ValueError(f"lstm_lm expects int tokens [batch, time], got {tokens.dtype} {tokens.shape}")
    if self.tie_weights and self.embed_dim != self.hidden:
      raise ValueError(f"tie_weights needs embed_dim == hidden, got {self.embed_dim} and {self.hidden}")
    init = _uniform(self.init_scale)
    embed = nn.Embed(self.num_classes, self.embed_dim, embedding_init=init, name="embed")
    drop = lambda h: nn.Dropout(self.dropout, deterministic=not train)(h) if self.dropout else h
    x = drop(embed(tokens))
    count = self.num_layers + 1
    analog = lambda i: analog_args(self.noise, self.quant, i, count)
    for layer in range(self.num_layers):
      scan = RecurrentScan(self.cell, self.hidden, **analog(layer), name=f"lstm{layer}")
      if not self.carry_state:
        _, x = scan(x)
      else:
        zeros = CELLS[self.cell](self.hidden, parent=None).initial_carry(x)
        state = self.variable("carry", f"layer{layer}", lambda z=zeros: z)
        if jax.tree.leaves(state.value)[0].shape != jax.tree.leaves(zeros)[0].shape:
          raise ValueError(f"lstm_lm carry_state: the carried state has batch size "
                           f"{jax.tree.leaves(state.value)[0].shape[0]} but this batch has "
                           f"{tokens.shape[0]}; the carry collection is sized at init")
        final, x = scan(x, jax.lax.stop_gradient(state.value))
        if self.is_mutable_collection("carry") and not self.is_initializing():
          state.value = final
      x = drop(x)
    out = analog(count - 1)
    if not self.tie_weights:
      return NoisyDense(self.num_classes, **out, kernel_init=init, name="logits")(x)
    bias = self.param("logits_bias", nn.initializers.zeros_init(), (self.num_classes,), jnp.float32)
    if out["quant"] is not None:  # the converters live under 'analog_logits'
      head = AnalogProduct(jnp.dot, "dense", **out, name="analog_logits")  # α, N per token
      return head(x, embed.embedding.T) + bias
    rng = module_rng(self) if is_noisy(out["noise"]) else None
    return analog_product(jnp.dot, x, embed.embedding.T, out["noise"], rng) + bias
