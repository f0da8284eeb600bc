"""Optimizers and learning-rate schedules from `config.optimizer`."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import optax

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step", "exponential")


def staircase_decay(learning_rate: float, decay_factor: float, decay_every: int,
                    decay_begin: int) -> optax.Schedule:
  """`learning_rate` until step `decay_begin`, then multiplied by `decay_factor` at step
  `decay_begin` and again every `decay_every` steps (staircase):

    lr(t) = learning_rate * decay_factor ** k(t),
    k(t) = 0 for t < decay_begin, else 1 + (t - decay_begin) // decay_every.
  """
  if decay_every <= 0 or decay_begin < 0:
    raise ValueError(f"staircase decay needs decay_every > 0 and decay_begin >= 0 steps, got "
                     f"{decay_every} and {decay_begin}")

  def schedule(step):
    decays = jnp.where(step < decay_begin, 0, 1 + (step - decay_begin) // decay_every)
    return learning_rate * jnp.asarray(decay_factor, jnp.float32) ** decays

  return schedule


def build_schedule(cfg: ml_collections.ConfigDict, num_steps: int,
                   steps_per_epoch: int | None = None) -> optax.Schedule:
  """Linear warm-up over `cfg.warmup_steps`, then constant / cosine to 0 / step / exponential decay.

  Step decay multiplies the rate by `cfg.decay_factor` at each fraction of `num_steps` listed in
  `cfg.boundaries` (e.g. (0.5, 0.75)). Exponential decay (epoch-wise, staircase) multiplies it by
  `cfg.decay_factor` at the end of epoch `cfg.decay_begin_epochs` and after every
  `cfg.decay_every_epochs` epochs from then on (Zaremba et al., 2014); it needs `steps_per_epoch`.
  Step counts here include the warm-up.
  """
  lr, warmup = cfg.learning_rate, cfg.get("warmup_steps", 0)
  name = cfg.get("schedule", "constant")
  if name not in SCHEDULES:
    raise ValueError(f"unknown learning-rate schedule {name!r}; known: {', '.join(SCHEDULES)}")
  if not lr > 0:
    raise ValueError(f"optimizer.learning_rate must be positive, got {lr}")
  if not 0 <= warmup < max(num_steps, 1):
    raise ValueError(f"optimizer.warmup_steps={warmup} must be in [0, num_steps={num_steps})")
  rest = max(num_steps - warmup, 1)
  if name == "constant":
    main = optax.constant_schedule(lr)
  elif name == "cosine":
    main = optax.cosine_decay_schedule(lr, rest)
  elif name == "step":
    bounds = {int(b * num_steps) - warmup: cfg.get("decay_factor", 0.1)
              for b in cfg.get("boundaries", (0.5, 0.75))}
    main = optax.piecewise_constant_schedule(lr, {b: f for b, f in bounds.items() if b > 0})
  else:
    if not steps_per_epoch or steps_per_epoch <= 0:
      raise ValueError("the exponential schedule counts epochs: pass "
                       f"build_optimizer(..., steps_per_epoch=...) (got {steps_per_epoch!r})")
    every = round(cfg.get("decay_every_epochs", 1.0) * steps_per_epoch)
    begin = round(cfg.get("decay_begin_epochs", 0.0) * steps_per_epoch)
    main = staircase_decay(lr, cfg.get("decay_factor", 0.1), every, max(begin - warmup, 0))
  if warmup == 0:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def keep_frozen(opt: optax.GradientTransformation,
                frozen: Callable[[Any], Any]) -> optax.GradientTransformationExtraArgs:
  """`opt` whose updates of the leaves that `frozen(params)` (a bool tree like params, static)
  marks True are exactly zero: frozen parameters stay as they are, whatever weight decay, momentum
  or AdamW's decoupled decay would do (torchvision and mmdetection give them no update). The state
  keeps `opt`'s layout, so checkpoints and `init_from` targets do not depend on what is frozen;
  the moments of frozen leaves are computed and dropped (a ResNet-50's stem and layer1: 0.2 M
  parameters)."""
  def update(updates, state, params=None, **extra):
    if params is None:
      raise ValueError("an optimizer with frozen parameters needs params in update()")
    updates, state = opt.update(updates, state, params, **extra)
    return jax.tree.map(lambda u, f: jnp.zeros_like(u) if f else u, updates, frozen(params)), state
  return optax.GradientTransformationExtraArgs(opt.init, update)


def build_optimizer(cfg: ml_collections.ConfigDict, num_steps: int,
                    steps_per_epoch: int | None = None,
                    frozen: Callable[[Any], Any] | None = None) -> optax.GradientTransformation:
  """SGD (momentum, Nesterov, coupled L2 weight decay: wd·w added to the gradient), Adam (the
  same), or AdamW (decoupled decay), optional clipping.

  `steps_per_epoch` is needed by the epoch-wise exponential schedule only. `frozen`: params -> bool
  tree of the parameters that get no update at all (`keep_frozen`; the model's
  `freqnoise.models.resnet.frozen_mask`).
  """
  name = cfg.get("name", "adam")
  if name not in OPTIMIZERS:
    raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
  schedule = build_schedule(cfg, num_steps, steps_per_epoch)
  wd = cfg.get("weight_decay", 0.0)
  if name == "sgd":
    opt = optax.sgd(schedule, momentum=cfg.get("momentum", 0.9) or None,
                    nesterov=cfg.get("nesterov", False))
    if wd:
      opt = optax.chain(optax.add_decayed_weights(wd), opt)
  elif name == "adam":
    opt = optax.adam(schedule)
    if wd:
      opt = optax.chain(optax.add_decayed_weights(wd), opt)
  else:
    opt = optax.adamw(schedule, weight_decay=wd)
  clip = cfg.get("grad_clip_norm", 0.0)
  if clip:
    opt = optax.chain(optax.clip_by_global_norm(clip), opt)
  return opt if frozen is None else keep_frozen(opt, frozen)
