"""PGD adversarial training through the one trainer (`config.adversarial`); attack fields and
stored transfer sets checked before any work."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from freqnoise import adversarial
from freqnoise.experiment import Experiment
from freqnoise.losses import cross_entropy
from freqnoise.metrics import read_metrics
from freqnoise.train import train_and_evaluate
from tests.test_train import tiny

ADV = {"adversarial.epsilon": 0.1, "adversarial.steps": 3, "adversarial.step_size": 0.05,
       "adversarial.fraction": 0.5}


@pytest.mark.parametrize("field,value,message", [
    ("adversarial.fraction", 0.0, r"config.adversarial.fraction must be in \(0, 1\], got 0.0"),
    # issue 25: ε is a fraction of the range (8 meant 8/255), and errors quote the typed value
    ("adversarial.epsilon", -0.1, r"^config\.adversarial\.epsilon=-0\.1 must be in \[0, 1\]: a "
     r"fraction of the pixel range \(MNIST's 0\.3, CIFAR-10's 8/255 = 0\.0314\), scaled by "
     r"pixel_scale=255\.0$"),
    ("adversarial.epsilon", 8.0, r"^config\.adversarial\.epsilon=8\.0 must be in \[0, 1\]"),
    ("adversarial.step_size", 2.0, r"^config\.adversarial\.step_size=2\.0 must be in \(0, 1\]"),
    ("adversarial.step_size", 0.0, r"^config\.adversarial\.step_size=0\.0 must be in \(0, 1\]"),
    ("adversarial.norm", "l1", r"config.adversarial: AttackConfig.norm must be one of"),
    ("adversarial.steps", 0, r"config.adversarial: AttackConfig.steps must be >= 1"),
    ("adversarial.pixel_scale", 0.0, r"config.adversarial.pixel_scale must be a positive number"),
])
def test_bad_adversarial_fields_are_named_before_anything_runs(tmp_path, field, value, message):
  with pytest.raises(ValueError, match=message):
    train_and_evaluate(tiny(**{**ADV, field: value}), str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_off_by_default_and_on_with_a_positive_epsilon():
  assert adversarial.training_settings(tiny()) is None
  on = adversarial.training_settings(tiny(**ADV))
  assert on["epsilon"] == 0.1 and on["steps"] == 3 and on["method"] == "pgd"
  assert adversarial.adversarial_rows(32, 0.5) == 16 and adversarial.adversarial_rows(3, 0.1) == 1


def test_perturbed_rows_stay_in_the_ball_and_raise_the_loss_the_rest_are_untouched(tmp_path):
  experiment = Experiment(tiny(), str(tmp_path))
  state = experiment.initial_state()
  x = jnp.asarray(experiment.splits.test.arrays["image"][:32])
  y = jnp.asarray(experiment.splits.test.arrays["label"][:32])
  settings = adversarial.training_settings(tiny(**ADV))
  variables = experiment.variables(state)
  out = adversarial.perturb_batch(experiment, variables, x, y, None, jax.random.PRNGKey(3),
                                  settings)
  x = np.asarray(x, np.float32)
  out = np.asarray(out)
  np.testing.assert_array_equal(out[16:], x[16:])
  delta = out[:16] - x[:16]
  assert np.abs(delta).max() <= 0.1 * 255 + 1e-4 and np.abs(delta).max() > 1.0
  assert out.min() >= 0 and out.max() <= 255
  loss = lambda inputs: cross_entropy(experiment.predict(variables, jnp.asarray(inputs),
                                                         noise=None, key=jax.random.PRNGKey(0)),
                                      y[:16])[0]
  assert float(loss(out[:16])) > float(loss(x[:16]))


def test_adversarial_training_differs_from_clean_and_resumes_bitwise(tmp_path):
  straight = train_and_evaluate(tiny(**ADV), str(tmp_path / "a"))
  train_and_evaluate(tiny(**ADV), str(tmp_path / "b"), stop_after=10)
  resumed = train_and_evaluate(tiny(**ADV), str(tmp_path / "b"))
  assert resumed["test_loss"] == straight["test_loss"]
  clean = train_and_evaluate(tiny(), str(tmp_path / "c"))
  losses = lambda d: [r["loss"] for r in read_metrics(str(tmp_path / d)) if r["split"] == "train"]
  assert losses("a") == losses("b")
  assert losses("a")[-1] > losses("c")[-1]  # the mixed batch is harder than the clean one
  assert straight["test_loss"] != clean["test_loss"]


def test_an_evaluator_block_names_the_typed_epsilon_and_fgsm_ignores_step_size():
  import ml_collections
  from freqnoise.evaluators import registry
  config = tiny()
  with config.unlocked():
    config.evals.transfer = ml_collections.ConfigDict({"type": "craft", "epsilon": 8})
  with pytest.raises(ValueError, match=r"^config\.evals\.transfer \(type craft\): epsilon=8 must "
                                       r"be in \[0, 1\]: a fraction of the pixel range"):
    registry.check_config(config)
  block = {**adversarial.DEFAULTS, "method": "fgsm", "epsilon": 1.0, "step_size": 5.0}
  assert adversarial.attack_config(block).epsilon == 255.0  # ε = 1: the whole range, allowed


@pytest.mark.parametrize("method,start", [("fgsm", False), ("pgd", True)])
def test_the_method_decides_the_random_start_from_a_config_or_an_evaluator_block(method, start):
  # Issue 24 #2: DEFAULTS used to say random_start=True for every method, so a config or
  # evaluator block with method='fgsm' crafted a weaker, randomly started FGSM.
  block = {**adversarial.DEFAULTS, "method": method, "epsilon": 0.1}
  assert adversarial.attack_config(block).random_start is start
  import ml_collections
  from freqnoise.evaluators import registry
  config = tiny()
  with config.unlocked():
    config.evals.transfer = ml_collections.ConfigDict(
        {"type": "craft", "method": method, "epsilon": 0.1})
  _, settings = registry.settings(config, "transfer")
  assert adversarial.attack_config(settings).random_start is start
  on = adversarial.training_settings(tiny(**ADV, **{"adversarial.method": method}))
  assert adversarial.attack_config(on).random_start is start


def test_fgsm_from_a_block_is_goodfellows_one_signed_step():
  # A linear 10-class model: FGSM from the clean image is x + ε·sign(∇x loss), clipped to the
  # range — no random start (which would weaken it: the review measured 0.016 vs 0.004 accuracy).
  w = jax.random.normal(jax.random.PRNGKey(0), (16, 10))
  x = jax.random.uniform(jax.random.PRNGKey(1), (8, 16)) * 255.0
  y = jnp.arange(8) % 10
  config = adversarial.attack_config({**adversarial.DEFAULTS, "method": "fgsm", "epsilon": 0.1})
  logits_fn = lambda inputs, key: (inputs / 255.0) @ w
  from freqnoise.robust.attacks import attack
  out = attack(logits_fn, x, y, config, jax.random.PRNGKey(2))
  grad = jax.grad(lambda v: cross_entropy(logits_fn(v, None), y)[0])(x)  # summed loss
  expected = jnp.clip(x + 0.1 * 255.0 * jnp.sign(grad), 0.0, 255.0)
  np.testing.assert_allclose(np.asarray(out), np.asarray(expected), rtol=0, atol=1e-3)



def test_a_bits_schedule_stage_trains_on_adversarial_examples_of_the_stage_model(tmp_path,
                                                                                 monkeypatch):
  # Issue 24 #12: in a stage of config.quant.bits_schedule the step trains the stage's model (2-bit
  # weights here), but crafted its adversarial examples against the configured one (8 bits).
  from freqnoise import rng
  from freqnoise.robust.attacks import attack
  from freqnoise.train import make_train_step
  config = tiny(num_devices=1, num_steps=6, **{
      **ADV, "adversarial.method": "fgsm", "model.hidden": (32,), "quant.weight_bits": 8,
      "quant.bits_schedule": "2:3"})
  experiment = Experiment(config, str(tmp_path))
  state = experiment.initial_state()
  crafted = []

  def recorded(*args, **kwargs):  # the attack inside the jitted step, its result copied out
    x_adv = attack(*args, **kwargs)
    jax.debug.callback(lambda v: crafted.append(np.asarray(v)), x_adv)
    return x_adv

  monkeypatch.setattr(adversarial, "attack", recorded)
  batch = {k: jnp.asarray(experiment.splits.train.arrays[k][:32]) for k in ("image", "label")}
  train_key = experiment.key("train")
  jax.block_until_ready(jax.jit(make_train_step(experiment))(state, batch, experiment.stats_device,
                                                             train_key))
  assert len(crafted) == 1 and crafted[0].shape == (16, 8, 8, 1)  # step 0: in the 2-bit stage
  variables = experiment.variables(state)
  key = rng.named_key(jax.random.fold_in(train_key, 0), "attack")  # the step's 'attack' key
  settings = adversarial.attack_config(adversarial.training_settings(config))

  def against(x, y):  # the same attack on the 2-bit stage model and on the configured model
    return [attack(lambda inputs, k: experiment.forward(
        variables, inputs, train=False, noise=None, rngs=rng.stream_keys(k), model=model),
        x, y, settings, key) for model in (experiment.stage_models[0], None)]

  stage, final = map(np.asarray, jax.jit(against)(batch["image"][:16].astype(jnp.float32),
                                                  batch["label"][:16]))
  np.testing.assert_array_equal(crafted[0], stage)
  assert np.mean(crafted[0] != final) > 0.2  # (0.34: the 8-bit model's gradient signs differ)


def test_adversarial_training_refuses_jpeg_coefficients_before_any_work(tmp_path, monkeypatch):
  # Issue 24 #8: attacks clip to the pixel range [0, pixel_scale]; JPEG coefficients are no pixels.
  pytest.importorskip("jpeglib", reason="optional package jpeglib not installed")
  from tests.freq.test_jpeg_training_input import tiny_config
  from tests.test_train import data_must_not_be_read
  monkeypatch.setattr("freqnoise.experiment.load_splits", data_must_not_be_read)
  config = tiny_config(str(tmp_path))  # (otherwise a valid coefficient run)
  config.update_from_flattened_dict(ADV)
  with pytest.raises(ValueError, match=r"^config\.adversarial \(epsilon=0\.1\) perturbs pixels and "
                     r"clips them to \[0, pixel_scale\], but config\.data\.jpeg_coefficients=True"):
    train_and_evaluate(config, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()
  config.adversarial.epsilon = 0.0  # off: nothing to refuse
  assert adversarial.training_settings(config) is None


def _with_set(path, **data):
  """The tiny config reading the stored set `path` in a black-box evaluator, with data fields."""
  import ml_collections
  config = tiny(**{f"data.{k}": v for k, v in data.items()})
  with config.unlocked():
    config.evals.blackbox = ml_collections.ConfigDict({"type": "adversarial", "source": str(path),
                                                       "snrs_db": (0.0,)})
  return config


def _save(path, n=4, shape=(8, 8, 1), index=None, **provenance):
  adversarial.save_set(str(path), np.zeros((n, *shape), np.float32), np.zeros(n, np.int32),
                       np.arange(n) if index is None else np.asarray(index), provenance)


def test_a_set_crafted_on_other_data_is_refused_before_training(tmp_path):
  # Issue 25: this was found by `_matching_clean` after the target trained (~22 min).
  path = tmp_path / "sub" / "pgd.npz"
  path.parent.mkdir()
  _save(path, data="tfds:cifar10", workdir="/runs/sub", split="test", seed=1)
  with pytest.raises(ValueError, match=re.escape(
      f"config.evals.blackbox (type adversarial): {path} was crafted on data 'tfds:cifar10' (by "
      "/runs/sub), but this run reads config.data.source='digits': craft the set on a substitute "
      "trained on this run's data")):
    train_and_evaluate(_with_set(path), str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()
  from freqnoise.evaluators import registry
  _save(path, data="idx:/elsewhere/mnist", split="test", seed=1)
  registry.check_config(_with_set(path, source="idx:../shared/data/mnist"))  # the same data set
  _save(path, data="digits", split="test", seed=1)
  registry.check_config(_with_set(path))


def test_a_set_of_other_shapes_or_rows_is_refused_before_training(tmp_path):
  from freqnoise.evaluators import registry
  path = tmp_path / "pgd.npz"
  _save(path, data="digits", split="test", seed=1)
  with pytest.raises(ValueError, match=re.escape(
      f"{path}: examples of shape (8, 8, 1), but this run resizes its images to 16x16 "
      "(config.data.image_size)")):
    registry.check_config(_with_set(path, image_size=16))
  _save(path, index=[0, 3, 20, 31], data="digits", split="test", seed=0)
  with pytest.raises(ValueError, match=re.escape(
      f"{path} indexes examples of the test split up to 31, drawn under seed 0, but this run keeps "
      "a sample of 30 (config.data.limit_test) drawn under seed 0")):
    registry.check_config(_with_set(path, limit_test=30))
  registry.check_config(_with_set(path, limit_test=32))
  _save(path, index=[0, 3, 20, 31], data="digits", split="test", seed=1)
  with pytest.raises(ValueError, match="drawn under seed 1, but this run keeps a sample of 32"):
    registry.check_config(_with_set(path, limit_test=32))
  adversarial.save_set(str(path), np.zeros((4, 8, 8, 1)), np.zeros(3), np.arange(4), {})
  with pytest.raises(ValueError, match=re.escape(
      f"{path}: x_adv (4, 8, 8, 1), label (3,) and index (4,) do not hold the same N examples")):
    registry.check_config(_with_set(path))
  path.write_bytes(b"not a zip")
  with pytest.raises(ValueError, match=re.escape(f"{path} is not an adversarial set (npz) that "
                                                 "can be read: File is not a zip file")):
    registry.check_config(_with_set(path))
