"""The registry of data sources that packages above `freqnoise.data` define (`config.data.source =
'KIND:ARG'`): `freqnoise.detection.sources` registers `yolo-seg:DIR` and `cocojson:DIR` here, so
the data package dispatches to them (`load_splits`, `check_source`) without importing them.
`freqnoise.experiment` imports the registering modules, so every run sees their sources.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable


@dataclasses.dataclass(frozen=True)
class RegisteredSource:
  kind: str                           # the part of config.data.source before ':'
  form: str                           # how the error messages name it, e.g. 'yolo-seg:DIR'
  load: Callable[[Any], Any]          # load(config.data) -> Splits (limits applied by load_splits)
  check: Callable[[Any], None]        # check(config.data): fields and folders, reading no data


_SOURCES: dict[str, RegisteredSource] = {}


def register_source(kind: str, form: str, load: Callable[[Any], Any],
                    check: Callable[[Any], None]) -> None:
  """Registers the source `kind` (`config.data.source = f'{kind}:ARG'`, ARG required)."""
  if not kind or ":" in kind:
    raise ValueError(f"a source kind is a non-empty name without ':', got {kind!r}")
  if kind in _SOURCES:
    raise ValueError(f"data source kind {kind!r} is registered twice")
  _SOURCES[kind] = RegisteredSource(kind, form, load, check)


def registered_source(kind: str) -> RegisteredSource | None:
  """The source registered as `kind`, or None."""
  return _SOURCES.get(kind)


def registered_forms() -> tuple[str, ...]:
  """The forms of the registered sources, in registration order (for error messages)."""
  return tuple(s.form for s in _SOURCES.values())
