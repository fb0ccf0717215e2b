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
STUCK_HORIZON = timedelta(seconds=30)
"""A task that never logs an end keeps its worker busy this long, not forever."""


def _by_task_id(events: pl.DataFrame) -> pl.DataFrame:
    """Log rows with a task id take the conversation another row with that id names."""
    # Only spans and lines carrying wstrace's ids vouch for a task's conversation.
    vouched = (pl.col("source") != "log") | (pl.col("confidence") == "exact")
    known = (
        events.filter(
            pl.col("task_id").is_not_null() & pl.col("conversation_id").is_not_null() & vouched
        )
        .group_by("task_id")
        .agg(pl.col("conversation_id").first().alias("_conv"))
    )
    if known.is_empty():
        return events
    out = events.join(known, on="task_id", how="left")
    # A task id shared with a span beats a guess by time made before the spans were seen.
    fill = (
        (pl.col("source") == "log")
        & (pl.col("conversation_id").is_null() | (pl.col("confidence") == "time"))
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
    if events.filter(crash).is_empty():
        return events
    events = _crashes_by_app_line(events, crash)
    if events.filter(crash).is_empty() or conns.is_empty():
        return events
    t = pl.col("disconnected")
    closes = conns.filter(t.is_not_null() & pl.col("accepted").is_not_null()).select(
        "service",
        t.alias("_t"),
        (t.dt.nanosecond() == 0).alias("_whole"),
        pl.col("conversation_id").alias("_conv"),
    )
    rows = events.with_row_index("_i")
    crashes = rows.filter(crash).select("_i", "service", "ts").sort("ts")
    # engine stamps: the nearest close after the crash (as-of join: linear, no pairs)
    precise = closes.filter(~pl.col("_whole")).sort("_t")
    nearest = (
        crashes.join_asof(
            precise,
            left_on="ts",
            right_on="_t",
            by="service",
            strategy="forward",
            tolerance=CRASH_BEFORE_DISCONNECT,
            check_sortedness=False,  # both sorted by time above
        )
        .filter(pl.col("_conv").is_not_null())
        .select("_i", "_conv")
    )
    # whole-second stamps: the conversations closed in the crash's second or the next
    per_second = (
        closes.filter(pl.col("_whole"))
        .group_by("service", "_t")
        .agg(pl.col("_conv").unique().alias("_convs"))
    )
    sec = pl.col("ts").dt.truncate("1s")
    one = pl.duration(seconds=1, time_unit="ns")
    coarse = (
        crashes.join(nearest.select("_i"), on="_i", how="anti")
        .with_columns(sec.alias("_s0"), (sec + one).alias("_s1"))
        .join(per_second.rename({"_t": "_s0", "_convs": "_c0"}), on=["service", "_s0"], how="left")
        .join(per_second.rename({"_t": "_s1", "_convs": "_c1"}), on=["service", "_s1"], how="left")
        .with_columns(
            pl.concat_list(pl.col("_c0").fill_null([]), pl.col("_c1").fill_null([]))
            .list.unique()
            .alias("_all")
        )
        .filter(pl.col("_all").list.len() == 1)
        .select("_i", pl.col("_all").list.first().alias("_conv"))
    )
    return _assign(rows, pl.concat([nearest, coarse]))


APP_LINE_BEFORE_CRASH = timedelta(seconds=3)
"""Daphne notices a dead application on its next check (about once a second): the app's
own error line comes up to this long before Daphne's ``Exception inside application``."""


def _crashes_by_app_line(events: pl.DataFrame, crash: pl.Expr) -> pl.DataFrame:
    """A crash the app logged itself: its own error line, naming the conversation, with the
    same exception, on the same service just before Daphne's line (``path``: the same
    traceback names it, not time alone). Several conversations logging it: none is chosen."""
    rows = events.with_row_index("_i")
    app = rows.filter(
        (pl.col("source") == "log")
        & (pl.col("name") == "app")
        & (pl.col("status") == "error")
        & pl.col("conversation_id").is_not_null()
        & pl.col("exception").is_not_null()
        & pl.col("ts").is_not_null()
    ).select(
        "service", "exception", pl.col("ts").alias("_t"), pl.col("conversation_id").alias("_c")
    )
    crashes = rows.filter(crash & pl.col("exception").is_not_null() & pl.col("ts").is_not_null())
    if app.is_empty() or crashes.is_empty():
        return events
    found = (
        crashes.select("_i", "service", "exception", "ts")
        .join(app, on=["service", "exception"])
        .filter(
            (pl.col("_t") <= pl.col("ts"))
            & (
                pl.col("ts") - pl.col("_t")
                <= pl.lit(APP_LINE_BEFORE_CRASH, dtype=pl.Duration("ns"))
            )
        )
        .group_by("_i")
        .agg(pl.col("_c").unique().alias("_cs"))
        .filter(pl.col("_cs").list.len() == 1)
        .select("_i", pl.col("_cs").list.first().alias("_conv"))
    )
    if found.is_empty():
        return events
    return _assign(rows, found, confidence="path")


_TASK_END = ("task_succeeded", "task_failed", "task_retry", "task_soft_time_limit",
             "task_time_limit")  # fmt: skip


def _whole_second(t: pl.Expr) -> pl.Expr:
    return t.dt.nanosecond() == 0


def _busy_since(received: pl.DataFrame, ends: pl.DataFrame) -> pl.DataFrame:
    """task_id → `_since`: when its worker (service) last became busy before receiving it,
    or its own `received` time if the worker was idle. One sweep over +1/-1 events per
    service (O(n log n)); a task that never ends counts as running for STUCK_HORIZON."""
    spans = received.join(ends, on="task_id", how="left").with_columns(
        pl.coalesce(
            pl.col("_end"), pl.col("ts") + pl.lit(STUCK_HORIZON, dtype=pl.Duration("ns"))
        ).alias("_end")
    )
    sweep = (
        pl.concat(
            [
                spans.select("service", "task_id", pl.col("ts").alias("_t"), pl.lit(1).alias("_d")),
                spans.select(
                    "service", "task_id", pl.col("_end").alias("_t"), pl.lit(-1).alias("_d")
                ),
            ]
        )
        .sort("service", "_t", "_d")  # at equal times an end frees the slot before a start
        .with_columns(pl.col("_d").cum_sum().over("service").alias("_running"))
        .with_columns(
            # a busy stretch starts where the count goes from 0 to 1
            ((pl.col("_running") == 1) & (pl.col("_d") == 1)).cum_sum().over("service").alias("_k")
        )
        .with_columns(pl.col("_t").first().over("service", "_k").alias("_start"))
    )
    starts = sweep.filter(pl.col("_d") == 1)
    return starts.select(
        "task_id",
        pl.when(pl.col("_running") > 1)
        .then(pl.col("_start"))
        .otherwise(pl.col("_t"))
        .alias("_since"),
    ).unique("task_id", keep="first")


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
    received = received.join(_busy_since(received, ends), on="task_id", how="left")
    a, d = pl.col("accepted"), pl.col("disconnected").fill_null(last)
    candidates = opened.select(
        a.alias("_a"),
        pl.when(_whole_second(d)).then(d + pl.duration(seconds=1, time_unit="ns")).otherwise(d)
        .alias("_d"),
        pl.col("conversation_id").alias("_conv"),
    )  # fmt: skip
    # How many connections could have enqueued each task: accepted by `ts`, not closed
    # before `_since`. Counted with two sorted arrays (no pairs are built), then only the
    # tasks with exactly one candidate are joined (IEJoin: one match each).
    opened_by = candidates["_a"].sort().search_sorted(received["ts"], side="right")
    closed_before = candidates["_d"].sort().search_sorted(received["_since"], side="left")
    received = received.with_columns((opened_by.cast(pl.Int64) - closed_before).alias("_n"))
    pairs = received.filter(pl.col("_n") == 1).join_where(
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


def _assign(rows: pl.DataFrame, found: pl.DataFrame, confidence: str = "time") -> pl.DataFrame:
    out = rows.join(found, on="_i", how="left")
    hit = pl.col("_conv").is_not_null()
    return out.with_columns(
        pl.when(hit)
        .then(pl.col("_conv"))
        .otherwise(pl.col("conversation_id"))
        .alias("conversation_id"),
        pl.when(hit).then(pl.lit(confidence)).otherwise(pl.col("confidence")).alias("confidence"),
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
