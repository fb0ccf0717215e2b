"""Put log rows on conversations they do not name, saying how sure each join is.

``confidence`` of a log row:

* ``exact`` — the line carries wstrace's ids (``trace_id=… conversation_id=…``), or its
  Celery task id is one a span or an id-carrying line tied to a conversation;
* ``path``  — the conversation came from the WebSocket path (Daphne access lines) or
  a channel-layer group name;
* ``time``  — only time says so: a crash (``Exception inside application``) placed on the
  connection of the same service that disconnected right after it; a Celery task placed
  on the one connection that was open when the worker received it.

Rows nothing ties to a conversation keep a null ``conversation_id``.
"""

from __future__ import annotations

import json
from datetime import timedelta

import polars as pl

CRASH_BEFORE_DISCONNECT = timedelta(seconds=2)


def _by_task_id(events: pl.DataFrame) -> pl.DataFrame:
    """Log rows with a task id take the conversation another row with that id names."""
    known = (
        events.filter(pl.col("task_id").is_not_null() & pl.col("conversation_id").is_not_null())
        .group_by("task_id")
        .agg(pl.col("conversation_id").first().alias("_conv"))
    )
    if known.is_empty():
        return events
    out = events.join(known, on="task_id", how="left")
    fill = (
        (pl.col("source") == "log")
        & pl.col("conversation_id").is_null()
        & pl.col("_conv").is_not_null()
    )
    return out.with_columns(
        pl.when(fill)
        .then(pl.col("_conv"))
        .otherwise(pl.col("conversation_id"))
        .alias("conversation_id"),
        pl.when(fill).then(pl.lit("exact")).otherwise(pl.col("confidence")).alias("confidence"),
    ).drop("_conv")


def connections(events: pl.DataFrame) -> pl.DataFrame:
    """One row per WebSocket connection seen in Daphne access lines.

    Columns: service, client, conversation_id, connecting, accepted (ts), rejected (ts),
    disconnected (ts). A connection is a client address's run of access lines from
    WSCONNECTING to WSDISCONNECT.
    """
    access = (
        events.filter((pl.col("name") == "daphne") & pl.col("event").str.starts_with("ws_"))
        .with_columns(pl.col("attributes").str.json_path_match("$.client").alias("client"))
        .sort("ts")
    )
    if access.is_empty():
        return pl.DataFrame(
            schema={"service": pl.String, "client": pl.String, "conversation_id": pl.String,
                    "connecting": access.schema["ts"], "accepted": access.schema["ts"],
                    "rejected": access.schema["ts"], "disconnected": access.schema["ts"]}
        )  # fmt: skip
    access = access.with_columns(
        (pl.col("event") == "ws_connecting")
        .cast(pl.Int64)
        .cum_sum()
        .over("service", "client")
        .alias("_n")
    )

    def first(event: str) -> pl.Expr:
        return pl.col("ts").filter(pl.col("event") == event).first()

    return (
        access.group_by("service", "client", "_n", maintain_order=True)
        .agg(
            pl.col("conversation_id").drop_nulls().first(),
            first("ws_connecting").alias("connecting"),
            first("ws_connect").alias("accepted"),
            first("ws_reject").alias("rejected"),
            first("ws_disconnect").alias("disconnected"),
        )
        .drop("_n")
        .sort("connecting", nulls_last=True)
    )


def _crashes(events: pl.DataFrame, conns: pl.DataFrame) -> pl.DataFrame:
    """`Exception inside application` → the connection of that service that closed next.

    With engine stamps the nearest close after the crash wins. Daphne's own access stamps
    are whole seconds: a close stamped in the crash's second (or the next) may be the one,
    so the crash is assigned only when a single conversation closed there; otherwise it
    stays unassigned rather than guessed.
    """
    crash = (pl.col("event") == "app_exception") & pl.col("conversation_id").is_null()
    if events.filter(crash).is_empty() or conns.is_empty():
        return events
    t = pl.col("disconnected")
    closes = conns.filter(t.is_not_null() & pl.col("accepted").is_not_null()).select(
        pl.col("service").alias("_svc"),
        t.alias("_t"),
        (t.dt.nanosecond() == 0).alias("_whole"),
        pl.col("conversation_id").alias("_conv"),
    )
    rows = events.with_row_index("_i")
    crashes = rows.filter(crash).select("_i", "service", "ts")
    pairs = crashes.join_where(
        closes,
        pl.col("service") == pl.col("_svc"),
        pl.col("_t") >= pl.col("ts").dt.truncate("1s"),
        pl.col("_t") <= pl.col("ts") + CRASH_BEFORE_DISCONNECT,
    ).filter(
        ~pl.col("_whole") | (pl.col("_t") <= pl.col("ts").dt.truncate("1s") + timedelta(seconds=1))
    )
    precise = pairs.filter(~pl.col("_whole") & (pl.col("_t") >= pl.col("ts")))
    nearest = precise.sort("_t").group_by("_i").agg(pl.col("_conv").first())
    coarse = (
        pairs.filter(pl.col("_whole"))
        .group_by("_i")
        .agg(pl.col("_conv").n_unique().alias("_k"), pl.col("_conv").first())
        .filter(pl.col("_k") == 1)
        .select("_i", "_conv")
        .join(nearest.select("_i"), on="_i", how="anti")
    )
    return _assign(rows, pl.concat([nearest, coarse]))


