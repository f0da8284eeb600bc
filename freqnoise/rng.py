"""The one RNG convention: a root key per run, named consumers, named streams.

    root = PRNGKey(config.seed)
    consumer_key(root, 'init' | 'train' | 'eval' | '<evaluator name>' | ...)   # independent folds
    train step s:  stream_keys(fold_in(consumer_key(root, 'train'), s))
    eval batch b:  stream_keys(fold_in(consumer_key(root, 'eval'), b)), chip: program_key(...)

A name is folded in through its CRC-32, so every consumer's keys are independent of every other
consumer's keys (the trainer's eval never repeats a Monte Carlo draw) and adding a consumer never
shifts another's numbers. Streams a model may ask for with `make_rng`:

* `params`  initialisation;
* `dropout` dropout masks;
* `noise`   output noise and read (per-product) weight noise: fresh at every product call;
* `program` programming weight noise: one realisation of the weights per model instance (per
  Monte Carlo draw / per eval pass / per training step), the same for every batch and time step;
* `gumbel`  the frequency gate's Gumbel samples;
* `sampling` training-target sampling (Mask R-CNN's anchor and RoI samplers).
"""

from __future__ import annotations

import zlib

import jax

STREAMS = ("params", "dropout", "noise", "program", "gumbel", "sampling")


def named_key(key: jax.Array, name: str) -> jax.Array:
  """`key` folded with the name `name` (stable across runs and versions: CRC-32 of the name)."""
  if not isinstance(name, str) or not name:
    raise ValueError(f"a key name must be a non-empty string, got {name!r}")
  return jax.random.fold_in(key, zlib.crc32(name.encode()) & 0x7FFFFFFF)


def root_key(seed: int) -> jax.Array:
  """The run's root key."""
  if isinstance(seed, bool) or not isinstance(seed, int):
    raise TypeError(f"config.seed must be an integer, got {type(seed).__name__} {seed!r}")
  return jax.random.PRNGKey(seed)


def consumer_key(root: jax.Array, consumer: str) -> jax.Array:
  """The key of one consumer of the run's randomness ('init', 'train', 'eval', an evaluator)."""
  return named_key(root, f"consumer/{consumer}")


def stream_keys(key: jax.Array) -> dict[str, jax.Array]:
  """One independent key per named RNG stream (see the module docstring)."""
  return {name: named_key(key, f"stream/{name}") for name in STREAMS}
