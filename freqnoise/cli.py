"""What the command lines (freqnoise.main, freqnoise.evaluate, freqnoise.sweep) share: errors a user
must act on as one line, orbax's thread logs of a full disk filtered (reported once, by the
trainer), and the flag reading of a config field ml_collections cannot type (a DCT channel list)."""

from __future__ import annotations

import abc
import ast
import contextlib
import errno
import logging
import os
import sys
from typing import Iterator

import ml_collections
from absl import flags
from ml_collections import config_flags


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


class DctChannels(abc.ABC):
  """The type of `config.input.channels`: a published preset's size (int) or a list of channel
  indices into the 192 (tuple or list of ints). A field of this type can be set either way, in
  Python and on the command line (`--config.input.channels=24`, `='[0,1,8]'`)."""


for _kind in (int, tuple, list):
  DctChannels.register(_kind)


class DctChannelsParser(flags.ArgumentParser):
  """`--config.input.channels=TEXT`: `24` (a preset) or `[0,1,8]` / `(0,1,8)` / `0,1,8` (indices).
  Checked as the DCT transform checks it, so a bad value is a flag error naming it, before any
  work."""

  def parse(self, argument):
    if not isinstance(argument, str):  # the config's own default
      return argument
    try:
      value = ast.literal_eval(argument.strip())
    except (ValueError, SyntaxError):
      value = None
    if isinstance(value, (list, tuple)) and all(
        isinstance(c, int) and not isinstance(c, bool) for c in value):
      value = tuple(value)
    elif not isinstance(value, int) or isinstance(value, bool):
      raise ValueError(f"{argument!r} is neither a preset size (e.g. 24) nor a list of channel "
                       "indices in [0, 192) (e.g. '[0,1,8]')")
    from freqnoise.freq import selection  # the one check of a channel set, as the transform does
    if isinstance(value, int):
      selection.preset_channels(value)
    else:
      selection.check_channels(value)
    return value

  def flag_type(self) -> str:
    return "DCT channels"


config_flags.register_flag_parser_for_type(DctChannels, DctChannelsParser())


def dct_channels_field(value: int | tuple[int, ...]) -> ml_collections.FieldReference:
  """A config field holding `value` (a preset size or channel indices), settable either way."""
  return ml_collections.FieldReference(value, field_type=DctChannels)
