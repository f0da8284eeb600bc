"""Classification losses and counts shared by the train step and the evaluators."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def _broadcast_mask(mask: jax.Array, like: jax.Array) -> jax.Array:
  return jnp.broadcast_to(mask.reshape(mask.shape + (1,) * (like.ndim - mask.ndim)), like.shape)


def cross_entropy(logits: jax.Array, labels: jax.Array, smoothing: float = 0.0,
                  mask: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """Summed (optionally label-smoothed) cross-entropy and example count over any leading dims.

  logits [..., C], labels [...] int, mask [...] or a prefix of it (1 = counts).
  """
  targets = jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)
  if smoothing:
    targets = optax.smooth_labels(targets, smoothing)
  losses = optax.softmax_cross_entropy(logits, targets)
  weights = jnp.ones_like(losses) if mask is None else _broadcast_mask(mask, losses)
  return jnp.sum(losses * weights), jnp.sum(weights)


def correct_count(logits: jax.Array, labels: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Number of argmax hits (masked rows excluded)."""
  hits = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  if mask is not None:
    hits = hits * _broadcast_mask(mask, hits)
  return jnp.sum(hits)


def loss_terms(collections: dict) -> jax.Array:
  """Sum of every scalar a module sowed into the 'losses' collection (e.g. gate sparsity)."""
  leaves = jax.tree.leaves(collections.get("losses", {}))
  return sum((jnp.sum(x) for x in leaves), jnp.zeros((), jnp.float32))
