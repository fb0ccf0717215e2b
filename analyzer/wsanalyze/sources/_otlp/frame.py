"""Row tuples → an event-table polars frame, and the nanosecond stamps they carry → datetimes.

The one part of ``_otlp`` that needs polars: every trace reader (files, the
compacted store, Jaeger, Tempo) turns its rows into frames here, after the
decoding workers have handed the tuples back.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from wsanalyze.events import SCHEMA, TS, conform, empty_events
from wsanalyze.sources._otlp.rows import ROW_COLUMNS


def rows_to_frame(rows: list[tuple]) -> pl.DataFrame:
    """An event-table frame (events.SCHEMA) built column-wise from span row tuples."""
    if not rows:
        return empty_events().collect()
    columns = zip(*rows, strict=True)
    data = {}
    for name, values in zip(ROW_COLUMNS, columns, strict=True):
        if SCHEMA[name] == TS:
            data[name] = pl.Series(name, values, pl.Int64).cast(TS)
        else:
            data[name] = pl.Series(name, values, SCHEMA[name], strict=False)
    frame = pl.DataFrame(data).with_columns(source=pl.lit("trace"))
    return conform(frame.lazy()).collect()


def ns_to_datetime(ns: int | None) -> datetime | None:
    """A nanosecond Unix timestamp as an aware UTC datetime."""
    if ns is None:
        return None
    return datetime.fromtimestamp(ns / 1e9, UTC)
