"""Monte Carlo evaluation of a noisy model (DESIGN.md, "Monte Carlo evaluation").

`mc_accuracy` computes accuracy[snr, draw] for S SNRs x D independent noise draws over a whole
dataset in one compiled computation:

    scan over batches ( scan over chunks of draws ( vmap over SNRs ( vmap over draws ( model ))))

Chunking bounds memory to S x chunk x batch activations. The draws of a chunk are sharded over the
given ('data',) mesh. Voting accuracy for K = 1..D (majority and mean probability) comes from the
same passes via running per-example vote counts.

Keys (common random numbers: curves over SNR differ only by the SNR, not by the luck of the draw):
draw d is one chip, `draw_program_key(key, d)`, for every batch (programming weight noise), and
its per-batch noise is `draw_noise_key(key, d, b)`; both the same for every SNR. A Python loop over
the same keys reproduces the numbers exactly (see the tests and the benchmark).

When nothing but the output noise is random (the caller says so: `static_at_inf=True`), every draw
at SNR = inf is the same noiseless pass: those rows cost one pass per batch instead of D.

This module is numerics only: it knows nothing of experiments or configs.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from freqnoise import rng, sharding
from freqnoise.robust.voting import cumulative_votes

# apply_fn(variables, inputs [B, ...], snr_db, key, program_key, mask [B]) -> logits [B, C]
ApplyFn = Callable[[Any, jax.Array, Any, jax.Array, jax.Array, jax.Array], jax.Array]


def draw_program_key(key: jax.Array, draw) -> jax.Array:
  """Programming-noise key of draw `draw` (one chip): the same for every batch and SNR."""
  return jax.random.fold_in(rng.named_key(key, "program"), draw)


def draw_noise_key(key: jax.Array, draw, batch) -> jax.Array:
  """Per-call noise key of draw `draw` on batch `batch` (the same for every SNR)."""
  return jax.random.fold_in(jax.random.fold_in(rng.named_key(key, "noise"), draw), batch)


@dataclasses.dataclass(frozen=True)
class MCResult:
  """Monte Carlo accuracies (fractions in [0, 1]) for S SNRs (dB) and D draws.

  Attributes:
    snrs_db: [S] evaluation SNRs in dB (inf = noiseless).
    accuracy: [S, D] accuracy of each single noisy pass over the dataset.
    majority: [S, D] accuracy of majority voting over the first K = 1..D passes (column K-1).
    mean_prob: [S, D] accuracy of mean-probability voting over the first K passes.
    num_examples: dataset size.
  """

  snrs_db: np.ndarray
  accuracy: np.ndarray
  majority: np.ndarray
  mean_prob: np.ndarray
  num_examples: int

  @property
  def mean(self) -> np.ndarray:
    return self.accuracy.mean(axis=1)

  @property
  def std(self) -> np.ndarray:
    """[S] standard deviation over draws (ddof=1; 0 with one draw)."""
    d = self.accuracy.shape[1]
    return self.accuracy.std(axis=1, ddof=1) if d > 1 else np.zeros(len(self.snrs_db))

  @property
  def interval95(self) -> tuple[np.ndarray, np.ndarray]:
    """[S] 2.5th and 97.5th percentiles over draws: where 95% of single noisy passes fall."""
    return (np.percentile(self.accuracy, 2.5, axis=1), np.percentile(self.accuracy, 97.5, axis=1))

  @property
  def mean_ci95(self) -> np.ndarray:
    """[S] half-width of the 95% confidence interval of the mean accuracy over D draws.

    Student t with D - 1 degrees of freedom (few draws: the normal 1.96 is ~20% too narrow at
    D = 8); NaN with one draw, where no interval can be estimated.
    """
    d = self.accuracy.shape[1]
    if d < 2:
      return np.full(len(self.snrs_db), np.nan)
    return scipy.stats.t.ppf(0.975, d - 1) * self.std / math.sqrt(d)

  def metrics(self, prefix: str = "mc") -> dict[str, float]:
    """Flat scalars for the metrics writer, e.g. 'mc/snr_0/mean', 'mc/snr_0/ci95'."""
    out = {}
    lo, hi = self.interval95
    ci = self.mean_ci95
    for i, snr in enumerate(self.snrs_db):
      tag = f"{prefix}/snr_{snr_name(snr)}" if prefix else f"snr_{snr_name(snr)}"
      out.update({f"{tag}/mean": float(self.mean[i]), f"{tag}/ci95": float(ci[i]),
                  f"{tag}/std": float(self.std[i]),
                  f"{tag}/p2.5": float(lo[i]), f"{tag}/p97.5": float(hi[i]),
                  f"{tag}/vote_majority": float(self.majority[i, -1]),
                  f"{tag}/vote_mean_prob": float(self.mean_prob[i, -1])})
    return out


def snr_name(snr: float) -> str:
  """'inf', '0', '-5', '2.5': how an SNR appears in metric names."""
  return "inf" if math.isinf(snr) else f"{snr:g}"


def result_to_json(result: MCResult) -> dict:
  """Plain-JSON form of an MCResult (inf written as the string 'inf')."""
  return {"snrs_db": ["inf" if math.isinf(s) else float(s) for s in result.snrs_db],
          "accuracy": result.accuracy.tolist(), "majority": result.majority.tolist(),
          "mean_prob": result.mean_prob.tolist(), "num_examples": result.num_examples}


def result_from_json(data: dict) -> MCResult:
  return MCResult(snrs_db=np.array([float(s) for s in data["snrs_db"]]),
                  accuracy=np.asarray(data["accuracy"]), majority=np.asarray(data["majority"]),
                  mean_prob=np.asarray(data["mean_prob"]), num_examples=int(data["num_examples"]))


def _check_count(name: str, value, minimum: int = 1) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    if isinstance(value, float) and math.isnan(value):
      raise ValueError(f"{name} is NaN; it must be an integer >= {minimum}")
    raise TypeError(f"{name} must be an integer >= {minimum}, got {type(value).__name__} {value!r}")
  if value < minimum:
    raise ValueError(f"{name} must be >= {minimum}, got {value}")
  return int(value)


def _check_snrs(snrs_db) -> np.ndarray:
  values = list(np.atleast_1d(np.asarray(snrs_db, dtype=object)))
  if not values:
    raise ValueError("snrs_db is empty; give at least one SNR in dB")
  for v in values:
    if isinstance(v, (str, bytes, bool)) or not isinstance(v, (int, float, np.number)):
      raise TypeError(f"every SNR must be a number in dB, got {type(v).__name__} {v!r}")
    if math.isnan(v) or v == -math.inf:
      raise ValueError(f"SNR {v} dB is not allowed (use a finite value or +inf)")
  return np.asarray(values, np.float32)


def _batched(images: np.ndarray, labels: np.ndarray, batch_size: int):
  """Pads to whole batches: images [nb, B, ...], labels [nb, B] with -1 marking padding."""
  n = len(labels)
  nb = -(-n // batch_size)
  pad = nb * batch_size - n
  images = np.concatenate([images, np.zeros((pad,) + images.shape[1:], images.dtype)])
  labels = np.concatenate([np.asarray(labels, np.int32), -np.ones((pad,), np.int32)])
  return (images.reshape((nb, batch_size) + images.shape[1:]), labels.reshape(nb, batch_size))


@functools.partial(jax.jit, static_argnames=("apply_fn", "num_chunks", "chunk", "mesh",
                                             "with_static"))
def _mc_correct_counts(apply_fn, variables, images, labels, snrs, key, *, num_chunks, chunk, mesh,
                       with_static):
  """Correct-prediction counts summed over batches: [3, S, D] (single pass, majority, mean_prob)
  for the SNRs `snrs` (S may be 0), and [3, D] for one static noiseless row when `with_static`."""
  draws = jnp.arange(num_chunks * chunk, dtype=jnp.int32).reshape(num_chunks, chunk)
  num_snrs = snrs.shape[0]
  program_root, noise_root = rng.named_key(key, "program"), rng.named_key(key, "noise")
  draw_spec = None if mesh is None else NamedSharding(mesh, PartitionSpec("data"))

  def forward(x, snr, k, pk, mask):
    return apply_fn(variables, x, snr, k, pk, mask)

  per_draw = jax.vmap(forward, in_axes=(None, None, 0, 0, None))   # over draws
  per_snr_draw = jax.vmap(per_draw, in_axes=(None, 0, None, None, None))  # over SNRs

  def vote_hits(logits_of, y, valid, rows):
    """Hits [3, rows, D] of the chunked passes `logits_of(draw ids) -> [rows, chunk, B, C]`."""

    def chunk_step(votes, ids):
      counts, prob_sums, seen = votes
      logits = logits_of(ids)
      single = jnp.argmax(logits, -1)
      majority, mean_prob, counts, prob_sums = cumulative_votes(logits, counts, prob_sums, seen)
      hit = lambda pred: jnp.sum((pred == y) & valid, axis=-1, dtype=jnp.int32)  # [rows, chunk]
      return (counts, prob_sums, seen + chunk), jnp.stack([hit(single), hit(majority),
                                                           hit(mean_prob)])

    num_classes = jax.eval_shape(logits_of, draws[0]).shape[-1]
    start = jnp.zeros((rows, y.shape[0], num_classes), jnp.float32)
    _, hits = jax.lax.scan(chunk_step, (start, start, jnp.float32(0)), draws)
    return jnp.moveaxis(hits, 0, 2).reshape(3, rows, num_chunks * chunk)

  def batch_step(totals, batch):
    x, y, b = batch
    valid = y >= 0
    mask = valid.astype(jnp.float32)
    noisy_totals, static_totals = totals

    if num_snrs:
      def noisy_logits(ids):
        draw_root = jax.vmap(lambda d: jax.random.fold_in(noise_root, d))(ids)
        noise_keys = jax.vmap(lambda k: jax.random.fold_in(k, b))(draw_root)
        program_keys = jax.vmap(lambda d: jax.random.fold_in(program_root, d))(ids)
        if draw_spec is not None:  # shard the draws; variables and data are replicated
          noise_keys = jax.lax.with_sharding_constraint(noise_keys, draw_spec)
          program_keys = jax.lax.with_sharding_constraint(program_keys, draw_spec)
        return per_snr_draw(x, snrs, noise_keys, program_keys, mask)  # [S, chunk, B, C]

      noisy_totals = noisy_totals + vote_hits(noisy_logits, y, valid, num_snrs)

    if with_static:
      # Python inf: the model sees a statically noiseless config (no noise is even drawn). The
      # keys are draw 0's; nothing random uses them.
      logits = forward(x, math.inf, jax.random.fold_in(jax.random.fold_in(noise_root, 0), b),
                       jax.random.fold_in(program_root, 0), mask)
      same = lambda ids: jnp.broadcast_to(logits, (1, chunk) + logits.shape)
      static_totals = static_totals + vote_hits(same, y, valid, 1)[:, 0]
    return (noisy_totals, static_totals), None

  totals = (jnp.zeros((3, num_snrs, num_chunks * chunk), jnp.int32),
            jnp.zeros((3, num_chunks * chunk), jnp.int32))
  batch_ids = jnp.arange(images.shape[0], dtype=jnp.int32)
  totals, _ = jax.lax.scan(batch_step, totals, (images, labels, batch_ids))
  if mesh is not None:  # gathered once, here: every process (of a multi-host run) holds them all
    totals = jax.lax.with_sharding_constraint(totals, NamedSharding(mesh, PartitionSpec()))
  return totals


def mc_accuracy(apply_fn: ApplyFn, variables: Any, images: np.ndarray, labels: np.ndarray, *,
                snrs_db, num_draws: int, key: jax.Array, batch_size: int = 1000,
                draws_per_chunk: int | None = None, mesh: Mesh | None = None,
                static_at_inf: bool = False) -> MCResult:
  """Accuracy of `apply_fn` for every SNR in `snrs_db` and `num_draws` noise draws.

  Args:
    apply_fn: `apply_fn(variables, inputs [B, ...], snr_db, key, program_key, mask [B]) -> logits
      [B, C]`, pure and jittable. `snr_db` is a traced float32 scalar (build the model's noise from
      it), or the Python float inf for the static row (see `static_at_inf`); `key` feeds the
      per-call noise, `program_key` the programming weight noise (one chip: the same for every
      batch of a draw); `mask` is 1 for real rows, 0 for the padding of the last batch. Must be
      hashable (a module-level function, a frozen dataclass, a functools.partial of one), so
      repeated calls reuse the compiled computation.
    variables: pytree passed to `apply_fn` unchanged (params, batch_stats, input statistics...).
    images: [N, ...] inputs (numpy); labels: [N] int class labels.
    snrs_db: S evaluation SNRs in dB; +inf = no output noise.
    num_draws: D >= 1 independent noise draws per SNR.
    key: root PRNG key of the draws (see the module docstring).
    batch_size: examples per batch (the last batch is padded and masked).
    draws_per_chunk: draws evaluated at once (memory ~ S x chunk x batch activations); must
      divide num_draws. Default: all draws at once.
    mesh: the ('data',) mesh to shard draws over: its size must divide the chunk. Default: all
      devices, sharding draws only when the device count divides the chunk.
    static_at_inf: the caller's promise that at SNR = inf the model is deterministic (no weight
      noise, nothing else random): the inf rows are then computed once and repeated for every
      draw, bit-identical to computing them D times.
  """
  num_draws = _check_count("num_draws", num_draws)
  batch_size = _check_count("batch_size", batch_size)
  chunk = num_draws if draws_per_chunk is None else _check_count("draws_per_chunk", draws_per_chunk)
  if num_draws % chunk:
    raise ValueError(f"draws_per_chunk={chunk} must divide num_draws={num_draws}")
  snrs = _check_snrs(snrs_db)
  images, labels = np.asarray(images), np.asarray(labels)
  if labels.ndim != 1 or len(labels) != len(images) or len(labels) == 0:
    raise ValueError(f"need labels [N] matching images [N, ...], got {labels.shape} and "
                     f"{images.shape}")
  if mesh is not None and chunk % mesh.size:
    raise ValueError(f"draws_per_chunk={chunk} must be a multiple of the mesh size {mesh.size}")
  if mesh is None:
    mesh = Mesh(np.asarray(jax.devices()), ("data",))
  # Draws are sharded only when the devices divide them; everything else is replicated.
  draw_mesh = mesh if mesh.size > 1 and chunk % mesh.size == 0 else None
  static = np.isposinf(snrs) if static_at_inf else np.zeros(len(snrs), bool)
  batched_images, batched_labels = _batched(images, labels, batch_size)
  variables, batched_images, batched_labels, snrs_dev, key = sharding.put_replicated(
      (variables, batched_images, batched_labels, snrs[~static], key), mesh)
  noisy, fixed = _mc_correct_counts(apply_fn, variables, batched_images, batched_labels, snrs_dev,
                                    key, num_chunks=num_draws // chunk, chunk=chunk,
                                    mesh=draw_mesh, with_static=bool(static.any()))
  noisy, fixed = jax.device_get((noisy, fixed))
  counts = np.zeros((3, len(snrs), num_draws), np.int64)
  counts[:, ~static] = noisy
  counts[:, static] = fixed[:, None, :]
  acc = counts.astype(np.float64) / len(labels)
  return MCResult(snrs_db=snrs.astype(np.float64), accuracy=acc[0], majority=acc[1],
                  mean_prob=acc[2], num_examples=len(labels))