_TASK_END = ("task_succeeded", "task_failed", "task_retry", "task_soft_time_limit",
             "task_time_limit")  # fmt: skip


def _whole_second(t: pl.Expr) -> pl.Expr:
    return t.dt.nanosecond() == 0


def _tasks(events: pl.DataFrame, conns: pl.DataFrame) -> pl.DataFrame:
    """A Celery task → the one conversation whose connection could have enqueued it.

    An idle worker receives a task right after it is enqueued, so a connection open at
    the `received` time is the candidate. A busy worker (another task of its service
    unfinished then) may have received it late: every connection open since the worker
    became busy is a candidate. Whole-second access stamps widen each connection by the
    second they name. The task is assigned only when one conversation remains.
    """
    rows = events.filter(pl.col("task_id").is_not_null() & (pl.col("name") == "celery"))
    received = rows.filter(
        (pl.col("event") == "task_received") & pl.col("conversation_id").is_null()
    ).select("task_id", "service", "ts")
    opened = conns.filter(pl.col("accepted").is_not_null())
    if received.is_empty() or opened.is_empty():
        return events
    last = events.select(pl.col("ts").max()).item()
    ends = (
        rows.filter(pl.col("event").is_in(_TASK_END))
        .group_by("task_id")
        .agg(pl.col("ts").min().alias("_end"))
    )
    spans = received.join(ends, on="task_id", how="left").with_columns(
        pl.col("_end").fill_null(last)
    )
    # since when was the worker busy: the earliest other task still running at `ts`
    busy = (
        received.join_where(
            spans.select(
                pl.col("task_id").alias("_other"),
                pl.col("service").alias("_svc"),
                pl.col("ts").alias("_r"),
                "_end",
            ),
            pl.col("service") == pl.col("_svc"),
            pl.col("_r") < pl.col("ts"),
            pl.col("_end") > pl.col("ts"),
        )
        .group_by("task_id")
        .agg(pl.col("_r").min().alias("_since"))
    )
    received = received.join(busy, on="task_id", how="left").with_columns(
        pl.coalesce(pl.col("_since"), pl.col("ts")).alias("_since")
    )
    a, d = pl.col("accepted"), pl.col("disconnected").fill_null(last)
    candidates = opened.select(
        a.alias("_a"),
        pl.when(_whole_second(d)).then(d + pl.duration(seconds=1, time_unit="ns")).otherwise(d)
        .alias("_d"),
        pl.col("conversation_id").alias("_conv"),
    )  # fmt: skip
    # an inequality join (IEJoin): only the (task, possibly open connection) pairs are built
    pairs = received.join_where(
        candidates, pl.col("ts") >= pl.col("_a"), pl.col("_since") <= pl.col("_d")
    )
    unique = (
        pairs.group_by("task_id")
        .agg(pl.col("_conv").n_unique().alias("_k"), pl.col("_conv").first())
        .filter(pl.col("_k") == 1)
        .select("task_id", "_conv")
    )
    if unique.is_empty():
        return events
    indexed = events.with_row_index("_i")
    found = (
        indexed.filter(pl.col("conversation_id").is_null() & pl.col("task_id").is_not_null())
        .select("_i", "task_id")
        .join(unique, on="task_id")
        .select("_i", "_conv")
    )
    return _assign(indexed, found)


def _assign(rows: pl.DataFrame, found: pl.DataFrame) -> pl.DataFrame:
    out = rows.join(found, on="_i", how="left")
    hit = pl.col("_conv").is_not_null()
    return out.with_columns(
        pl.when(hit)
        .then(pl.col("_conv"))
        .otherwise(pl.col("conversation_id"))
        .alias("conversation_id"),
        pl.when(hit).then(pl.lit("time")).otherwise(pl.col("confidence")).alias("confidence"),
    ).drop("_i", "_conv")


def correlate(events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Fill `conversation_id` of log rows by task id (exact), then by time (marked `time`)."""
    frame = events.lazy().collect() if isinstance(events, pl.LazyFrame) else events
    frame = _by_task_id(frame)
    logs = frame.filter(pl.col("source") == "log")
    conns = connections(logs)
    frame = _crashes(frame, conns)
    frame = _tasks(frame, conns)
    return _by_task_id(frame)


def attributes(row: dict) -> dict:
    try:
        return json.loads(row.get("attributes") or "{}")
    except ValueError:
        return {}
