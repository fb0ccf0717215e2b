"""When a log line happened: the engine's stamp, else the producer's own local stamp.

The engine's timestamp when there is one (Docker API, ``docker logs -t``, compose
``-t``, json-file). The producer's own stamp (local time, often whole seconds) is
read by ``line_stamp``; where a service has both, their median difference (rounded to
15 min) is that service's UTC offset, used by ``event_time`` for its lines that have
no engine stamp. Plain logs with neither use ``tz`` (default UTC).
"""

from __future__ import annotations

import polars as pl

from wsanalyze.events import TS

__all__ = ["event_time", "line_stamp"]

# (regex with one group, strptime format) for the stamps producers write, local time
_STAMPS = (
    (r'^\S+ \S+ \S+ \[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d)\] "', "%d/%b/%Y:%H:%M:%S"),
    (r"^\[?(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[,.]\d{3,6})", "%Y-%m-%d %H:%M:%S%.f"),
    (r"^\[?(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)", "%Y-%m-%d %H:%M:%S"),
    (r"^\d+:[XCSM] (\d\d \w{3} \d{4} \d\d:\d\d:\d\d\.\d{3}) ", "%d %b %Y %H:%M:%S%.f"),
    (r"^\[(\d\d/\w{3}/\d{4} \d\d:\d\d:\d\d)\]", "%d/%b/%Y %H:%M:%S"),
)


def line_stamp() -> pl.Expr:
    """The local time a producer stamped at the start of ``line`` (naive), or null."""
    parts = []
    for regex, fmt in _STAMPS:
        raw = pl.col("line").str.extract(regex, 1).str.replace(",", ".", literal=True)
        raw = raw.str.replace("T", " ", literal=True) if fmt.startswith("%Y") else raw
        parts.append(raw.str.to_datetime(fmt, time_unit="ns", strict=False))
    return pl.coalesce(parts)


def event_time(frame: pl.DataFrame, tz: str | None) -> pl.DataFrame:
    """`ts` from the engine stamp, else from the local stamp shifted by the service's offset."""
    local_utc = pl.col("_local").dt.replace_time_zone("UTC")
    diff = (pl.col("engine_ts") - local_utc).dt.total_seconds()
    offset = (diff.median().over("service") / 900).round() * 900
    frame = frame.with_columns(offset.fill_null(0).alias("_offset_s"))
    if tz:
        from_local = (
            pl.col("_local")
            .dt.replace_time_zone(tz, ambiguous="earliest")
            .dt.convert_time_zone("UTC")
        )
    else:
        from_local = local_utc - pl.duration(seconds=pl.col("_offset_s"), time_unit="ns")
    # an app's stamp that names its zone (JSON/logfmt `timestamp`) beats a guessed offset
    ts = pl.coalesce(pl.col("engine_ts"), pl.col("_s_ts"), from_local)
    return frame.with_columns(ts.cast(TS).alias("ts"))
