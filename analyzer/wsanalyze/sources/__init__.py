"""Trace sources → the normalized event table.

The one call the commands make::

    from wsanalyze.sources import load_events, SourceError

    result = load_events("./.wstrace", conversation_id="abc")
    result.events       # pl.LazyFrame with events.SCHEMA, only that conversation
    result.problems     # ["file:line: what", ...] for malformed / truncated input
    result.sources      # what was read
    result.window_end   # latest timestamp seen in the data (in flight vs lost)

``traces`` is a ``--traces`` value: a directory or file of OTLP JSON lines
(embedded store, collector file export, zstd), a compacted store written by
``wsanalyze.store.ingest``, or a registered URL scheme. None means the embedded
store (``$WSTRACE_DIR`` or ``./.wstrace``). When a compacted store of that
directory exists and is current (``$WSANALYZE_STORE`` or ``./.wsanalyze``), it
answers, and only data written since the last ingest is read from the raw files.
"""

from __future__ import annotations

import os
from datetime import datetime

import polars as pl

from wsanalyze.events import conform
from wsanalyze.sources import jaeger, tempo  # noqa: F401  (register jaeger://, tempo://)
from wsanalyze.sources.base import (
    Query,
    ReadResult,
    SourceError,
    TraceReader,
    default_traces_dir,
    open_source,
    register_scheme,
)

LoadResult = ReadResult

__all__ = [
    "LoadResult",
    "Query",
    "SourceError",
    "TraceReader",
    "conversation_ids",
    "default_traces_dir",
    "load_events",
    "open_source",
    "register_scheme",
]


def load_events(
    traces: str | os.PathLike | None = None,
    *,
    conversation_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> LoadResult:
    """Events of a trace source, optionally one conversation and a time window.

    Raises SourceError (one clean line saying where it looked) when the source is
    missing or unusable; bad lines inside it become ``problems`` instead.
    """
    from wsanalyze.store import reader_with_store

    query = Query(conversation_id=conversation_id, since=since, until=until)
    reader = reader_with_store(open_source(traces))
    result = reader.read(query)
    events = result.events
    if conversation_id is not None:
        events = events.filter(pl.col("conversation_id") == conversation_id)
    if since is not None:
        events = events.filter(pl.col("ts") >= _utc(since))
    if until is not None:
        events = events.filter(pl.col("ts") <= _utc(until))
    return LoadResult(
        events=conform(events),
        problems=list(dict.fromkeys(result.problems)),
        sources=result.sources,
        window_end=result.window_end,
    )


def conversation_ids(traces: str | os.PathLike | None = None) -> list[str]:
    """Every conversation id in a trace source, sorted; cheap (no span decoding).

    For "unknown id, did you mean ...": raw files are searched with a bytes regex,
    a compacted store answers from its conversation_id column.
    """
    from wsanalyze.sources._otlp import scan_conversation_ids
    from wsanalyze.sources.otlp_files import OtlpFilesReader
    from wsanalyze.store import CompactedStore, _StoreAndTail, reader_with_store

    reader = reader_with_store(open_source(traces))
    ids: set[str] = set()
    if isinstance(reader, _StoreAndTail):
        ids.update(conversation_ids(reader.store.path))
        reader = OtlpFilesReader(reader.raw, only=reader.tail_files())
    if isinstance(reader, CompactedStore):
        column = reader.read(Query()).events.select(pl.col("conversation_id").unique())
        ids.update(x for x in column.collect()["conversation_id"] if x is not None)
    elif isinstance(reader, OtlpFilesReader):
        for path in reader.files():
            ids.update(scan_conversation_ids(str(path))[0])
    else:
        events = reader.read(Query()).events.select(pl.col("conversation_id").unique())
        ids.update(x for x in events.collect()["conversation_id"] if x is not None)
    return sorted(ids)


def _utc(moment: datetime) -> datetime:
    from datetime import UTC

    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
