"""Row tuples → an event-table polars frame, and the nanosecond stamps they carry → datetimes.

The one part of ``_otlp`` that needs polars: every trace reader (files, the
compacted store, Jaeger, Tempo) turns its rows into frames here, after the
decoding workers have handed the tuples back.

``span_row`` already refuses the values the table cannot hold that it knows of; a
row polars still cannot take (text that is not valid Unicode, a value of a type
no reader should produce) costs that row only: the columns are checked value by
value, that row dropped and named in ``problems``, and the frame built again.
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from wsanalyze.events import SCHEMA, TS, conform, empty_events
from wsanalyze.sources._otlp.rows import ROW_COLUMNS
from wsanalyze.sources._otlp.values import INT32, INT64, MAX_NS, MIN_NS

_ORIGIN = ROW_COLUMNS.index("origin")
_RANGES = {pl.Int32: INT32, pl.Int64: INT64, TS: (MIN_NS, MAX_NS)}


def rows_to_frame(rows: list[tuple], problems: list[str] | None = None) -> pl.DataFrame:
    """An event-table frame (events.SCHEMA) built column-wise from span row tuples.

    A row with a value its column cannot hold is left out, with a line in ``problems``.
    """
    if not rows:
        return empty_events().collect()
    try:
        return _build(rows)
    except Exception:
        kept = [row for row in rows if _fits(row, problems)]
        return _build(kept) if kept else empty_events().collect()


def _build(rows: list[tuple]) -> pl.DataFrame:
    columns = zip(*rows, strict=True)
    data = {}
    for name, values in zip(ROW_COLUMNS, columns, strict=True):
        if SCHEMA[name] == TS:
            data[name] = pl.Series(name, values, pl.Int64).cast(TS)
        else:
            data[name] = pl.Series(name, values, SCHEMA[name], strict=False)
    frame = pl.DataFrame(data).with_columns(source=pl.lit("trace"))
    return conform(frame.lazy()).collect()


def _fits(row: tuple, problems: list[str] | None) -> bool:
    """Whether every value of ``row`` fits its column; if not, say which in ``problems``."""
    if len(row) == len(ROW_COLUMNS):
        for name, value in zip(ROW_COLUMNS, row, strict=True):
            if value is not None and not _value_fits(value, SCHEMA[name]):
                what = f"{name} {_short(value)} cannot be represented"
                break
        else:
            return True
    else:
        what = f"a row of {len(row)} values, not {len(ROW_COLUMNS)}"
    if problems is not None:
        origin = row[_ORIGIN] if len(row) == len(ROW_COLUMNS) else None
        problems.append(f"{_text(origin) or 'a span'}: span skipped ({what})")
    return False


def _value_fits(value: object, dtype: pl.DataType) -> bool:
    if dtype in _RANGES:
        low, high = _RANGES[dtype]
        return type(value) is int and low <= value <= high
    if dtype == pl.String:
        return _text(value) is not None
    if dtype == pl.Boolean:
        return type(value) is bool
    if isinstance(dtype, pl.List):
        return isinstance(value, list) and all(_text(v) is not None for v in value)
    return False


def _text(value: object) -> str | None:
    """``value`` when it is text polars can store (valid UTF-8), else None."""
    if type(value) is not str:
        return None
    try:
        value.encode()
    except UnicodeEncodeError:
        return None
    return value


def _short(value: object) -> str:
    text = ascii(value)
    return text if len(text) <= 40 else text[:39] + "…"


def ns_to_datetime(ns: int | None) -> datetime | None:
    """A nanosecond Unix timestamp as an aware UTC datetime; None when none or out of range."""
    if ns is None:
        return None
    try:
        return datetime.fromtimestamp(ns / 1e9, UTC)
    except (OverflowError, OSError, ValueError, TypeError):
        return None
