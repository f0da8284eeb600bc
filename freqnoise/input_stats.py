"""A run's input statistics (what its transform's `fit` returns: per-channel mean and std, the DCT
channels): fitted once on the training split, saved as `input_stats.npz` in the workdir, and on
resume reloaded after checking that they describe this config's input.

Letterboxed images (detection splits, with a `size` field: each image's content height and width)
are fitted on their content only, and the transform puts their padding at 0
(`freqnoise.data.transform_registry`).
"""

from __future__ import annotations

import io
import os

import jax
import numpy as np

from freqnoise.workdir import write_atomically

FILE = "input_stats.npz"
# Saved beside letterboxed statistics: they were fitted on the content only. A detection run's
# file without it was fitted over the zero padding (before that was fixed) and is refused.
CONTENT_MARK = "fitted_on_content"


def fit_inputs(transform, train, input_key: str, seed: int) -> tuple[np.ndarray, dict]:
  """(inputs, fit keyword arguments): the seeded sample of at most `max_fit_examples` training
  inputs that the transform's `fit` draws (`transform_registry.fit_sample`, the same rows), so a
  lazy split decodes only those and in-memory data gives the statistics it always gave (a transform
  without `max_fit_examples` gets the whole split); with their content `size` when the split has
  one."""
  limit = getattr(transform, "max_fit_examples", None)
  sample = train.head(len(train)) if limit is None else train.fit_sample(limit, seed)
  return sample[input_key], ({"size": sample["size"]} if "size" in sample else {})


def check_saved(stats: dict, path: str, transform, train, input_key: str) -> None:
  """Saved statistics must describe this config's input (same fields, channels and width)."""
  # The transform's own fit on two examples is the reference for fields and shapes.
  fresh = transform.fit(train.head(2)[input_key], seed=0)
  problems = []
  if set(fresh) != set(stats):
    problems.append(f"fields {sorted(stats)} (this config: {sorted(fresh)})")
  for k in sorted(set(fresh) & set(stats)):
    if np.shape(fresh[k]) != np.shape(stats[k]):
      problems.append(f"{k} of shape {np.shape(stats[k])} (this config: {np.shape(fresh[k])})")
    elif k == "channels" and not np.array_equal(fresh[k], stats[k]):
      problems.append(f"DCT channels {stats[k].tolist()} (this config: {fresh[k].tolist()})")
  if problems:
    raise ValueError(f"{path} was fitted for another input: it has " + "; ".join(problems)
                     + ". Use another --workdir, or delete the file to refit.")


def load_or_fit(transform, train, input_key: str, seed: int, workdir: str) -> dict[str, np.ndarray]:
  """The statistics saved in `workdir` (checked against this config), else fitted on `train` and
  saved there (by process 0)."""
  path = os.path.join(workdir, FILE)
  letterboxed = "size" in train.head(1)
  if os.path.isfile(path):
    with np.load(path) as z:
      stats = {k: z[k] for k in z.files}
    marked = bool(stats.pop(CONTENT_MARK, False))
    if letterboxed and not marked:
      raise ValueError(f"{path} was fitted over the letterbox padding of this run's images "
                       "(written before statistics were fitted on the image content only): "
                       "delete it to refit, or start a new --workdir")
    check_saved(stats, path, transform, train, input_key)
    return stats
  inputs, content = fit_inputs(transform, train, input_key, seed)
  stats = transform.fit(inputs, seed=seed, **content)
  if jax.process_index() == 0:
    os.makedirs(workdir, exist_ok=True)
    buffer = io.BytesIO()
    np.savez(buffer, **stats, **({CONTENT_MARK: np.asarray(True)} if letterboxed else {}))
    write_atomically(path, buffer.getvalue())
  return stats
