"""The reader interface every trace source implements, and the `--traces` registry.

A reader turns one source (a directory of OTLP files, a compacted store, later
Jaeger or Tempo) into event-table frames. ``open_source(spec)`` picks the reader
for a ``--traces`` value::

    reader = open_source("./.wstrace")            # directory or single file
    reader = open_source("jaeger://localhost:16686")   # once a jaeger reader is registered
    result = reader.read(Query(conversation_id="abc"))

New schemes register a factory with ``register_scheme("jaeger", JaegerReader)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

import polars as pl

DEFAULT_DIR = ".wstrace"
ENV_DIR = "WSTRACE_DIR"


class SourceError(Exception):
    """A trace source that cannot be used at all (missing, unknown scheme, unreadable)."""


@dataclass(frozen=True)
class Query:
    """What a caller wants from a source; readers may push any part of it down.

    The selectors combine with *or*; with none of them every span is wanted:

    * ``conversation_id``: spans tagged with that conversation;
    * ``message_ids``: spans tagged with no conversation whose ``ws.message_id`` is
      one of these (an answer started over HTTP names no conversation);
    * ``app_message_ids``: spans whose ``ws.message_id`` or ``ws.app_message_id`` is
      one of these, tagged or not (finding the conversation that holds a message).

    ``since``/``until`` narrow any of them to a time window.
    """

    conversation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    message_ids: tuple[str, ...] = ()
    app_message_ids: tuple[str, ...] = ()

    @property
    def by_message(self) -> bool:
        """Whether the query selects spans by message id (not every reader can)."""
        return bool(self.message_ids or self.app_message_ids)

    def predicate(self) -> pl.Expr | None:
        """The selectors as a filter on the event table; None when every span is wanted."""
        parts: list[pl.Expr] = []
        if self.conversation_id is not None:
            parts.append(pl.col("conversation_id") == self.conversation_id)
        if self.message_ids:
            parts.append(
                pl.col("conversation_id").is_null()
                & pl.col("message_id").is_in(list(self.message_ids))
            )
        if self.app_message_ids:
            ids = list(self.app_message_ids)
            parts.append(pl.col("message_id").is_in(ids) | pl.col("app_message_id").is_in(ids))
        if not parts:
            return None
        expr = parts[0]
        for part in parts[1:]:
            expr = expr | part
        return expr  # a null (no such column value) filters out like False


@dataclass
class ReadResult:
    """One reader's answer: events (lazy, events.SCHEMA), problems, what was read."""

    events: pl.LazyFrame
    problems: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    window_end: datetime | None = None


@runtime_checkable
class TraceReader(Protocol):
    """A source of spans: anything that answers a Query with event-table rows."""

    description: str

    def read(self, query: Query) -> ReadResult:
        """Events matching ``query`` (readers may return more; callers filter again)."""
        ...


ReaderFactory = Callable[[str], TraceReader]
_SCHEMES: dict[str, ReaderFactory] = {}


def register_scheme(scheme: str, factory: ReaderFactory) -> None:
    """Make ``scheme://...`` values of ``--traces`` open with ``factory(spec)``."""
    _SCHEMES[scheme.lower()] = factory


def default_traces_dir() -> Path:
    """The embedded store directory: ``$WSTRACE_DIR``, else ``./.wstrace``."""
    return Path(os.environ.get(ENV_DIR) or DEFAULT_DIR)


def open_source(spec: str | os.PathLike | None = None) -> TraceReader:
    """The reader for a ``--traces`` value (None = the embedded store)."""
    from wsanalyze.sources.otlp_files import OtlpFilesReader

    if spec is None:
        path = default_traces_dir()
        where = f"{path} (from ${ENV_DIR})" if os.environ.get(ENV_DIR) else f"{path.resolve()}"
        if not path.exists():
            raise SourceError(
                f"no trace store at {where}: run the app with wstrace enabled, "
                f"or pass --traces DIR|FILE"
            )
        return _open_path(path, OtlpFilesReader)
    text = os.fspath(spec)
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        factory = _SCHEMES.get(scheme)
        if factory is None:
            known = ", ".join(sorted(f"{s}://" for s in _SCHEMES)) or "none yet"
            raise SourceError(
                f"unsupported trace source {text!r}: give a directory or file of OTLP JSON "
                f"lines (URL schemes available: {known})"
            )
        return factory(text)
    path = Path(text)
    if not path.exists():
        raise SourceError(f"no traces at {path.resolve()}: no such file or directory")
    return _open_path(path, OtlpFilesReader)


def _open_path(path: Path, fallback: Callable[[Path], TraceReader]) -> TraceReader:
    from wsanalyze.store import CompactedStore, is_store

    if path.is_dir() and is_store(path):
        return CompactedStore(path)
    return fallback(path)
