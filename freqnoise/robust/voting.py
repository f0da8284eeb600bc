"""Voting over K noisy forward passes (DESIGN.md, "Voting").

* `majority`: the class predicted by most passes; ties broken by the higher mean probability.
* `mean_prob`: argmax of the mean softmax probability over the passes.

`cumulative_votes` gives both for every K = 1..D from one set of D passes, which is how
`mc_accuracy` reports "accuracy vs K" with no extra forward passes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

METHODS = ("majority", "mean_prob")


def _majority_from(counts: jax.Array, mean_probs: jax.Array) -> jax.Array:
  # Counts are integers and 0 <= mean prob <= 1, so adding half the mean prob can only reorder
  # classes whose counts are equal: exactly "ties broken by mean probability".
  return jnp.argmax(counts + 0.5 * mean_probs, axis=-1)


def vote_predictions(logits: jax.Array, method: str) -> jax.Array:
  """Voted class of each example from K passes.

  Args:
    logits: [K, N, C] logits of K noisy passes over N examples.
    method: 'majority' or 'mean_prob'.
  Returns:
    [N] int32 predicted classes.
  """
  if method not in METHODS:
    raise ValueError(f"unknown voting method {method!r}; expected one of {', '.join(METHODS)}")
  if logits.ndim != 3:
    raise ValueError(f"logits must be [K, N, C], got shape {logits.shape}")
  mean_probs = jnp.mean(jax.nn.softmax(logits.astype(jnp.float32), axis=-1), axis=0)
  if method == "mean_prob":
    return jnp.argmax(mean_probs, axis=-1)
  counts = jnp.sum(jax.nn.one_hot(jnp.argmax(logits, -1), logits.shape[-1]), axis=0)
  return _majority_from(counts, mean_probs)


def cumulative_votes(logits: jax.Array, counts: jax.Array, prob_sums: jax.Array,
                     votes_before: jax.Array):
  """Voted predictions after each of D more passes, continuing from earlier passes.

  Args:
    logits: [..., D, N, C] logits of D new passes (draw axis third from the end).
    counts: [..., N, C] argmax counts of the earlier passes (zeros at the start).
    prob_sums: [..., N, C] summed softmax probabilities of the earlier passes.
    votes_before: scalar number of earlier passes.
  Returns:
    (majority [..., D, N], mean_prob [..., D, N], new counts [..., N, C], new prob_sums [..., N, C])
    where index d uses passes 1..votes_before+d+1.
  """
  num_classes = logits.shape[-1]
  probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  hits = jax.nn.one_hot(jnp.argmax(logits, -1), num_classes, dtype=jnp.float32)
  cum_counts = jnp.expand_dims(counts, -3) + jnp.cumsum(hits, axis=-3)
  cum_probs = jnp.expand_dims(prob_sums, -3) + jnp.cumsum(probs, axis=-3)
  k = votes_before + jnp.arange(1, logits.shape[-3] + 1, dtype=jnp.float32)
  mean_probs = cum_probs / k[:, None, None]
  majority = _majority_from(cum_counts, mean_probs)
  mean_prob = jnp.argmax(mean_probs, axis=-1)
  return majority, mean_prob, cum_counts[..., -1, :, :], cum_probs[..., -1, :, :]
