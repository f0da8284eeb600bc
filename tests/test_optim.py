"""Learning-rate schedules hit their closed-form values; optimizer settings are checked; frozen
parameters get no update at all."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from ml_collections import ConfigDict

from freqnoise.optim import build_optimizer, build_schedule


def cfg(**kw):
  return ConfigDict({"learning_rate": 0.1, **kw})


def test_cosine_with_warmup_closed_form():
  s = build_schedule(cfg(schedule="cosine", warmup_steps=10), 110)
  assert float(s(0)) == 0.0 and float(s(5)) == pytest.approx(0.05)
  assert float(s(10)) == pytest.approx(0.1)
  assert float(s(60)) == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * 0.5)))
  assert float(s(110)) == pytest.approx(0.0, abs=1e-9)


def test_step_schedule_decays_at_boundaries():
  s = build_schedule(cfg(schedule="step", boundaries=(0.5, 0.75), decay_factor=0.1), 100)
  values = [float(s(t)) for t in (0, 49, 50, 74, 75, 99)]
  np.testing.assert_allclose(values, [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)


def test_staircase_decay_closed_form():
  s = build_schedule(cfg(schedule="exponential", learning_rate=1.0, decay_factor=0.5,
                         decay_begin_epochs=4, decay_every_epochs=1), 130, steps_per_epoch=10)
  steps = np.array([0, 39, 40, 49, 50, 59, 60, 129])
  decays = np.where(steps < 40, 0, 1 + (steps - 40) // 10)
  np.testing.assert_allclose([float(s(t)) for t in steps], 0.5 ** decays, rtol=1e-6)
  np.testing.assert_allclose([float(s(t)) for t in steps],
                             [1, 1, 0.5, 0.5, 0.25, 0.25, 0.125, 2 ** -9], rtol=1e-6)


def test_zaremba_medium_schedule_per_epoch():
  """39 epochs: lr 1 for epochs 1-6, then / 1.2 after every epoch (Zaremba et al., 2014); their
  lr 1 on the loss summed over a row's T = 35 steps is 35 on the trainer's mean-token loss."""
  from configs import dni_ptb
  config = dni_ptb.get_config("size=medium")
  spe, seq_len = 7, config.data.seq_len
  s = build_schedule(config.optimizer, 39 * spe, steps_per_epoch=spe)
  for epoch in range(1, 40):  # 1-based, as in the paper
    expected = seq_len * 1.2 ** -max(epoch - 6, 0)
    for t in ((epoch - 1) * spe, epoch * spe - 1):
      assert float(s(t)) == pytest.approx(expected, rel=1e-6), (epoch, t)


def test_exponential_schedule_counts_from_the_start_through_warmup():
  s = build_schedule(cfg(schedule="exponential", decay_factor=0.1, decay_begin_epochs=2,
                         decay_every_epochs=1, warmup_steps=5), 40, steps_per_epoch=10)
  values = [float(s(t)) for t in (0, 5, 19, 20, 29, 30)]
  np.testing.assert_allclose(values, [0.0, 0.1, 0.1, 0.01, 0.01, 0.001], rtol=1e-6)
  with pytest.raises(ValueError, match="steps_per_epoch"):
    build_schedule(cfg(schedule="exponential"), 40)
  with pytest.raises(ValueError, match="decay_every > 0"):
    build_schedule(cfg(schedule="exponential", decay_every_epochs=0), 40, steps_per_epoch=10)


def test_a_warmup_not_shorter_than_the_run_becomes_a_tenth_of_it_with_a_note(capsys):
  # Issue 25: `--config.num_steps=20` on a config warming up over 100 steps was an error
  # (warmup_steps=100 must be in [0, num_steps=20)) that every short frequency / Mask R-CNN run hit.
  s = build_schedule(cfg(warmup_steps=100, schedule="constant"), 20)
  np.testing.assert_allclose([float(s(t)) for t in (0, 1, 2, 19)], [0.0, 0.05, 0.1, 0.1])
  out = capsys.readouterr().out
  assert out == ("note: optimizer.warmup_steps=100 is not shorter than this run's num_steps=20: "
                 "warming up over 2 steps (10% of the run) instead; set "
                 "--config.optimizer.warmup_steps=N to choose\n")
  build_optimizer(cfg(warmup_steps=100, schedule="constant"), 20)
  assert capsys.readouterr().out == ""  # said once
  assert float(build_schedule(cfg(warmup_steps=100, schedule="constant"), 2)(0)) == 0.1  # none
  assert "warming up over 0 steps" in capsys.readouterr().out
  # a warm-up shorter than the run is the configured one, as before
  np.testing.assert_allclose(float(build_schedule(cfg(warmup_steps=19, schedule="constant"),
                                                  20)(1)), 0.1 / 19, rtol=1e-6)
  assert capsys.readouterr().out == ""


def test_bad_optimizer_settings():
  with pytest.raises(ValueError, match="learning_rate must be positive"):
    build_schedule(cfg(learning_rate=0.0), 10)
  with pytest.raises(ValueError, match="warmup_steps must be a non-negative integer, got -1"):
    build_schedule(cfg(warmup_steps=-1), 10)
  with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
    build_optimizer(cfg(name="rmsprop"), 10)
  for name in ("sgd", "adam", "adamw"):
    build_optimizer(cfg(name=name, weight_decay=1e-4, grad_clip_norm=1.0), 10)
  build_optimizer(cfg(name="sgd", schedule="exponential"), 10, steps_per_epoch=5)


def _leaves(tree) -> dict[str, np.ndarray]:
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(p): np.asarray(x) for p, x in flat}


def test_the_experiments_optimizer_never_moves_frozen_stages(tmp_path):
  """Issue 24 #1: a frozen stage gets zero gradient (stop_gradient), but SGD's coupled weight
  decay (v <- m·v + g + wd·w, w <- w - lr·v) used to shrink it anyway. Frozen parameters now stay
  bitwise; the others follow that recurrence (here with g = 0) as before."""
  from freqnoise.experiment import Experiment
  from tests.test_train import tiny
  config = tiny()
  config.model = ConfigDict({"name": "resnet18", "stem": "frequency", "width": 4,
                             "frozen_stages": 1})
  config.optimizer.update(name="sgd", schedule="constant", learning_rate=0.1, momentum=0.9,
                          weight_decay=0.01)
  experiment = Experiment(config, str(tmp_path))
  shapes = jax.eval_shape(lambda: experiment.model.init(
      jax.random.key(0), jnp.zeros((1, 8, 8, 1)), train=False))["params"]
  params = jax.tree.map(lambda x: jnp.asarray(np.random.default_rng(0).normal(size=x.shape),
                                              jnp.float32), shapes)
  state, p, update = experiment.tx.init(params), params, jax.jit(experiment.tx.update)
  for _ in range(5):
    updates, state = update(jax.tree.map(jnp.zeros_like, p), state, p)
    p = optax.apply_updates(p, updates)
  before, after = _leaves(params), _leaves(p)
  frozen = [k for k in before if k.startswith("['layer1_")]  # (the frequency stem has no conv1)
  # layer1_0: conv1, conv2 and a projection (1 input channel, not 4), each with a BN (scale,
  # bias); layer1_1: conv1, conv2 and their BNs.
  assert len(frozen) == 3 * 3 + 2 * 3
  for k, w in before.items():
    if k in frozen:
      np.testing.assert_array_equal(after[k], w, err_msg=f"frozen {k} moved")
    else:
      v, ref = np.zeros_like(w, np.float64), w.astype(np.float64)
      for _ in range(5):
        v = 0.9 * v + 0.01 * ref
        ref = ref - 0.1 * v
      np.testing.assert_allclose(after[k], ref, rtol=1e-5, err_msg=k)


@pytest.mark.parametrize("block", [
    dict(name="sgd", momentum=0.9, weight_decay=1e-4, grad_clip_norm=35.0),  # maskrcnn_coco
    dict(name="adamw", weight_decay=1e-2),
    dict(name="adam", weight_decay=1e-2),
])
def test_frozen_leaves_get_exactly_zero_updates_the_others_those_of_the_plain_optimizer(block):
  """A ResNet's frozen stem and stage 1 under random nonzero gradients: build_optimizer(frozen=)
  keeps them bitwise; every other leaf gets bitwise the plain optimizer's update and state (the
  state's layout is the plain optimizer's, so checkpoints and init_from targets keep theirs)."""
  from freqnoise.models.resnet import ResNet, frozen_mask
  model = ResNet(num_classes=3, stage_sizes=(1, 1), width=4, small_images=True, frozen_stages=1)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)),
                                             train=False))["params"]
  normal = lambda seed: lambda x: jnp.asarray(np.random.default_rng(seed).normal(size=x.shape),
                                              jnp.float32)
  params = jax.tree.map(normal(0), shapes)
  mask = _leaves(frozen_mask(model)(params))
  tx = build_optimizer(cfg(schedule="constant", **block), 10, frozen=frozen_mask(model))
  plain = build_optimizer(cfg(schedule="constant", **block), 10)
  p, s, s0 = params, tx.init(params), plain.init(params)
  assert jax.tree.structure(s) == jax.tree.structure(s0)
  for step in range(2):
    grads = jax.tree.map(normal(1 + step), p)
    (u, s), (u0, s0) = tx.update(grads, s, p), plain.update(grads, s0, p)
    for k, a in _leaves(u).items():
      if mask[k]:
        assert not a.any() and _leaves(u0)[k].any(), k  # the plain optimizer would move it
      else:
        np.testing.assert_array_equal(a, _leaves(u0)[k], err_msg=k)
    for a, b in zip(jax.tree.leaves(s), jax.tree.leaves(s0)):
      np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    p = optax.apply_updates(p, u)
  moved = {k: not np.array_equal(v, _leaves(p)[k]) for k, v in _leaves(params).items()}
  assert moved == {k: not f for k, f in mask.items()}
  assert sorted(k for k, f in mask.items() if f) == [  # the stem and layer1_0, nothing else
      f"['{m}']['{v}']" for m, v in (("bn1", "bias"), ("bn1", "scale"), ("conv1", "kernel"))] + [
      f"['layer1_0']['{m}']['{v}']" for m in ("bn1", "bn2") for v in ("bias", "scale")] + [
      "['layer1_0']['conv1']['kernel']", "['layer1_0']['conv2']['kernel']"]


def test_triangle_schedule_is_airbenchs_piecewise_linear_ramp():
  # airbench: lr(i) = interp(i, [0, int(0.23 * 476), 476], [0.2, 1, 0.07]) x lr, i = updates so far
  s = build_schedule(cfg(schedule="triangle", triangle=(0.2, 0.23, 0.07)), 476)
  peak = int(0.23 * 476)  # 109
  assert float(s(0)) == pytest.approx(0.02)
  assert float(s(peak)) == pytest.approx(0.1)
  assert float(s(peak // 2)) == pytest.approx(0.1 * (0.2 + 0.8 * (peak // 2) / peak))
  assert float(s(300)) == pytest.approx(0.1 * (1 - 0.93 * (300 - peak) / (476 - peak)))
  assert float(s(476)) == pytest.approx(0.007)
  with pytest.raises(ValueError, match="triangle's peak is a fraction of the steps"):
    build_schedule(cfg(schedule="triangle", triangle=(0.2, 1.5, 0.07)), 476)


def _airbench_lookahead(p, grad, lr, steps, spe, every, start_epoch, decay, power):
  """airbench's training loop on one scalar with plain SGD (float64): Lookahead pulls every
  `every` steps from epoch `start_epoch` on, and after every epoch (and the last step) the net is
  set back to the slow weights. The weight after each step."""
  slow, trace = None, []
  for t in range(1, steps + 1):
    p = p - lr * grad(p)
    if (t - 1) // spe >= start_epoch and t % every == 0:
      if slow is None:
        slow = p
      else:
        rho = decay ** every * (t / steps) ** power
        slow = slow + (1 - rho) * (p - slow)
        p = slow
    if (t % spe == 0 or t == steps) and slow is not None:
      p = slow
    trace.append(p)
  return trace


@pytest.mark.parametrize("steps", [23, 25])  # the last step a pull or not
def test_lookahead_follows_airbenchs_loop(steps):
  grad = lambda p: p - 3.0  # a quadratic pulling the weight to 3
  opt = build_optimizer(cfg(name="sgd", momentum=0.0, schedule="constant", learning_rate=0.1,
                            lookahead_every=3, lookahead_start_epochs=1.0, lookahead_decay=0.9,
                            lookahead_power=2.0), steps, steps_per_epoch=7)
  params = {"w": jnp.float32(0.0)}
  state = opt.init(params)
  trace = []
  for _ in range(steps):
    updates, state = opt.update({"w": grad(params["w"])}, state, params)
    params = optax.apply_updates(params, updates)
    trace.append(float(params["w"]))
  expected = _airbench_lookahead(0.0, grad, 0.1, steps, 7, 3, 1, 0.9, 2.0)
  np.testing.assert_allclose(trace, expected, rtol=1e-6)
  plain = [3.0 - 3.0 * 0.9 ** t for t in range(1, steps + 1)]
  np.testing.assert_allclose(trace[:8], plain[:8], rtol=1e-6)  # epoch 0: plain SGD
  assert abs(trace[-1] - plain[-1]) > 1e-3  # then the averaging lags behind it
