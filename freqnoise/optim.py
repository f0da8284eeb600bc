"""Optimizers and learning-rate schedules from `config.optimizer`."""

from __future__ import annotations

import ml_collections
import optax

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")


def build_schedule(cfg: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
  """Linear warm-up over `cfg.warmup_steps`, then constant / cosine to 0 / step decay.

  Step decay multiplies the rate by `cfg.decay_factor` at each fraction of `num_steps` listed in
  `cfg.boundaries` (e.g. (0.5, 0.75)).
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
  else:
    bounds = {int(b * num_steps) - warmup: cfg.get("decay_factor", 0.1)
              for b in cfg.get("boundaries", (0.5, 0.75))}
    main = optax.piecewise_constant_schedule(lr, {b: f for b, f in bounds.items() if b > 0})
  if warmup == 0:
    return main
  return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])


def build_optimizer(cfg: ml_collections.ConfigDict, num_steps: int) -> optax.GradientTransformation:
  """SGD (momentum, Nesterov, L2 weight decay), Adam, or AdamW (decoupled decay), optional clipping."""
  name = cfg.get("name", "adam")
  if name not in OPTIMIZERS:
    raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}")
  schedule = build_schedule(cfg, num_steps)
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
  return optax.chain(optax.clip_by_global_norm(clip), opt) if clip else opt
