"""Noisy recurrent cells for Deep Noise Injection (DESIGN.md, "Noisy RNN / LSTM").

Every matrix-vector product of every gate, input (x·W_i) and recurrent (h·W_h), is an analog
product  y = ADC( DAC(x) · W̃ + n ) + b,  W̃ = Q_w(W) + weight noise, with the noise functions of
`freqnoise.analog.noise`. With `quant` (a `ProductQuant`) the input and the recurrent product are
two arrays with their own converters, as the NVM LSTM's patent lays them out (US 11,074,318):
separate DACs for x_t and h_{t-1} (`dac_input`, `dac_recurrent`), a weight quantizer per kernel
(`weight_input`, `weight_recurrent`: a fused gate kernel is one array) and an ADC per array
(`adc_input`, `adc_recurrent`), each a `Quantizer` with its own range.
The gates of one cell share a fused kernel for speed ([in, G·H]: G gates of H units, gate blocks
in Flax's order), but each gate's block is its own product: per-example noise power P is the mean
square over that gate's H units, and additive weight noise scales with that gate's max|W|.

In the RNN and LSTM the two products of a gate are only ever summed, so their independent output
noises are drawn as one Gaussian with the summed variance (exactly the same distribution, half the
random numbers); the GRU, and any cell with an ADC or input scaling, draws each product's noise
separately.
Each product is the one `freqnoise.analog.product.analog_product`. Output (and read weight) noise
is drawn at every call of a cell, i.e. at every time step when the cell runs inside `nn.scan` with
`split_rngs={'noise': True, 'program': False}` (as `RecurrentScan` does): fresh noise per step,
while programming weight noise is one W̃ for all steps,
per sequence and per product. Tracked converter ranges ('quant_ranges') are carried through the
steps when that collection is mutable (one EMA update per step) and read-only otherwise. With
`noise=None` (or a statically-off config) and no quantizers
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
from freqnoise.analog.product_quant import ProductQuant
from freqnoise.analog.quant import COLLECTION, stateless_quantizer

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
  quant: ProductQuant | None = None

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
    noise, quant = self.noise, self.quant or ProductQuant()
    for name in ("dac", "adc"):
      config = getattr(quant, name)
      if config is not None and config.mode == "learned" and config.bound is None:
        raise ValueError(f"a learned {name.upper()} range in a recurrent cell needs an initial "
                         f"bound (config.quant.{name}_bound > 0): LSQ's init from the data "
                         "cannot run inside the time loop")
    dacs = quant.converters("dac_input", "dac_recurrent")
    weights = quant.converters("weight_input", "weight_recurrent")
    adcs = quant.converters("adc_input", "adc_recurrent")
    if ((quant.dac is not None and self.input_quantizer is not None)
        or (quant.adc is not None and self.output_quantizer is not None)):
      raise ValueError(f"{type(self).__name__}: input_quantizer/output_quantizer and the same "
                       "converter of `quant` are both set; give one")
    dacs = tuple(self.input_quantizer if d is None else d for d in dacs)
    adcs = tuple(self.output_quantizer if a is None else a for a in adcs)
    periphery, adc_noise = quant.periphery, quant.adc_noise
    if periphery is not None:  # aihwkit's tiles: fixed converters, noise from the periphery
      dacs, adcs = ((None if c is None else stateless_quantizer(c),) * 2
                    for c in (quant.dac, quant.adc))
      adc_noise = None
    rng = module_rng(self) if is_noisy(noise) or adc_noise or periphery else None
    merge = (is_noisy(noise) and self.sums_products and noise.kind == "output"
             and adcs[0] is None and not quant.scale_inputs and periphery is None)
    # (with a static +inf SNR the deferred variances are None: weight noise only)
    product = functools.partial(analog_product, jnp.dot, noise=noise, rng=rng, groups=self.groups,
                                scale_axes=(-1,) if quant.scale_inputs else None,
                                periphery=periphery)
    args = [dict(dac=d, weight_quantizer=q) for d, q in zip(dacs, weights)]
    if not merge:
      return tuple(product(v, w, adc=a, adc_noise=adc_noise, **kw)
                   for v, w, a, kw in zip((x, h), (w_i, w_h), adcs, args))
    y_i, var_i = product(x, w_i, defer_output_noise=True, **args[0])
    y_h, var_h = product(h, w_h, defer_output_noise=True, **args[1])
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
    quant: ProductQuant or None, the converters of the cell's two arrays.
  Call: x [B, T, F] (and optionally an initial carry) -> (final carry, outputs h [B, T, H]).
  """

  cell: str
  features: int
  noise: NoiseConfig | None = None
  input_quantizer: Quantizer = None
  output_quantizer: Quantizer = None
  quant: ProductQuant | None = None

  @nn.compact
  def __call__(self, x: jax.Array, carry: Any = None):
    if self.cell not in CELLS:
      raise ValueError(f"unknown cell {self.cell!r}; expected one of {', '.join(CELLS)}")
    if x.ndim != 3:
      raise ValueError(f"RecurrentScan expects inputs [batch, time, features], got {x.shape}")
    # Tracked ranges: carried through the steps (updated at each) when mutable; a loop carry
    # must exist before the loop, so initialisation (and evaluation) broadcasts them instead.
    carried = self.is_mutable_collection(COLLECTION) and not self.is_initializing()
    broadcast = "params" if carried else ("params", COLLECTION)
    scan = nn.scan(CELLS[self.cell], variable_broadcast=broadcast,
                   variable_carry=COLLECTION if carried else (),
                   split_rngs={"params": False, "noise": True, "program": False},
                   in_axes=1, out_axes=1)
    cell = scan(self.features, noise=self.noise, input_quantizer=self.input_quantizer,
                output_quantizer=self.output_quantizer, quant=self.quant, name="cell")
    if carry is None:
      carry = CELLS[self.cell](self.features, parent=None).initial_carry(x)
    return cell(carry, x)
