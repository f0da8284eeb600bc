"""Voting on a fake model whose noisy passes are a known table: hand-computed accuracies, ties."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from freqnoise.robust import draw_noise_key, draw_program_key, mc_accuracy, vote_predictions

# PROBS[d, n] = class probabilities of pass d on example n (3 passes, 5 examples, 3 classes).
PROBS = np.array([
    # ex0 (label 0)    ex1 (label 2)    ex2 (label 1)       ex3 (label 0)     ex4 (label 1)
    [[.6, .3, .1], [.2, .3, .5], [.4, .35, .25], [.5, .1, .4], [.1, .5, .4]],      # pass 0
    [[.1, .8, .1], [.5, .1, .4], [.1, .6, .3], [.1, .1, .8], [.05, .45, .5]],      # pass 1
    [[.5, .4, .1], [.1, .2, .7], [.45, .3, .25], [.46, .1, .44], [.1, .1, .8]],    # pass 2
], np.float32)
LABELS = np.array([0, 2, 1, 0, 1], np.int32)
# By hand. Single passes predict [0,2,0,0,1], [1,0,1,2,2], [0,2,0,0,2].
SINGLE = [0.8, 0.2, 0.6]
# K=2: argmax counts tie on every example; mean probabilities decide: [1, 2, 1, 2, 1].
# K=3: majority [0, 2, 0, 0, 2] (counts decide); mean_prob [1, 2, 1, 2, 2].
MAJORITY = [0.8, 0.6, 0.6]
MEAN_PROB = [0.8, 0.6, 0.4]


def test_vote_predictions_by_hand():
  logits = jnp.log(PROBS)
  assert np.array_equal(vote_predictions(logits[:2], "majority"), [1, 2, 1, 2, 1])
  assert np.array_equal(vote_predictions(logits[:2], "mean_prob"), [1, 2, 1, 2, 1])
  assert np.array_equal(vote_predictions(logits, "majority"), [0, 2, 0, 0, 2])
  assert np.array_equal(vote_predictions(logits, "mean_prob"), [1, 2, 1, 2, 2])
  with pytest.raises(ValueError, match="unknown voting method"):
    vote_predictions(logits, "median")
  with pytest.raises(ValueError, match=r"\[K, N, C\]"):
    vote_predictions(logits[0], "majority")


def _fake_apply(variables, x, snr_db, key, program_key, mask):
  """Looks the draw up from its noise key and, independently, from its programming key (they must
  agree); returns the table's logits for the examples `x` (indices)."""
  match = jnp.all(jax.random.key_data(key) == variables["keys"], axis=-1)
  draw = jnp.argmax(match) // variables["num_batches"].shape[0]
  chip = jnp.argmax(jnp.all(jax.random.key_data(program_key) == variables["chips"], axis=-1))
  return jnp.where(chip == draw, variables["logits"][draw][x], jnp.nan)


@pytest.mark.parametrize("batch_size,draws_per_chunk", [(5, None), (2, 1), (3, 3)])
def test_mc_accuracy_voting_matches_hand_computation(batch_size, draws_per_chunk):
  key = jax.random.key(42)
  num_batches = -(-5 // batch_size)
  keys = jnp.stack([jax.random.key_data(draw_noise_key(key, d, b)) for d in range(3)
                    for b in range(num_batches)])
  chips = jnp.stack([jax.random.key_data(draw_program_key(key, d)) for d in range(3)])
  variables = {"keys": keys, "chips": chips, "logits": jnp.log(PROBS),
               "num_batches": jnp.zeros(num_batches)}
  result = mc_accuracy(_fake_apply, variables, np.arange(5), LABELS, snrs_db=[0.0, np.inf],
                       num_draws=3, key=key, batch_size=batch_size,
                       draws_per_chunk=draws_per_chunk)
  for s in range(2):
    np.testing.assert_allclose(result.accuracy[s], SINGLE, atol=1e-12)
    np.testing.assert_allclose(result.majority[s], MAJORITY, atol=1e-12)
    np.testing.assert_allclose(result.mean_prob[s], MEAN_PROB, atol=1e-12)
  np.testing.assert_allclose(result.mean, [np.mean(SINGLE)] * 2)
  np.testing.assert_allclose(result.std, [np.std(SINGLE, ddof=1)] * 2)
  assert result.metrics()["mc/snr_inf/vote_mean_prob"] == pytest.approx(0.4)
