"""The reader interface every trace source implements, and the registry behind ``--traces``.

A reader turns one source (a directory of OTLP files, a compacted store, Jaeger,
Tempo) into event-table frames. ``open_source(spec)`` picks the reader for a
``--traces`` value::

    reader = open_source("./.wstrace")                  # directory or single file
    reader = open_source("jaeger://localhost:16686")    # a registered URL scheme
    result = reader.read(Query(conversation_id="abc"))

This module knows no reader (as Channels' ``ChannelLayerManager`` knows no layer
backend): each reader module registers itself when imported, and
``wsanalyze.sources`` imports them all, so importing any part of the package fills
the registry. Readers register by URL scheme or by what a path looks like::

    register_scheme("jaeger", JaegerReader)                    # jaeger://...
    register_path("compacted store", is_store, CompactedStore)  # a store directory
    register_path("OTLP files", lambda path: True, OtlpFilesReader, priority=-1)

Optional capabilities beyond ``TraceReader``: ``reads_message_ids = True`` when
``Query.message_ids`` / ``app_message_ids`` are searched rather than ignored, and
``conversation_ids()`` (``ListsConversations``) when the ids can be listed cheaply.
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


@runtime_checkable
class ListsConversations(Protocol):
    """A reader that lists its conversation ids without decoding every span."""

    def conversation_ids(self) -> set[str]:
        """Every conversation id in the source."""
        ...


ReaderFactory = Callable[[str], TraceReader]
PathReaderFactory = Callable[[Path], TraceReader]


@dataclass(frozen=True)
class _PathReader:
    """A registered reader of existing files or directories."""

    name: str
    claims: Callable[[Path], bool]
    factory: PathReaderFactory
    priority: int


_SCHEMES: dict[str, ReaderFactory] = {}
_PATHS: dict[str, _PathReader] = {}


def register_scheme(scheme: str, factory: ReaderFactory) -> None:
    """Make ``scheme://...`` values of ``--traces`` open with ``factory(spec)``."""
    _SCHEMES[scheme.lower()] = factory


def register_path(
    name: str,
    claims: Callable[[Path], bool],
    factory: PathReaderFactory,
    *,
    priority: int = 0,
) -> None:
    """Make an existing file or directory that ``claims(path)`` open with ``factory(path)``.

    Readers are asked from the highest ``priority`` down (equal ones in the order they
    registered); a reader that takes any path registers below 0, so the ones that
    recognise a layout are asked first. Registering a ``name`` again replaces it.
    """
    _PATHS[name] = _PathReader(name, claims, factory, priority)


def default_traces_dir() -> Path:
    """The embedded store directory: ``$WSTRACE_DIR``, else ``./.wstrace``."""
    return Path(os.environ.get(ENV_DIR) or DEFAULT_DIR)


def open_source(spec: str | os.PathLike | None = None) -> TraceReader:
    """The reader for a ``--traces`` value (None = the embedded store)."""
    if spec is None:
        path = default_traces_dir()
        where = f"{path} (from ${ENV_DIR})" if os.environ.get(ENV_DIR) else f"{path.resolve()}"
        if not path.exists():
            raise SourceError(
                f"no trace store at {where}: run the app with wstrace enabled, "
                f"or pass --traces DIR|FILE"
            )
        return _open_path(path)
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
    return _open_path(path)


def _open_path(path: Path) -> TraceReader:
    """The first registered path reader, by priority, that claims ``path``."""
    for entry in sorted(_PATHS.values(), key=lambda e: -e.priority):  # stable: ties keep order
        if entry.claims(path):
            return entry.factory(path)
    known = ", ".join(_PATHS) or "none"
    raise SourceError(f"no trace reader takes {path.resolve()} (readers: {known})")
