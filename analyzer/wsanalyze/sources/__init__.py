"""Trace sources → the normalized event table.

The one call the commands make::

    from wsanalyze.sources import load_events, SourceError

    result = load_events("./.wstrace", conversation_id="abc")
    result.events       # pl.LazyFrame with events.SCHEMA, only that conversation
    result.problems     # ["file:line: what", ...] for malformed / truncated input
    result.sources      # what was read
    result.window_end   # latest timestamp seen in the data (in flight vs lost)

A span read twice (a copied file, overlapping collector exports, a store and the raw
files it was ingested from) counts once: rows with the same ids and content
(``SAME_SPAN``) are kept at their first appearance.

``traces`` is a ``--traces`` value: a directory or file of OTLP JSON lines
(embedded store, collector file export, zstd), a compacted store written by
``wsanalyze.sources.store.ingest``, or a registered URL scheme. None means the embedded
store (``$WSTRACE_DIR`` or ``./.wstrace``). When a compacted store of that
directory exists and is current (``$WSANALYZE_STORE`` or ``./.wsanalyze``), it
answers, and only data written since the last ingest is read from the raw files.

Which reader opens a value is decided by the registry in ``sources.base``; this
package imports every reader module once, below, so that each registers itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

import polars as pl

from wsanalyze.events import conform, empty_events

# Imported for their registrations: jaeger://, tempo://, OTLP files, compacted stores.
from wsanalyze.sources import jaeger, otlp_files, store, tempo  # noqa: F401
from wsanalyze.sources.base import (
    ListsConversations,
    Query,
    ReadResult,
    SourceError,
    TraceReader,
    default_traces_dir,
    open_source,
    register_path,
    register_scheme,
)
from wsanalyze.sources.store import reader_with_store

LoadResult = ReadResult

# What makes two rows the same span: its ids and content. ``origin`` (file:line) is
# left out, it differs between copies; ``attributes`` (every attribute, as JSON) stands
# for the columns taken from them.
SAME_SPAN = ("trace_id", "span_id", "ts", "end_ts", "name", "service", "status", "attributes")
_SEED = 0x5EED

__all__ = [
    "SAME_SPAN",
    "ListsConversations",
    "LoadResult",
    "Query",
    "SourceError",
    "TraceReader",
    "conversation_ids",
    "default_traces_dir",
    "drop_copies",
    "load_events",
    "open_source",
    "register_path",
    "register_scheme",
]


def load_events(
    traces: str | os.PathLike | None = None,
    *,
    conversation_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    message_ids: Iterable[str] = (),
    app_message_ids: Iterable[str] = (),
) -> LoadResult:
    """Events of a trace source, optionally one conversation and a time window.

    ``message_ids`` adds the spans tagged with no conversation that carry one of those
    message ids; ``app_message_ids`` the spans naming one as message or app message id
    (see ``Query``). Both are needle searches on OTLP files and column filters on a
    compacted store; remote readers (Jaeger, Tempo) cannot search by them, so they
    contribute nothing there rather than a read of everything.

    Raises SourceError (one clean line saying where it looked) when the source is
    missing or unusable, or an id asked for is not text (a lone surrogate, such as a
    command-line argument that was not UTF-8); bad lines inside it become ``problems``.
    """
    message_ids, app_message_ids = _ids(message_ids), _ids(app_message_ids)
    for value in (conversation_id, *message_ids, *app_message_ids):
        _check_text(value)
    query = Query(
        conversation_id=conversation_id,
        since=since,
        until=until,
        message_ids=message_ids,
        app_message_ids=app_message_ids,
    )
    reader = reader_with_store(open_source(traces))
    if query.by_message and not getattr(reader, "reads_message_ids", False):
        if query.conversation_id is None:  # a remote reader would answer with everything
            return LoadResult(events=empty_events(), sources=[], window_end=None)
        query = replace(query, message_ids=(), app_message_ids=())
    result = reader.read(query)
    events = result.events
    predicate = query.predicate()
    if predicate is not None:
        events = events.filter(predicate)
    if since is not None:
        events = events.filter(pl.col("ts") >= _utc(since))
    if until is not None:
        events = events.filter(pl.col("ts") <= _utc(until))
    return LoadResult(
        events=drop_copies(conform(events)),
        problems=list(dict.fromkeys(result.problems)),
        sources=result.sources,
        window_end=result.window_end,
    )


def drop_copies(events: pl.LazyFrame) -> pl.LazyFrame:
    """The events with every span seen more than once (same ids and content) kept once.

    Rows are compared by a 64-bit hash of ``SAME_SPAN``: a third of the time and memory
    of an exact ``unique`` on those columns (benchmarks/README.md), and two different
    spans would have to share all 64 bits (odds about n²/2⁶⁵: 3e-6 at 10M spans).
    """
    return events.filter(pl.struct(list(SAME_SPAN)).hash(_SEED).is_first_distinct())


def _ids(values: Iterable[str]) -> tuple[str, ...]:
    """Distinct non-empty ids, in order (a bare string is one id, not its characters)."""
    if isinstance(values, str):
        values = (values,)
    return tuple(dict.fromkeys(v for v in values if v))


def _check_text(value: str | None) -> None:
    """SourceError for an id no span can hold: text that has no UTF-8 form."""
    if value is None:
        return
    try:
        value.encode()
    except UnicodeEncodeError:
        raise SourceError(f"id {value!a} is not valid UTF-8 text; no span holds it") from None


def conversation_ids(traces: str | os.PathLike | None = None) -> list[str]:
    """Every conversation id in a trace source, sorted; cheap (no span decoding).

    For "unknown id, did you mean ...": raw files are searched with a bytes regex,
    a compacted store answers from its conversation_id column.
    """
    reader = reader_with_store(open_source(traces))
    if isinstance(reader, ListsConversations):
        return sorted(reader.conversation_ids())
    events = reader.read(Query()).events.select(pl.col("conversation_id").unique())
    ids = {x for x in events.collect()["conversation_id"] if x is not None}
    return sorted(ids)


def _utc(moment: datetime) -> datetime:
    from datetime import UTC

    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
