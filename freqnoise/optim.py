"""Optimizers and learning-rate schedules from `config.optimizer`."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step", "exponential", "triangle")


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


# Notes already printed (a run builds its optimizer more than once: config check, Experiment).
_NOTED: set[str] = set()


def warmup_steps(cfg: ml_collections.ConfigDict, num_steps: int) -> int:
  """The linear warm-up a run of `num_steps` gets: `cfg.warmup_steps`, unless that is not shorter
  than the run -- a run shortened on the command line (`--config.num_steps=2` on a config that
  warms up over 100 steps) -- which warms up over 10% of its steps instead (rounded down), with a
  printed note saying so and which flag sets it. A function of (warmup_steps, num_steps) alone, so
  config.json still determines the schedule."""
  warmup = cfg.get("warmup_steps", 0)
  if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
    raise ValueError(f"optimizer.warmup_steps must be a non-negative integer, got {warmup!r}")
  if warmup < num_steps:
    return warmup
  scaled = num_steps // 10
  note = (f"note: optimizer.warmup_steps={warmup} is not shorter than this run's num_steps="
          f"{num_steps}: warming up over {scaled} steps (10% of the run) instead; set "
          "--config.optimizer.warmup_steps=N to choose")
  if note not in _NOTED:
    _NOTED.add(note)
    print(note, flush=True)
  return scaled


def build_schedule(cfg: ml_collections.ConfigDict, num_steps: int,
                   steps_per_epoch: int | None = None) -> optax.Schedule:
  """Linear warm-up over `warmup_steps(cfg, num_steps)`, then constant / cosine to 0 / step /
  exponential decay.

  Step decay multiplies the rate by `cfg.decay_factor` at each fraction of `num_steps` listed in
  `cfg.boundaries` (e.g. (0.5, 0.75)). Exponential decay (epoch-wise, staircase) multiplies it by
  `cfg.decay_factor` at the end of epoch `cfg.decay_begin_epochs` and after every
  `cfg.decay_every_epochs` epochs from then on (Zaremba et al., 2014); it needs `steps_per_epoch`.
  Triangle (airbench): `cfg.triangle = (start, peak, end)`: linear from start·lr to lr at step
  int(peak · steps), then linear to end·lr at the last step (steps after the warm-up).
  Step counts here include the warm-up.
  """
  lr = cfg.learning_rate
  name = cfg.get("schedule", "constant")
  if name not in SCHEDULES:
    raise ValueError(f"unknown learning-rate schedule {name!r}; known: {', '.join(SCHEDULES)}")
  if not lr > 0:
    raise ValueError(f"optimizer.learning_rate must be positive, got {lr}")
  warmup = warmup_steps(cfg, num_steps)
  rest = max(num_steps - warmup, 1)
  if name == "constant":
    main = optax.constant_schedule(lr)
  elif name == "cosine":
    main = optax.cosine_decay_schedule(lr, rest)
  elif name == "step":
    bounds = {int(b * num_steps) - warmup: cfg.get("decay_factor", 0.1)
              for b in cfg.get("boundaries", (0.5, 0.75))}
    main = optax.piecewise_constant_schedule(lr, {b: f for b, f in bounds.items() if b > 0})
  elif name == "triangle":
    start, peak, end = cfg.get("triangle", (0.2, 0.23, 0.07))
    if not 0 < peak < 1:
      raise ValueError(f"optimizer.triangle's peak is a fraction of the steps in (0, 1), got "
                       f"{peak}")
    knots = jnp.asarray([0, int(peak * rest), rest], jnp.float32)
    main = lambda count: lr * jnp.interp(count, knots, jnp.asarray([start, 1.0, end], jnp.float32))
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

  `cfg.lookahead_every` > 0 wraps it in airbench's Lookahead (`lookahead_average`; start after
  `cfg.lookahead_start_epochs`, `cfg.lookahead_decay`, `cfg.lookahead_power`).
  `steps_per_epoch` is needed by the exponential schedule and Lookahead. `frozen`: params -> bool
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
  every = cfg.get("lookahead_every", 0)
  if every:
    if not steps_per_epoch or steps_per_epoch <= 0:
      raise ValueError("optimizer.lookahead_every counts epochs: pass build_optimizer(..., "
                       f"steps_per_epoch=...) (got {steps_per_epoch!r})")
    start = round(cfg.get("lookahead_start_epochs", 0.0) * steps_per_epoch) + 1
    opt = lookahead_average(opt, every, start, cfg.get("lookahead_decay", 0.95),
                            cfg.get("lookahead_power", 3.0), num_steps, steps_per_epoch)
  return opt if frozen is None else keep_frozen(opt, frozen)


class LookaheadState(NamedTuple):
  inner: Any        # the wrapped optimizer's state
  slow: Any         # the slow weights (like params)
  count: jax.Array  # updates so far (int32)
  started: jax.Array  # 1 once the slow weights were set (int32)


def lookahead_average(opt: optax.GradientTransformation, every: int, start: int, decay: float,
                      power: float, total_steps: int,
                      steps_per_epoch: int) -> optax.GradientTransformation:
  """airbench's Lookahead (Jordan 2024, after Zhang et al. 2019): `opt` moves the fast weights;
  at update t (1-based) with t >= `start` and t % `every` == 0 the slow weights move toward them,
  slow <- slow + (1 - ρ_t)(fast - slow), ρ_t = decay^every · (t / total_steps)^power (little
  averaging early, strong at the end; the first such t sets slow <- fast), and the parameters
  become the slow weights. Once started, the parameters are also set back to the slow weights at
  every epoch's end and at update `total_steps`, so a run ends on them. `opt`'s state (momentum)
  is kept across the resets, as airbench does. Needs params in update()."""
  if every <= 0 or start < 1 or total_steps <= 0 or steps_per_epoch <= 0:
    raise ValueError(f"lookahead needs every > 0, start >= 1, total_steps > 0 and steps_per_epoch "
                     f"> 0, got {every}, {start}, {total_steps}, {steps_per_epoch}")

  def init(params):
    return LookaheadState(opt.init(params), jax.tree.map(jnp.zeros_like, params),
                          jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("lookahead needs params in update()")
    steps, inner = opt.update(updates, state.inner, params)
    fast = optax.apply_updates(params, steps)
    t = state.count + 1
    sync = (t >= start) & (t % every == 0)
    rho = decay ** every * (t.astype(jnp.float32) / total_steps) ** power
    first = sync & (state.started == 0)
    pull = lambda s, f: jnp.where(first, f, jnp.where(sync, s + (1 - rho) * (f - s), s))
    slow = jax.tree.map(pull, state.slow, fast)
    started = state.started | sync.astype(jnp.int32)
    reset = (started == 1) & (sync | (t % steps_per_epoch == 0) | (t >= total_steps))
    new = jax.tree.map(lambda s, f: jnp.where(reset, s, f), slow, fast)
    out = jax.tree.map(lambda n, p: (n - p).astype(p.dtype), new, params)
    return out, LookaheadState(inner, slow, t, started)

  return optax.GradientTransformation(init, update)
