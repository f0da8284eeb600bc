"""Attacks: FGSM against its closed form on a linear softmax model, PGD iterates inside the ε-ball
and the pixel range, ε = 0 exact, EOT's gradient against a Python loop over the draw keys, PGD
reaching a linear model's exact worst case, equality with foolbox 3.3.4 (FGSM, L2 FGM, LinfPGD,
L2PGD), an Experiment's model through `experiment_logits_fn`, and config errors naming the field."""

import contextlib
import functools
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from freqnoise.robust.attacks import (AttackConfig, attack, cross_entropy, eot_keys,
                                      experiment_logits_fn, loss_gradient, step_key)

BOUNDS = (0.0, 1.0)
SHAPE = (6, 4, 4, 1)  # [B, H, W, C]: image-shaped, so per-example norms span several axes


def _data(seed=0, shape=SHAPE, classes=3):
  gen = np.random.default_rng(seed)
  x = gen.uniform(0.0, 1.0, shape).astype(np.float32)
  x[:, 0, 0, 0] = 0.0  # some pixels on the bounds, so clipping is exercised
  x[:, 1, 1, 0] = 1.0
  return jnp.asarray(x), jnp.asarray(gen.integers(0, classes, shape[0]), jnp.int32)


def _linear(classes=3, n=16, seed=1):
  gen = np.random.default_rng(seed)
  w = gen.normal(size=(n, classes)).astype(np.float32)
  b = gen.normal(size=(classes,)).astype(np.float32)
  return w, b, lambda x, key=None: x.reshape(x.shape[0], -1) @ w + b


class MLP(nn.Module):
  noise: float = 0.0  # std of Gaussian noise on the hidden units (drawn from the key)

  @nn.compact
  def __call__(self, x, key=None):
    h = nn.tanh(nn.Dense(16)(x.reshape(x.shape[0], -1)))
    if self.noise:
      h = h + self.noise * jax.random.normal(key, h.shape)
    return nn.Dense(3)(nn.tanh(nn.Dense(16)(h)))


@functools.cache
def _mlp(noise=0.0):
  model = MLP(noise)
  params = model.init(jax.random.PRNGKey(0), jnp.zeros(SHAPE), jax.random.PRNGKey(1))
  return lambda x, key=None: model.apply(params, x, key)


def _config(**kw):
  base = dict(method="pgd", norm="linf", epsilon=0.1, step_size=0.02, steps=5, bounds=BOUNDS)
  return AttackConfig(**{**base, **kw})


KEY = jax.random.PRNGKey(7)
# The attack as callers run it: one compilation per (logits_fn, config).
run_attack = jax.jit(attack, static_argnums=(0, 3), static_argnames="return_trajectory")


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fgsm_on_a_linear_model_is_the_closed_form(norm):
  w, b, logits_fn = _linear()
  x, y = _data()
  eps = 0.3 if norm == "linf" else 1.5
  x_adv = run_attack(logits_fn, x, y, AttackConfig(method="fgsm", norm=norm, epsilon=eps,
                                               bounds=BOUNDS), KEY)
  # dCE/dx = W (p - onehot), per example (float64 reference)
  xf = np.asarray(x, np.float64).reshape(len(y), -1)
  logits = xf @ w + b
  p = np.exp(logits - logits.max(1, keepdims=True))
  p /= p.sum(1, keepdims=True)
  g = (p - np.eye(3)[np.asarray(y)]) @ w.T.astype(np.float64)
  if norm == "linf":
    step = eps * np.sign(g)
  else:
    step = eps * g / np.linalg.norm(g, axis=1, keepdims=True)
  want = np.clip(xf + step, *BOUNDS).reshape(x.shape)
  np.testing.assert_allclose(x_adv, want, atol=1e-6)
  assert not np.allclose(x_adv, x)


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.5)])
@pytest.mark.parametrize("start", [False, True])
def test_pgd_iterates_stay_in_the_ball_and_the_pixel_range(norm, eps, start):
  x, y = _data()
  config = _config(norm=norm, epsilon=eps, step_size=eps / 3, steps=8, random_start=start)
  x_adv, path = run_attack(_mlp(), x, y, config, KEY, return_trajectory=True)
  assert path.shape == (9,) + x.shape
  np.testing.assert_array_equal(path[-1], x_adv)
  if not start:
    np.testing.assert_array_equal(path[0], x)
  delta = np.asarray(path - x[None]).reshape(9, len(y), -1)
  dist = np.abs(delta).max(-1) if norm == "linf" else np.linalg.norm(delta, axis=-1)
  assert dist.max() <= eps * (1 + 1e-6)
  assert dist[-1].min() > 0.5 * eps  # it moved, and far
  assert path.min() >= BOUNDS[0] and path.max() <= BOUNDS[1]
  unrolled = jax.jit(attack, static_argnums=(0, 3), static_argnames="unroll")(
      _mlp(), x, y, config, KEY, unroll=True)
  np.testing.assert_allclose(unrolled, x_adv, rtol=0, atol=1e-6)
  loss = lambda z: float(cross_entropy(_mlp()(z), y).sum())
  assert loss(x_adv) > loss(x)


