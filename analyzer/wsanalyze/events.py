"""The normalized event table: one row per span or log event.

Every source (OTLP files, collector exports, Jaeger, Tempo, container logs)
produces frames with exactly this schema; timelines, verdicts and every view
are computed from it. Columns a source does not know stay null.
"""

from __future__ import annotations

import polars as pl

TS = pl.Datetime("ns", "UTC")

SCHEMA: dict[str, pl.DataType] = {
    # when and where
    "ts": TS,  # span start / log line time
    "end_ts": TS,  # span end; null for logs
    "source": pl.String,  # "trace" | "log"
    "service": pl.String,  # service.name / compose service
    # the three ids (contract attributes ws.*_id)
    "conversation_id": pl.String,
    "connection_id": pl.String,
    "message_id": pl.String,
    # what happened
    "hop": pl.String,  # ws.hop
    "event": pl.String,  # ws.event for spans; parser's event name for logs
    "name": pl.String,  # span name, or the log producer ("daphne", "celery", ...)
    "kind": pl.String,  # span kind: "internal" | "server" | "client" | "producer" | "consumer"
    "status": pl.String,  # "ok" | "error" | "unset"
    "status_message": pl.String,
    "exception": pl.String,  # "Type: message" of the first exception event
    "cause": pl.String,  # ws.cause when the instrumentation already knew it
    "close_code": pl.Int32,
    "closed_by": pl.String,  # "server" | "client"
    "accepted": pl.Boolean,
    "handshake_rejected": pl.Boolean,
    "origin_allowed": pl.Boolean,
    "user_authenticated": pl.Boolean,
    "seq": pl.Int64,
    # channel layer facts
    "group": pl.String,
    "channel": pl.String,  # ws.channel: the consumer's channel / the send target
    "layer": pl.String,
    "members": pl.Int64,
    "receivers": pl.Int64,
    "over_capacity": pl.Int64,
    "message_type": pl.String,
    # celery facts
    "task_id": pl.String,
    "task_name": pl.String,
    "queue": pl.String,
    "queues": pl.List(pl.String),
    # what real apps add: frame types, their own ids, routes, raw pub/sub joins
    "frame_type": pl.String,  # ws.frame_type: the client frame's own "type"
    "expects_answer": pl.Boolean,  # ws.expects_answer: WSTRACE declared the type answered
    "app_message_id": pl.String,  # ws.app_message_id: the id the app put in the frame
    "payload_hash": pl.String,  # ws.payload_hash: raw pub/sub publish <-> subscriber read
    "conversation_source": pl.String,  # ws.conversation_source: route|pattern|resolver|path
    "route": pl.String,  # ws.route: the URL route pattern that matched
    # causal links
    "trace_id": pl.String,  # 32 lowercase hex
    "span_id": pl.String,  # 16 lowercase hex
    "parent_span_id": pl.String,  # null for roots
    "links": pl.List(pl.String),  # span ids this span links to
    # provenance and free text
    "attributes": pl.String,  # JSON object of every attribute, for detail views
    "detail": pl.String,  # one human-readable line
    "origin": pl.String,  # "file:line" or container name the row came from
    "confidence": pl.String,  # for log-derived rows: "exact" | "path" | "time"
}

COLUMNS: tuple[str, ...] = tuple(SCHEMA)


def empty_events() -> pl.LazyFrame:
    """An empty event table with the full schema."""
    return pl.LazyFrame(schema=SCHEMA)


def conform(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Add missing columns as nulls and order/cast columns to the schema."""
    present = set(frame.collect_schema().names())
    return frame.with_columns(
        [
            pl.lit(None, dtype=dtype).alias(name)
            for name, dtype in SCHEMA.items()
            if name not in present
        ]
    ).select([pl.col(name).cast(dtype) for name, dtype in SCHEMA.items()])
