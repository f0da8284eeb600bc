"""SplitEvaluator: exact loss/accuracy over a split with the padded last batch masked (also out of
per-unit noise power), compiled once, its own keys (never a Monte Carlo draw's), one chip per
pass, and a carried recurrent state threaded through the split from zeros."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from configs.digits_mlp import get_config
from freqnoise import evaluators, rng
from freqnoise.data.pipeline import eval_batches
from freqnoise.experiment import CARRY, Experiment
from freqnoise.robust import draw_noise_key, draw_program_key
from tests.conftest import key_data, spy_experiment, write_tiny_ptb


def _config(**eval_noise):
  c = get_config("tiny")
  c.eval_noise.update(eval_noise)
  return c


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
  experiment = Experiment(_config(), str(tmp_path_factory.mktemp("split")))
  return experiment, evaluators.SplitEvaluator(experiment), experiment.initial_state()


def test_loss_and_accuracy_equal_a_direct_computation_and_compile_once(clean):
  experiment, split_eval, state = clean
  for split in ("test", "train", "test"):
    got = split_eval(state, split=split)
    ds = getattr(experiment.splits, split)
    logits = experiment.predict(experiment.variables(state), jnp.asarray(ds.arrays["image"]),
                                noise=None, key=jax.random.key(0))
    labels = ds.arrays["label"]
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    assert got["loss"] == pytest.approx(float(loss), rel=1e-5)
    assert got["accuracy"] == pytest.approx(float(np.mean(np.argmax(logits, -1) == labels)))
    assert len(ds) % experiment.eval_batch_size  # a padded last batch is part of the test
  assert split_eval.step._cache_size() == 1


def test_padding_rows_are_out_of_the_sums_and_of_per_unit_noise_power(tmp_path):
  experiment = Experiment(_config(snr_db=0.0, power="per_unit"), str(tmp_path))
  split_eval = evaluators.SplitEvaluator(experiment)
  variables = experiment.variables(experiment.initial_state())
  last = list(eval_batches(experiment.splits.test, experiment.eval_batch_size))[-1]
  real = last["mask"] > 0
  assert 0 < real.sum() < len(real)
  rows = real.reshape((-1,) + (1,) * (last["image"].ndim - 1))
  loud = {**last, "image": np.where(rows, last["image"], 100.0 * last["image"] + 50.0)}
  sums = [jax.device_get(split_eval.step(variables, batch, jnp.int32(3))[0])
          for batch in (last, loud)]
  assert sums[0] == sums[1] and sums[0]["count"] == real.sum()
  # Without the mask the padding's power leaks into the noise of the real rows.
  key = split_eval.batch_key(3)
  unmasked = [experiment.predict(variables, batch["image"], noise=experiment.eval_noise, key=key)
              for batch in (last, loud)]
  assert not np.allclose(unmasked[0][real], unmasked[1][real])


def test_eval_keys_are_its_own_and_never_a_monte_carlo_draws(tmp_path):
  """The old trainer's eval key of batch i equalled the Monte Carlo draw_key(eval_key, d=i, b=2):
  the periodic eval and the Monte Carlo draws saw the same noise."""
  config = _config(snr_db=0.0)
  config.evals = ml_collections.ConfigDict({"montecarlo": {
      "type": "montecarlo", "snrs_db": (0.0,), "num_draws": 4, "output": ""}})
  experiment = spy_experiment(config, str(tmp_path))
  state = experiment.initial_state()
  evaluators.SplitEvaluator(experiment)(state)
  eval_seen, experiment.seen = experiment.seen, set()
  evaluators.run(experiment, state, "montecarlo")
  mc_seen = experiment.seen

  eval_key, mc_key = experiment.key("eval"), experiment.key("montecarlo")
  num_batches = -(-len(experiment.splits.test) // experiment.eval_batch_size)
  chip = key_data(rng.named_key(eval_key, "program"))
  assert eval_seen == {(key_data(jax.random.fold_in(eval_key, b)), chip) for b in range(num_batches)}
  assert mc_seen == {(key_data(draw_noise_key(mc_key, d, b)), key_data(draw_program_key(mc_key, d)))
                     for d in range(4) for b in range(num_batches)}
  eval_keys = {k for pair in eval_seen for k in pair}
  mc_keys = {k for pair in mc_seen for k in pair}
  assert not eval_keys & mc_keys


def test_carried_state_runs_through_the_split_in_order_from_zeros(tmp_path):
  from configs import dni_ptb
  write_tiny_ptb(tmp_path)
  config = dni_ptb.get_config("tiny")
  config.data.source = f"ptb:{tmp_path}"
  experiment = Experiment(config, str(tmp_path / "run"))
  state = experiment.initial_state()
  assert CARRY in state.model_state
  junk = jax.tree.map(lambda c: jnp.ones_like(c), state.model_state[CARRY])
  got = evaluators.SplitEvaluator(experiment)(state.replace(model_state={CARRY: junk}))

  variables = experiment.variables(state)
  rows = experiment.eval_batch_size

  def manual(reset_every_batch):
    zero = jax.tree.map(lambda c: jnp.zeros((rows,) + c.shape[1:], c.dtype),
                        state.model_state[CARRY])
    carry, nll, count = zero, 0.0, 0.0
    for batch in eval_batches(experiment.splits.test, rows):
      logits, carry = experiment.predict(variables, batch["tokens"], noise=None,
                                         key=jax.random.key(0), carry=zero if reset_every_batch
                                         else carry)
      losses = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
      nll += float(jnp.sum(losses * batch["mask"][:, None]))
      count += float(batch["mask"].sum()) * losses.shape[1]
    return nll / count

  assert got["loss"] == pytest.approx(manual(False), rel=1e-5)
  assert got["loss"] != pytest.approx(manual(True), rel=1e-5)
  assert got["perplexity"] == pytest.approx(math.exp(got["loss"]))


def test_test_time_augment_averages_the_logits_of_airbenchs_views(tmp_path):
  """'flip_translate': 1/4 each for the image and its mirror, 1/8 each for the mirror pairs of the
  image shifted one pixel down-right and up-left (reflected borders), as airbench's level 2."""
  c = _config()
  c.test_time_augment = "flip_translate"
  experiment = Experiment(c, str(tmp_path))
  state = experiment.initial_state()
  got = evaluators.SplitEvaluator(experiment)(state)
  images, labels = experiment.splits.test.arrays["image"], experiment.splits.test.arrays["label"]
  padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
  down_right, up_left = padded[:, :8, :8], padded[:, 2:, 2:]
  assert np.array_equal(down_right[:, 1:, 1:], images[:, :7, :7])
  logits_of = lambda x: np.asarray(experiment.predict(experiment.variables(state), jnp.asarray(x),
                                                      noise=None, key=jax.random.key(0)))
  logits = sum(w * logits_of(x) for w, x in [
      (0.25, images), (0.25, images[:, :, ::-1]), (0.125, down_right),
      (0.125, down_right[:, :, ::-1]), (0.125, up_left), (0.125, up_left[:, :, ::-1])])
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  assert got["loss"] == pytest.approx(float(loss), rel=1e-5)
  assert got["accuracy"] == pytest.approx(float(np.mean(np.argmax(logits, -1) == labels)))
  plain = evaluators.SplitEvaluator(Experiment(_config(), str(tmp_path / "plain")))(state)
  assert plain["loss"] != pytest.approx(got["loss"], rel=1e-4)
  c.test_time_augment = "mirror"
  with pytest.raises(ValueError, match="config.test_time_augment='mirror' is not one of '', "
                                       "'flip', 'flip_translate'"):
    evaluators.check_config(c)