@pytest.mark.parametrize("method,norm,start", [("fgsm", "linf", False), ("fgsm", "l2", True),
                                               ("pgd", "linf", True), ("pgd", "l2", True)])
def test_zero_epsilon_returns_the_input_exactly(method, norm, start):
  x, y = _data()
  config = _config(method=method, norm=norm, epsilon=0.0, random_start=start)
  np.testing.assert_array_equal(run_attack(_linear()[2], x, y, config, KEY), x)


def test_eot_gradient_is_the_mean_of_per_draw_gradients():
  logits_fn = _mlp(noise=0.5)
  x, y = _data()
  draws = 5
  k = step_key(KEY, 0)
  grad = jax.jit(jax.grad(lambda z, kd: jnp.sum(cross_entropy(logits_fn(z, kd), y))))
  per_draw = [grad(x, kd) for kd in eot_keys(k, draws)]
  assert not np.allclose(per_draw[0], per_draw[1])  # the draws matter
  want = np.mean(np.stack(per_draw), axis=0)
  got = jax.jit(loss_gradient, static_argnums=0, static_argnames="eot_draws")(
      logits_fn, x, y, k, eot_draws=draws)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
  # The attack's first step uses exactly that gradient (L2: its direction, scaled to the step).
  config = _config(norm="l2", epsilon=10.0, step_size=0.05, steps=1, random_start=False,
                   eot_draws=draws, bounds=(-10.0, 10.0))
  g = want.reshape(len(y), -1)
  step = 0.05 * g / np.linalg.norm(g, axis=1, keepdims=True)
  np.testing.assert_allclose(run_attack(logits_fn, x, y, config, KEY),
                             np.asarray(x) + step.reshape(x.shape), atol=1e-6)


def test_pgd_finds_the_worst_case_of_a_linear_two_class_model():
  w, b, logits_fn = _linear(classes=2)
  gen = np.random.default_rng(3)
  x = jnp.asarray(gen.uniform(0.3, 0.7, SHAPE), jnp.float32)
  y = jnp.zeros(SHAPE[0], jnp.int32)  # the loss grows with the margin (w1 - w0) . x
  d = (w[:, 1] - w[:, 0]).reshape(SHAPE[1:])
  # L-inf: the corner x + ε sign(d) (clipped), reached after ε / step = 5 steps.
  linf = _config(epsilon=0.1, step_size=0.02, steps=8, random_start=False)
  want = np.clip(np.asarray(x) + 0.1 * np.sign(d), *BOUNDS)
  np.testing.assert_allclose(run_attack(logits_fn, x, y, linf, KEY), want, atol=1e-6)
  # L2: x + ε d / ||d|| (inside the box here): reached along d in 4 steps from x, or, from a random
  # start on the ball, approached geometrically (the radial projection turns the iterate to d).
  want = np.asarray(x) + 0.2 * d / np.linalg.norm(d)
  for start, steps in ((False, 6), (True, 80)):
    l2 = _config(norm="l2", epsilon=0.2, step_size=0.05, steps=steps, random_start=start)
    np.testing.assert_allclose(run_attack(logits_fn, x, y, l2, KEY), want, atol=1e-6)


@contextlib.contextmanager
def _foolbox_import_warnings():
  # foolbox 3.3.4 imports gaussian_filter from scipy.ndimage.filters (deprecated namespace).
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Please import `gaussian_filter`",
                            category=DeprecationWarning)
    yield


@pytest.fixture(scope="module")
def foolbox():
  with _foolbox_import_warnings():
    return pytest.importorskip("foolbox", minversion="3.3.4")


