"""White-box adversarial attacks on raw inputs: FGSM and PGD under L-inf or L2, with expectation
over the noise (EOT) for noisy models (DESIGN.md, "Attacks").

    config = AttackConfig(method="pgd", norm="linf", epsilon=0.3, step_size=0.01, steps=40,
                          bounds=(0.0, 1.0))                      # MadryLab's MNIST protocol
    x_adv = attack(logits_fn, x, labels, config, key)             # logits_fn(x, key) -> logits

An attack perturbs what `Experiment.predict` receives (raw pixels, before any DCT or normalisation
inside it), so `bounds` and `epsilon` are in raw pixel units: for this repository's images, which
arrive as 0..255, the MNIST ε = 0.3 of [0, 1] pixels is ε = 76.5 with bounds (0, 255).

Conventions (the same as foolbox 3.3.4's `FGSM`, `LinfPGD`, `L2PGD`; the tests compare them):
* loss: softmax cross-entropy of the true labels summed over the batch (each example's gradient is
  its own loss's gradient), written as eagerpy writes it (logits minus their max, log-sum-exp);
* step: x + step_size · sign(g) (L-inf) or x + step_size · g / max(‖g‖₂, 1e-12) per example (L2);
  then projection onto the ε-ball around the input (L-inf: clip x − x₀ to [−ε, ε]; L2: scale it by
  min(1, ε / max(‖x − x₀‖₂, 1e-12))), then clipping to `bounds` (the ball's centre is inside the
  box, so clipping never leaves the ball);
* random start: x₀ + U(−ε, ε) per pixel (L-inf) or x₀ + a uniform point of the ε-ball (L2,
  Voelker et al. 2017: the first n coordinates of a uniform point on the (n+1)-sphere), clipped
  to `bounds`; foolbox's default is on for PGD and off for FGSM, as here;
* FGSM is one such step of size ε (foolbox: `rel_stepsize=1`, one step); `step_size` and `steps`
  are ignored for it.
Unlike foolbox, the whole attack is one traced computation (`lax.scan` over steps), randomness
comes from explicit keys (foolbox/eagerpy keep a global PRNG key, so random starts cannot match),
inputs outside `bounds` are not rejected (they cannot be checked under jit), and `attack` returns
the raw iterate (what foolbox's `run` returns; its `__call__` adds a re-clipped copy and success).

Keys: the random start uses `named_key(key, 'start')`; step t (0-based) has the key
`step_key(key, t)`, and its EOT draws are `eot_keys(step_key(key, t), eot_draws)`. Each draw's key
goes to `logits_fn` (with `experiment_logits_fn`, a new chip and fresh read noise per draw). Give
the attack a key of its own (e.g. `experiment.key('attack')`) so that its draws are independent of
every other consumer's (freqnoise.rng).

This module is numerics only; `experiment_logits_fn` adapts an Experiment without importing it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

from freqnoise import rng

# logits_fn(x [B, ...], key) -> logits [B, C]; the key carries the noise draw.
LogitsFn = Callable[[jax.Array, jax.Array], jax.Array]

METHODS = ("fgsm", "pgd")
NORMS = ("linf", "l2")
_TINY = 1e-12  # floor of norms before dividing (foolbox's)


def _check_number(name: str, value, *, minimum: float | None = None, positive: bool = False):
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise TypeError(f"AttackConfig.{name} must be a number, got {type(value).__name__} {value!r}")
  if not math.isfinite(value):
    raise ValueError(f"AttackConfig.{name} must be finite, got {value}")
  if positive and value <= 0:
    raise ValueError(f"AttackConfig.{name} must be > 0, got {value}")
  if minimum is not None and value < minimum:
    raise ValueError(f"AttackConfig.{name} must be >= {minimum}, got {value}")
  return float(value)


def _check_count(name: str, value) -> int:
  if isinstance(value, bool) or not isinstance(value, int):
    raise TypeError(f"AttackConfig.{name} must be an integer >= 1, got {type(value).__name__} "
                    f"{value!r}")
  if value < 1:
    raise ValueError(f"AttackConfig.{name} must be >= 1, got {value}")
  return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class AttackConfig:
  """One white-box attack; hashable, so it can be a static argument of `jax.jit`.

  Attributes:
    method: 'fgsm' (one step of size epsilon) or 'pgd' (`steps` steps of `step_size`).
    norm: 'linf' or 'l2': the threat model's ball and the step's normalisation.
    epsilon: radius of the ball, in raw input units (>= 0; 0 returns the input unchanged).
    bounds: (lo, hi), the valid raw input range (e.g. (0, 255) for this repo's uint8 images).
    step_size: PGD step length in raw input units (> 0); ignored by FGSM.
    steps: PGD iterations (>= 1); ignored by FGSM.
    random_start: start at a uniform point of the ball; None = foolbox's default (PGD yes, FGSM no).
    eot_draws: noise draws whose gradients are averaged at every step (1 = plain gradient).
  """

  method: str
  norm: str
  epsilon: float
  bounds: tuple[float, float]
  step_size: float = 0.01
  steps: int = 40
  random_start: bool | None = None
  eot_draws: int = 1

  def __post_init__(self):
    if self.method not in METHODS:
      raise ValueError(f"AttackConfig.method must be one of {METHODS}, got {self.method!r}")
    if self.norm not in NORMS:
      raise ValueError(f"AttackConfig.norm must be one of {NORMS}, got {self.norm!r}")
    set_ = lambda name, value: object.__setattr__(self, name, value)
    set_("epsilon", _check_number("epsilon", self.epsilon, minimum=0.0))
    try:
      lo, hi = self.bounds
    except (TypeError, ValueError):
      raise ValueError(f"AttackConfig.bounds must be a pair (lo, hi), got "
                       f"{self.bounds!r}") from None
    lo, hi = _check_number("bounds[0]", lo), _check_number("bounds[1]", hi)
    if lo >= hi:
      raise ValueError(f"AttackConfig.bounds must have lo < hi, got ({lo}, {hi})")
    set_("bounds", (lo, hi))  # a tuple of floats: hashable, whatever was given
    if self.method == "pgd":
      set_("step_size", _check_number("step_size", self.step_size, positive=True))
      set_("steps", _check_count("steps", self.steps))
    if self.random_start is None:
      set_("random_start", self.method == "pgd")
    elif not isinstance(self.random_start, bool):
      raise TypeError(f"AttackConfig.random_start must be a bool or None, got "
                      f"{self.random_start!r}")
    set_("eot_draws", _check_count("eot_draws", self.eot_draws))

  @property
  def num_steps(self) -> int:
    return 1 if self.method == "fgsm" else self.steps

  @property
  def step_length(self) -> float:
    return self.epsilon if self.method == "fgsm" else self.step_size


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """[B] softmax cross-entropy of integer `labels` [B] under `logits` [B, C] (eagerpy's formula:
  the max is subtracted without stop_gradient, so the gradient rounds as foolbox's does)."""
  if logits.ndim != 2:
    raise ValueError(f"attacks need logits [batch, classes], got shape {logits.shape}")
  logits = logits.astype(jnp.float32)
  shifted = logits - logits.max(axis=1, keepdims=True)
  picked = jnp.take_along_axis(shifted, labels[:, None].astype(jnp.int32), axis=1)[:, 0]
  return jnp.log(jnp.sum(jnp.exp(shifted), axis=1)) - picked


def step_key(key: jax.Array, step) -> jax.Array:
  """The key of PGD step `step` (0-based; FGSM's one step is 0)."""
  return jax.random.fold_in(rng.named_key(key, "step"), step)


def eot_keys(key: jax.Array, draws: int) -> jax.Array:
  """[draws] noise keys of one step's EOT draws: `fold_in(key, d)` for d = 0..draws-1."""
  return jax.vmap(lambda d: jax.random.fold_in(key, d))(jnp.arange(draws, dtype=jnp.uint32))


def loss_gradient(logits_fn: LogitsFn, x: jax.Array, labels: jax.Array, key: jax.Array, *,
                  eot_draws: int = 1) -> jax.Array:
  """d(summed cross-entropy)/dx [B, ...], the mean over the draws `eot_keys(key, eot_draws)`."""
  grad = jax.grad(lambda x, k: jnp.sum(cross_entropy(logits_fn(x, k), labels)))
  return jax.vmap(grad, in_axes=(None, 0))(x, eot_keys(key, eot_draws)).mean(axis=0)


def _per_example_norm(v: jax.Array) -> jax.Array:
  """[B, 1, ..., 1] L2 norm of each example of `v` [B, ...], floored at 1e-12."""
  norms = jnp.sqrt(jnp.sum(jnp.square(v.reshape(v.shape[0], -1)), axis=1))
  return jnp.maximum(norms, _TINY).reshape((-1,) + (1,) * (v.ndim - 1))


def _direction(g: jax.Array, norm: str) -> jax.Array:
  return jnp.sign(g) if norm == "linf" else g / _per_example_norm(g)


def project(x: jax.Array, x0: jax.Array, epsilon: float, norm: str) -> jax.Array:
  """`x` moved into the `norm` ball of radius `epsilon` around `x0` (per example)."""
  delta = x - x0
  if norm == "linf":
    return x0 + jnp.clip(delta, -epsilon, epsilon)
  return x0 + delta * jnp.minimum(1.0, epsilon / _per_example_norm(delta))


def random_start(x0: jax.Array, config: AttackConfig, key: jax.Array) -> jax.Array:
  """A uniform point of the ε-ball around `x0` (per example), clipped to the bounds."""
  eps = config.epsilon
  if config.norm == "linf":
    r = jax.random.uniform(key, x0.shape, x0.dtype, -eps, eps)
  else:
    n = math.prod(x0.shape[1:])
    s = jax.random.normal(key, (x0.shape[0], n + 2), x0.dtype)
    s = s / jnp.sqrt(jnp.sum(jnp.square(s), axis=1, keepdims=True))
    r = eps * s[:, :n].reshape(x0.shape)
  return jnp.clip(x0 + r, *config.bounds)


def attack(logits_fn: LogitsFn, x: jax.Array, labels: jax.Array, config: AttackConfig,
           key: jax.Array, *, return_trajectory: bool = False, unroll: int | bool = 1):
  """Adversarial examples of `x` [B, ...] (raw inputs inside `config.bounds`, not checked) for
  integer `labels` [B].

  Pure and traceable: wrap it in `jax.jit` with `config` (and `return_trajectory`) static and the
  model's variables as traced arguments (see `experiment_logits_fn`); the steps are a `lax.scan`,
  so one compilation covers the whole attack. `unroll` is `lax.scan`'s: on CPU, convolutions
  inside an XLA while loop can run ~2x slower than outside one (jax-ml/jax#12868), and
  `unroll=True` removes the loop for a compile time that grows with the steps (bench_attacks.py
  times both).

  Returns:
    x_adv [B, ...] float; with `return_trajectory`, also the iterates [num_steps + 1, B, ...]
    (the start, after the random start if any, then each step's x).
  """
  if not isinstance(config, AttackConfig):
    raise TypeError(f"config must be an AttackConfig, got {type(config).__name__}")
  x0 = jnp.asarray(x)
  if not jnp.issubdtype(x0.dtype, jnp.floating):
    x0 = x0.astype(jnp.float32)  # uint8 pixels: the perturbed image is float
  labels = jnp.asarray(labels)
  if labels.shape != x0.shape[:1]:
    raise ValueError(f"need labels [B] matching x [B, ...], got {labels.shape} and {x0.shape}")
  start = random_start(x0, config, rng.named_key(key, "start")) if config.random_start else x0

  def step(x, t):
    g = loss_gradient(logits_fn, x, labels, step_key(key, t), eot_draws=config.eot_draws)
    x = x + config.step_length * _direction(g, config.norm)
    x = jnp.clip(project(x, x0, config.epsilon, config.norm), *config.bounds)
    return x, (x if return_trajectory else None)

  x_adv, path = jax.lax.scan(step, start, jnp.arange(config.num_steps, dtype=jnp.uint32),
                              unroll=unroll)
  if return_trajectory:
    return x_adv, jnp.concatenate([start[None], path])
  return x_adv


def experiment_logits_fn(experiment: Any, variables: Any, noise: Any, *,
                         program_key: jax.Array | None = None) -> LogitsFn:
  """`logits_fn` of an Experiment's evaluation-mode model: `(x, key) -> experiment.predict(
  variables, x, noise=noise, key=key)`.

  `noise` is a NoiseConfig or None (noiseless; the key is then unused). Without `program_key`,
  each call is a new chip (programming noise derived from `key`): EOT averages over chips too;
  with it, the attacked chip is fixed. Build it inside the jitted function, from its traced
  `variables`, so the weights are arguments of the compiled attack, not constants in it.
  """
  def logits_fn(x: jax.Array, key: jax.Array) -> jax.Array:
    return experiment.predict(variables, x, noise=noise, key=key, program_key=program_key)

  return logits_fn
