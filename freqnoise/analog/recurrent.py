"""Noisy recurrent cells for Deep Noise Injection (DESIGN.md, "Noisy RNN / LSTM").

Every matrix-vector product of every gate, input (x·W_i) and recurrent (h·W_h), is an analog
product  y = ADC( DAC(x) · W̃ + n ) + b  with the noise functions of `freqnoise.analog.noise`.
The gates of one cell share a fused kernel for speed ([in, G·H]: G gates of H units, gate blocks
in Flax's order), but each gate's block is its own product: per-example noise power P is the mean
square over that gate's H units, and additive weight noise scales with that gate's max|W|.

In the RNN and LSTM the two products of a gate are only ever summed, so their independent output
noises are drawn as one Gaussian with the summed variance (exactly the same distribution, half the
random numbers); the GRU, and any cell with an ADC quantizer, draws each product's noise separately.
Each product is the one `freqnoise.analog.product.analog_product`. Output (and read weight) noise
is drawn at every call of a cell, i.e. at every time step when the cell runs inside `nn.scan` with
`split_rngs={'noise': True, 'program': False}` (as `RecurrentScan` does): fresh noise per step,
while programming weight noise is one W̃ for all steps,
per sequence and per product. With `noise=None` (or a statically-off config) and no quantizers
the cells compute exactly Flax's `nn.SimpleCell`, `nn.OptimizedLSTMCell` (= `nn.LSTMCell`) and
`nn.GRUCell` gate math:

  RNN:  h' = tanh(x·W_i + h·W_h + b)
  LSTM: i, f, g, o = σ(·), σ(·), tanh(·), σ(·) of x·W_i + h·W_h + b (blocks in that order)
        c' = f ⊙ c + i ⊙ g,  h' = o ⊙ tanh(c');  carry (c, h)
  GRU:  r, z = σ(x·W_ir + b_ir + h·W_hr), σ(x·W_iz + b_iz + h·W_hz)
        n = tanh(x·W_in + b_in + r ⊙ (h·W_hn + b_hn)),  h' = (1 − z) ⊙ n + z ⊙ h

Shapes: x [B, F] per step (or [B, T, F] for `RecurrentScan`), h, c [B, H]. The initial carry is
built from the input (`initial_carry(x)`), so it shards like the batch.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from freqnoise.analog.noise import NoiseConfig, add_noise
from freqnoise.analog.product import analog_product, is_noisy, module_rng

Quantizer = Callable[[jax.Array], jax.Array] | nn.Module | None
Initializer = Callable[..., jax.Array]


class _NoisyCell(nn.Module):
  """Shared fields and the two fused analog products (input and recurrent) of a cell."""

  features: int
  noise: NoiseConfig | None = None
  kernel_init: Initializer = nn.initializers.lecun_normal()
  recurrent_kernel_init: Initializer = nn.initializers.orthogonal()
  bias_init: Initializer = nn.initializers.zeros_init()
  input_quantizer: Quantizer = None
  output_quantizer: Quantizer = None

  groups = 1  # gates per cell, overridden
  # True when the cell only uses the sum x·W_i + h·W_h (RNN, LSTM; not GRU, whose reset gate scales
  # h·W_hn): the two products' independent output noises then sum to one Gaussian of the summed
  # variance, drawn once per step (same distribution, half the random numbers).
  sums_products = True

  def _products(self, x: jax.Array, h: jax.Array) -> tuple[jax.Array, jax.Array]:
    if self.noise is not None and not isinstance(self.noise, NoiseConfig):
      raise TypeError(f"{type(self).__name__}.noise must be a NoiseConfig or None, got "
                      f"{type(self.noise).__name__}")
    width = self.groups * self.features
    w_i = self.param("input_kernel", _blockwise(self.kernel_init, self.groups),
                     (x.shape[-1], width), jnp.float32)
    w_h = self.param("recurrent_kernel", _blockwise(self.recurrent_kernel_init, self.groups),
                     (self.features, width), jnp.float32)
    noise = self.noise
    rng = module_rng(self) if is_noisy(noise) else None
    merge = (is_noisy(noise) and self.sums_products and noise.kind == "output"
             and self.output_quantizer is None)
    # (with a static +inf SNR the deferred variances are None: weight noise only)
    # Separate DACs for x_t and h_{t-1} (the NVM LSTM's layout): each product quantizes its own input.
    product = functools.partial(analog_product, jnp.dot, noise=noise, rng=rng, groups=self.groups,
                                dac=self.input_quantizer)
    if not merge:
      return (product(x, w_i, adc=self.output_quantizer), product(h, w_h, adc=self.output_quantizer))
    y_i, var_i = product(x, w_i, defer_output_noise=True)
    y_h, var_h = product(h, w_h, defer_output_noise=True)
    if var_i is not None:
      y_h = add_noise(self.make_rng("noise"), y_h, var_i + var_h, noise)
    return y_i, y_h

  def initial_carry(self, x: jax.Array) -> Any:
    """Zero carry for inputs x [B, ..., F] (batch first), derived from x so it shards like it."""
    dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
    zeros = jnp.zeros_like(x[:, 0, :1] if x.ndim == 3 else x[:, :1], dtype=dtype)
    return zeros + jnp.zeros((self.features,), dtype)


def _blockwise(init: Initializer, groups: int) -> Initializer:
  """Initialises each gate block of a fused kernel separately, as Flax's per-gate Dense layers do."""

  def blockwise(key, shape, dtype=jnp.float32):
    in_features, width = shape
    keys = jax.random.split(key, groups)
    return jnp.concatenate([init(k, (in_features, width // groups), dtype) for k in keys], axis=-1)

  return blockwise


class NoisyRNNCell(_NoisyCell):
  """Vanilla tanh RNN cell: h' = tanh(x·W_i + h·W_h + b). Carry h [B, H]; returns (h', h')."""

  groups = 1

  @nn.compact
  def __call__(self, h: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    y_i, y_h = self._products(x, h)
    b = self.param("bias", self.bias_init, (self.features,), jnp.float32)
    new_h = jnp.tanh(y_i + y_h + b)
    return new_h, new_h


class NoisyLSTMCell(_NoisyCell):
  """LSTM cell, gates (i, f, g, o). Carry (c, h), each [B, H]; returns ((c', h'), h')."""

  groups = 4

  @nn.compact
  def __call__(self, carry: tuple[jax.Array, jax.Array], x: jax.Array):
    c, h = carry
    y_i, y_h = self._products(x, h)
    b = self.param("bias", self.bias_init, (4 * self.features,), jnp.float32)
    i, f, g, o = jnp.split(y_i + y_h + b, 4, axis=-1)
    new_c = nn.sigmoid(f) * c + nn.sigmoid(i) * jnp.tanh(g)
    new_h = nn.sigmoid(o) * jnp.tanh(new_c)
    return (new_c, new_h), new_h

  def initial_carry(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    zeros = super().initial_carry(x)
    return zeros, zeros


class NoisyGRUCell(_NoisyCell):
  """GRU cell, gates (r, z, n) as Flax's GRUCell. Carry h [B, H]; returns (h', h')."""

  groups = 3
  sums_products = False

  @nn.compact
  def __call__(self, h: jax.Array, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    y_i, y_h = self._products(x, h)
    b_i = self.param("bias", self.bias_init, (3 * self.features,), jnp.float32)
    b_hn = self.param("recurrent_bias", self.bias_init, (self.features,), jnp.float32)
    x_r, x_z, x_n = jnp.split(y_i + b_i, 3, axis=-1)
    h_r, h_z, h_n = jnp.split(y_h, 3, axis=-1)
    r = nn.sigmoid(x_r + h_r)
    z = nn.sigmoid(x_z + h_z)
    n = jnp.tanh(x_n + r * (h_n + b_hn))
    new_h = (1.0 - z) * n + z * h
    return new_h, new_h


CELLS = {"rnn": NoisyRNNCell, "lstm": NoisyLSTMCell, "gru": NoisyGRUCell}


class RecurrentScan(nn.Module):
  """Runs a noisy cell over time with `nn.scan`: params shared, a fresh `noise` key per step.

  Attributes:
    cell: 'rnn', 'lstm' or 'gru'.
    features: hidden units H.
    noise: NoiseConfig or None, used by every product at every step.
  Call: x [B, T, F] (and optionally an initial carry) -> (final carry, outputs h [B, T, H]).
  """

  cell: str
  features: int
  noise: NoiseConfig | None = None
  input_quantizer: Quantizer = None
  output_quantizer: Quantizer = None

  @nn.compact
  def __call__(self, x: jax.Array, carry: Any = None):
    if self.cell not in CELLS:
      raise ValueError(f"unknown cell {self.cell!r}; expected one of {', '.join(CELLS)}")
    if x.ndim != 3:
      raise ValueError(f"RecurrentScan expects inputs [batch, time, features], got {x.shape}")
    scan = nn.scan(CELLS[self.cell], variable_broadcast="params",
                   split_rngs={"params": False, "noise": True, "program": False},
                   in_axes=1, out_axes=1)
    cell = scan(self.features, noise=self.noise, input_quantizer=self.input_quantizer,
                output_quantizer=self.output_quantizer, name="cell")
    if carry is None:
      carry = CELLS[self.cell](self.features, parent=None).initial_carry(x)
    return cell(carry, x)
