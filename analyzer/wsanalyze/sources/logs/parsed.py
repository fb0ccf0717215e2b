"""A frame of log lines → parsed, windowed, correlated events: how every log reader ends."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from wsanalyze.events import conform
from wsanalyze.logmap import LogMap, current_log_map
from wsanalyze.logparse import parse_lines
from wsanalyze.logparse.correlate import correlate
from wsanalyze.sources.base import Query, ReadResult


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def window(events: pl.LazyFrame, query: Query) -> pl.LazyFrame:
    """Apply a query's time window to log events (conversations are left to correlation)."""
    if query.since is not None:
        events = events.filter(pl.col("ts") >= _utc(query.since))
    if query.until is not None:
        events = events.filter(pl.col("ts") <= _utc(query.until))
    return events


def window_end(events: pl.DataFrame) -> datetime | None:
    """The latest timestamp among the events; None when there are none."""
    if events.is_empty():
        return None
    value = events.select(pl.col("ts").max()).item()
    return value


def parsed_result(
    lines: pl.DataFrame,
    query: Query,
    *,
    tz: str | None,
    log_map: LogMap | None,
    problems: list[str],
    sources: list[str],
) -> ReadResult:
    """The events of a lines frame (logparse.LINES_SCHEMA) in the query's window, correlated.

    ``log_map`` None means ``current_log_map()``, looked up when the logs are read
    (as ``open_logs`` documents), not when the reader was opened.
    """
    log_map = log_map if log_map is not None else current_log_map()
    events = correlate(window(parse_lines(lines, tz=tz, log_map=log_map), query).collect())
    return ReadResult(
        events=conform(events.lazy()),
        problems=problems,
        sources=sources,
        window_end=window_end(events),
    )
