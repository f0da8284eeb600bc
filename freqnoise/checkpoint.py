"""Checkpoints: an orbax `CheckpointManager` in `workdir/checkpoints`, resumed from the latest step.

A checkpoint that cannot be restored (corrupt files, or one written by a different model or optimizer)
raises `CheckpointError` naming the folder; it is never overwritten silently, since saving only
happens after a successful restore or into an empty folder.
"""

from __future__ import annotations

import errno
import os
import shutil
from typing import Any

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
  """A checkpoint exists but cannot be used for this run."""


class DiskFullError(OSError):
  """A checkpoint could not be written for lack of space (errno ENOSPC); its partial folder is
  removed and the earlier checkpoints are intact."""


TMP_SUFFIX = ".orbax-checkpoint-tmp"  # orbax writes a step here, then renames it


def is_disk_full(error: BaseException | None) -> bool:
  """Whether `error` or an exception in its chain is "No space left on device" (orbax wraps the
  OSError of its writer threads in ValueErrors that keep only its text)."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if (isinstance(error, OSError) and error.errno == errno.ENOSPC) or \
        "No space left on device" in str(error):
      return True
    error = error.__cause__ or error.__context__
  return False


def _token(key) -> str:
  """One step of a key path as plain text: a dict key, a sequence index or an attribute name
  (so a restore target's `.opt_state[0].mu` and the saved `['opt_state'][0]['mu']` agree)."""
  for attr in ("key", "idx", "name"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def _layout(tree: Any) -> dict[str, tuple]:
  """{'a/b/c': (shape, dtype)} of every array (or array metadata) leaf of `tree`."""
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {"/".join(_token(k) for k in path): (tuple(x.shape), str(x.dtype))
          for path, x in flat if hasattr(x, "shape")}


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
    self._saving: int | None = None  # the step of the save in flight (orbax saves asynchronously)
    # cleanup_tmp_directories: a step folder left half-written by a killed run is removed.
    self._manager = ocp.CheckpointManager(
        self.directory, options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, cleanup_tmp_directories=True))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def restore(self, target: Any) -> Any:
    """Restores the latest checkpoint into the structure, shapes, dtypes and shardings of `target`."""
    step = self.latest_step()
    if step is None:
      return target
    where = os.path.join(self.directory, str(step))
    self._check_layout(where, target)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    try:
      restored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as e:  # orbax raises many types for unreadable or mismatched data
      first = (str(e).strip().splitlines() or [""])[0].rstrip(":")  # orbax adds pages of tree diff
      raise CheckpointError(
          f"checkpoint {where} cannot be restored into this run's state ({type(e).__name__}: "
          f"{first[:300]}). "
          "It is corrupt or was written by another model/optimizer config; move it away or use "
          "another --workdir. Nothing was overwritten.") from e
    want, got = _describe(target), _describe(restored)
    if want != got:
      diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))[:5]
      raise CheckpointError(
          f"checkpoint {where} does not match this run's model/optimizer (differs at {diff}); "
          "use another --workdir or the config that wrote it. Nothing was overwritten.")
    return restored

  def _check_layout(self, where: str, target: Any) -> None:
    """CheckpointError before any array is read when the saved arrays' names, shapes or dtypes
    are not the target's (orbax would fail half-way through an asynchronous read). Metadata that
    cannot be read is left to the restore itself."""
    try:
      saved = _layout(self.saved_tree())
    except Exception:  # unreadable metadata: the restore reports it
      return
    want = _layout(target)
    if not saved or saved == want:
      return
    diff = sorted(k for k in set(want) | set(saved) if want.get(k) != saved.get(k))
    shown = "; ".join(f"{k}: saved {saved.get(k, 'absent')}, this run {want.get(k, 'absent')}"
                      for k in diff[:3])
    raise CheckpointError(
        f"checkpoint {where} holds another model/optimizer layout than this run's ({len(diff)} "
        f"arrays differ, e.g. {shown}); use the config that wrote it or another --workdir. "
        "Nothing was overwritten.")

  def saved_tree(self) -> Any:
    """The latest checkpoint's tree as saved (nested dicts of array metadata: shapes and dtypes),
    read without its arrays; None when there is none."""
    step = self.latest_step()
    if step is None:
      return None
    # A manager that saved nothing yet does not know the item's handler: name it to read the tree.
    reader = ocp.CheckpointManager(self.directory, item_handlers=ocp.StandardCheckpointHandler())
    try:
      metadata = reader.item_metadata(step)
    finally:
      reader.close()
    return getattr(metadata, "tree", metadata)

  def due(self, step: int, *, force: bool = False) -> bool:
    """Whether `maybe_save(step, ..., force=force)` would save (the trainer checks state first)."""
    return (force or step % self.every == 0) and step not in self._manager.all_steps()

  def maybe_save(self, step: int, state: Any, *, force: bool = False) -> bool:
    """Saves at multiples of `every` or when forced; returns whether it saved."""
    if not self.due(step, force=force):
      return False
    self._finish()  # a failure of the previous (asynchronous) save is reported as that step's
    self._saving = step
    self._check_space(step, state)
    try:
      self._manager.save(step, args=ocp.args.StandardSave(state), force=True)
    except Exception as e:
      self._failed(e)
    return True

  def _finish(self) -> None:
    try:
      self._manager.wait_until_finished()
    except Exception as e:
      self._failed(e)

  def _check_space(self, step: int, state: Any) -> None:
    """DiskFullError before orbax starts when the disk cannot hold the state's bytes (orbax's
    writer threads would fail half-way, each with pages of logs)."""
    need = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state) if hasattr(x, "dtype"))
    free = shutil.disk_usage(self.directory).free
    if free < need:
      self._failed(OSError(errno.ENOSPC, f"No space left on device: {free:,} bytes free, "
                           f"{need:,} needed"))

  def _failed(self, error: Exception) -> None:
    """Removes half-written step folders, then raises DiskFullError (one clear line) for a full
    disk, else re-raises `error`."""
    if os.path.isdir(self.directory):
      for name in os.listdir(self.directory):
        if TMP_SUFFIX in name:
          shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
    if not is_disk_full(error):
      raise error
    steps = [s for s in self._manager.all_steps() if s != self._saving]
    kept = f"the checkpoint of step {max(steps)} is intact" if steps else "no earlier checkpoint"
    raise DiskFullError(
        errno.ENOSPC, f"no space left on device writing checkpoint step {self._saving} in "
        f"{self.directory}; no partial checkpoint folder was left and {kept}. Free space (or use a "
        "--workdir on a larger disk) and rerun the same command to resume") from None

  def close(self) -> None:
    try:
      self._finish()
    finally:
      self._manager.close()
