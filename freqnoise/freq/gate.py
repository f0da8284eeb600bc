"""Learned frequency-channel gate (DCTNet's dynamic gate, DESIGN.md "Gate and selection").

    x [B, H, W, C] -> global average pool [B, C] -> Dense(hidden) -> ReLU -> Dense(2C) -> logits [B, C, 2]
      training: hard straight-through Gumbel-softmax at temperature tau -> on/off per example & channel
      eval:     deterministic argmax of the logits
    -> x * on[:, None, None, :]

Loss: sows `gate_sparsity = lambda * mean(on)` into the `losses` collection (the trainer adds it).
State (collection `gate_stats`, updated only in training, checkpointed with the model):
  `steps`    int32, training calls so far (drives the temperature anneal: the trainer passes no step);
  `selected` float32 [C], how many training examples had each channel on;
  `examples` float32, how many training examples the gate has seen.
`freqnoise.freq.selection` turns these into a heat map and a static top-k subset.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from freqnoise.analog.layers import NoisyDense
from freqnoise.analog.noise import NoiseConfig
from freqnoise.analog.product_quant import ProductQuant


def gumbel_softmax_straight_through(logits: jax.Array, gumbel: jax.Array, tau) -> jax.Array:
  """Hard one-hot of `argmax(logits + gumbel)` in the forward pass, gradient of the soft sample.

  Args:
    logits: `[..., K]` unnormalised log-probabilities.
    gumbel: `[..., K]` standard Gumbel noise (`jax.random.gumbel`), zeros for a deterministic sample.
    tau: temperature > 0 of the soft sample `softmax((logits + gumbel) / tau)`.
  Returns:
    `[..., K]` exactly one-hot values whose vector-Jacobian product is that of the soft sample.
  """
  soft = jax.nn.softmax((logits + gumbel) / tau, axis=-1)
  hard = jax.nn.one_hot(jnp.argmax(soft, axis=-1), logits.shape[-1], dtype=soft.dtype)
  # soft - stop_gradient(soft) is exactly 0 forward and carries the soft gradient backward.
  return hard + (soft - jax.lax.stop_gradient(soft))


def annealed_temperature(step, tau_start: float, tau_end: float, anneal_steps: int) -> jax.Array:
  """Exponential anneal from `tau_start` (step 0) to `tau_end` (step >= anneal_steps), then constant.

  `anneal_steps == 0` keeps `tau_start` throughout.
  """
  if anneal_steps == 0:
    return jnp.asarray(tau_start, jnp.float32)
  progress = jnp.minimum(jnp.asarray(step, jnp.float32) / anneal_steps, 1.0)
  return jnp.asarray(tau_start, jnp.float32) * (tau_end / tau_start) ** progress


class FrequencyGate(nn.Module):
  """Per-example on/off gate over the channels of a `[B, H, W, C]` input (see module docstring).

  Attributes:
    sparsity_weight: lambda of the `lambda * mean(on)` loss (dimensionless, per example and channel).
    hidden: width of the hidden Dense layer; None means C.
    tau_start, tau_end, anneal_steps: Gumbel-softmax temperature schedule (`annealed_temperature`).
    noise: NoiseConfig for the gate's two Dense products (None = exact).
    input_noise: NoiseConfig (or None) for the hidden product alone, which reads the (pooled) model
      input; "same" (default) = `noise`. Models pass their "first product" noise here so that
      `noise.layers='all_but_first'` means the products that read the input (DESIGN.md).
    quant, input_quant: the same for the products' converters (ProductQuant; DAC / Q_w / ADC).
  """

  sparsity_weight: float = 0.0
  hidden: int | None = None
  tau_start: float = 1.0
  tau_end: float = 1.0
  anneal_steps: int = 0
  noise: NoiseConfig | None = None
  input_noise: NoiseConfig | None | str = "same"
  quant: ProductQuant | None = None
  input_quant: ProductQuant | None | str = "same"

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    if x.ndim != 4:
      raise ValueError(f"FrequencyGate expects [batch, height, width, channels], got shape {x.shape}")
    if min(self.tau_start, self.tau_end) <= 0 or self.anneal_steps < 0:
      raise ValueError(f"gate temperatures must be > 0 and anneal_steps >= 0, got tau_start="
                       f"{self.tau_start}, tau_end={self.tau_end}, anneal_steps={self.anneal_steps}")
    b, c = x.shape[0], x.shape[-1]
    steps = self.variable("gate_stats", "steps", lambda: jnp.zeros((), jnp.int32))
    selected = self.variable("gate_stats", "selected", lambda: jnp.zeros((c,), jnp.float32))
    examples = self.variable("gate_stats", "examples", lambda: jnp.zeros((), jnp.float32))

    pooled = jnp.mean(x, axis=(1, 2))
    input_noise = self.noise if isinstance(self.input_noise, str) else self.input_noise
    if isinstance(self.input_noise, str) and self.input_noise != "same":
      raise ValueError(f"FrequencyGate.input_noise must be a NoiseConfig, None or 'same', got "
                       f"{self.input_noise!r}")
    input_quant = self.quant if isinstance(self.input_quant, str) else self.input_quant
    if isinstance(self.input_quant, str) and self.input_quant != "same":
      raise ValueError(f"FrequencyGate.input_quant must be a ProductQuant, None or 'same', got "
                       f"{self.input_quant!r}")
    h = nn.relu(NoisyDense(self.hidden or c, noise=input_noise, quant=input_quant,
                           name="hidden")(pooled))
    logits = NoisyDense(2 * c, noise=self.noise, quant=self.quant,
                        name="logits")(h).reshape(b, c, 2)  # [.., (off, on)]
    if train:
      tau = annealed_temperature(steps.value, self.tau_start, self.tau_end, self.anneal_steps)
      gumbel = jax.random.gumbel(self.make_rng("gumbel"), logits.shape, logits.dtype)
      on = gumbel_softmax_straight_through(logits, gumbel, tau)[..., 1]
      if not self.is_initializing():
        steps.value = steps.value + 1
        selected.value = selected.value + jax.lax.stop_gradient(on).sum(axis=0)
        examples.value = examples.value + b
    else:
      on = (logits[..., 1] > logits[..., 0]).astype(x.dtype)
    self.sow("losses", "gate_sparsity", self.sparsity_weight * jnp.mean(on))
    return x * on[:, None, None, :].astype(x.dtype)
