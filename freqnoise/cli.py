"""What both command lines (freqnoise.main, freqnoise.evaluate) share: errors a user must act on
as one line, and orbax's thread logs of a full disk filtered (reported once, by the trainer)."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def clean_exit() -> Iterator[None]:
  """Turns the errors a user must act on — a full disk, a checkpoint that cannot be used — into
  one `error: ...` line on stderr and exit status 1, at once: orbax's asynchronous threads would
  otherwise print pages of shutdown noise after the message (e.g. "RuntimeError: Event loop is
  closed", "ImportError: sys.meta_path is None, Python is likely shutting down"), burying it."""
  from freqnoise.checkpoint import CheckpointError
  from freqnoise.distributed import DistributedInitError
  try:
    yield
  except (OSError, CheckpointError, DistributedInitError) as e:
    if isinstance(e, OSError) and e.errno != errno.ENOSPC:
      raise
    text = e.strerror if isinstance(e, OSError) and e.strerror and len(e.strerror) > 40 else e
    sys.stdout.flush()
    print(f"error: {text}", file=sys.stderr, flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # nothing after the message: a thread may still be printing
    os._exit(1)


class DiskFullNoise(logging.Filter):
  """Drops log records of a full disk (orbax logs one per writer thread): the trainer reports it
  once, in one line."""

  def filter(self, record: logging.LogRecord) -> bool:
    error = record.exc_info[1] if record.exc_info else None
    return not any("No space left on device" in text
                   for text in (record.getMessage(), str(error) if error else ""))
