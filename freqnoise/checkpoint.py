"""Checkpoints: an orbax `CheckpointManager` in `workdir/checkpoints`, resumed from the latest step.

A checkpoint that cannot be restored (corrupt files, or one written by a different model or optimizer)
raises `CheckpointError` naming the folder; it is never overwritten silently, since saving only
happens after a successful restore or into an empty folder.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A checkpoint exists but cannot be used for this run."""


def _describe(tree: Any) -> dict[str, tuple]:
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(p): (tuple(x.shape), str(x.dtype)) for p, x in flat}


class Checkpointer:
  """Saves every `every` steps (and when forced), keeps the last `keep`, restores the latest."""

  def __init__(self, workdir: str, *, every: int, keep: int = 3):
    if every <= 0 or keep <= 0:
      raise ValueError(f"checkpoint_every ({every}) and keep_checkpoints ({keep}) must be positive")
    self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
    self.every = every
    self._manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def restore(self, target: Any) -> Any:
    """Restores the latest checkpoint into the structure, shapes, dtypes and shardings of `target`."""
    step = self.latest_step()
    if step is None:
      return target
    where = os.path.join(self.directory, str(step))
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    try:
      restored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # orbax raises many types for unreadable or mismatched data
      raise CheckpointError(
          f"checkpoint {where} cannot be restored into this run's state ({type(e).__name__}: {e}). "
          "It is corrupt or was written by another model/optimizer config; move it away or use "
          "another --workdir. Nothing was overwritten.") from e
    want, got = _describe(target), _describe(restored)
    if want != got:
      diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))[:5]
      raise CheckpointError(
          f"checkpoint {where} does not match this run's model/optimizer (differs at {diff}); "
          "use another --workdir or the config that wrote it. Nothing was overwritten.")
    return restored

  def due(self, step: int, *, force: bool = False) -> bool:
    """Whether `maybe_save(step, ..., force=force)` would save (the trainer checks state first)."""
    return (force or step % self.every == 0) and step not in self._manager.all_steps()

  def maybe_save(self, step: int, state: Any, *, force: bool = False) -> bool:
    """Saves at multiples of `every` or when forced; returns whether it saved."""
    if not self.due(step, force=force):
      return False
    self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
    return True

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