@pytest.mark.parametrize("norm,eps", [("linf", 0.1), ("l2", 0.6)])
@pytest.mark.parametrize("method", ["fgsm", "pgd"])
def test_equals_foolbox(foolbox, method, norm, eps):
  logits_fn = _mlp()
  x, y = _data()
  fa = foolbox.attacks
  if method == "fgsm":
    peer = (fa.FGSM if norm == "linf" else fa.L2FastGradientAttack)()
    config = AttackConfig(method="fgsm", norm=norm, epsilon=eps, bounds=BOUNDS)
  else:
    peer = (fa.LinfPGD if norm == "linf" else fa.L2PGD)(abs_stepsize=eps / 4, steps=10,
                                                        random_start=False)
    config = _config(norm=norm, epsilon=eps, step_size=eps / 4, steps=10, random_start=False)
  model = foolbox.JAXModel(jax.jit(logits_fn), bounds=BOUNDS)
  theirs = peer.run(model, x, foolbox.criteria.Misclassification(y), epsilon=eps)
  ours = run_attack(logits_fn, x, y, config, KEY)
  if norm == "linf":  # the same floating-point operations: bit for bit
    np.testing.assert_array_equal(ours, theirs)
  else:  # the per-example norms are summed in another order: an ulp or so (1.2e-7 seen)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)
  assert not np.allclose(ours, x)


def test_an_experiment_model_attacked_through_experiment_logits_fn(tmp_path):
  from configs.digits_mlp import get_config
  from freqnoise.analog.noise import NoiseConfig
  from freqnoise.experiment import Experiment
  config = get_config("tiny")
  config.model.hidden = (16,)  # small and quick to compile
  experiment = Experiment(config, str(tmp_path))
  variables = experiment.variables(experiment.initial_state())
  test = experiment.splits.test.arrays
  x, y = test["image"][:8], test["label"][:8]  # uint8, 0..255 raw pixels
  attack_config = AttackConfig(method="pgd", norm="linf", epsilon=20.0, step_size=5.0, steps=4,
                               bounds=(0.0, 255.0), eot_draws=2)
  key = experiment.key("attack")

  @jax.jit
  def run(variables, x, y, key, snr_db):
    noise = NoiseConfig(snr_db=snr_db)
    return attack(experiment_logits_fn(experiment, variables, noise), x, y, attack_config, key)

  x_adv = run(variables, x, y, key, 10.0)
  assert x_adv.dtype == jnp.float32 and x_adv.shape == x.shape
  assert np.abs(np.asarray(x_adv) - x).max() <= 20.0 + 1e-4
  assert x_adv.min() >= 0.0 and x_adv.max() <= 255.0
  np.testing.assert_array_equal(run(variables, x, y, key, 10.0), x_adv)  # the key's function
  # logits_fn is predict with the given noise and key (a new chip per key), or a fixed chip.
  noise, z = NoiseConfig(snr_db=10.0), jnp.asarray(x_adv)
  np.testing.assert_array_equal(experiment_logits_fn(experiment, variables, noise)(z, key),
                                experiment.predict(variables, z, noise=noise, key=key))
  chip = experiment_logits_fn(experiment, variables, noise, program_key=KEY)
  np.testing.assert_array_equal(
      chip(z, key), experiment.predict(variables, z, noise=noise, key=key, program_key=KEY))
  clean = experiment.predict(variables, jnp.asarray(x), noise=None, key=key)
  adv = experiment.predict(variables, x_adv, noise=None, key=key)
  assert cross_entropy(adv, jnp.asarray(y)).sum() > cross_entropy(clean, jnp.asarray(y)).sum()


@pytest.mark.parametrize("change,field", [
    (dict(epsilon=-0.1), "epsilon"), (dict(epsilon=float("nan")), "epsilon"),
    (dict(steps=0), "steps"), (dict(norm="l1"), "norm"), (dict(method="cw"), "method"),
    (dict(step_size=0.0), "step_size"), (dict(step_size=-1.0), "step_size"),
    (dict(bounds=(1.0, 1.0)), "bounds"), (dict(bounds=(1.0, 0.0)), "bounds"),
    (dict(bounds=(0.0,)), "bounds"), (dict(eot_draws=0), "eot_draws")])
def test_invalid_configs_name_the_field(change, field):
  with pytest.raises(ValueError, match=f"AttackConfig.{field}"):
    _config(**change)


def test_config_defaults_and_types():
  assert _config(random_start=None).random_start is True
  fgsm = AttackConfig(method="fgsm", norm="l2", epsilon=1, bounds=[0, 255], steps=0)
  assert fgsm.random_start is False and fgsm.num_steps == 1 and fgsm.step_length == 1.0
  assert fgsm.bounds == (0.0, 255.0) and hash(fgsm) == hash(
      AttackConfig(method="fgsm", norm="l2", epsilon=1.0, bounds=(0, 255), steps=0))
  with pytest.raises(TypeError, match="AttackConfig.steps"):
    _config(steps=2.5)
  with pytest.raises(TypeError, match="AttackConfig.eot_draws"):
    _config(eot_draws=True)
