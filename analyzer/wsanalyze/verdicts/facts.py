"""Facts per message and per connection, aggregated from the event table.

Everything here is a lazy polars expression over the one table: the rules in
``verdicts.rules`` are conditions over the columns these functions produce.
One row per (conversation, message) and per (conversation, connection).
"""

from __future__ import annotations

import polars as pl
from wstrace import conventions as c

MESSAGE_HOPS = c.MESSAGE_HOPS
_EV_BUFFER_OVERFLOW = getattr(c, "EV_BUFFER_OVERFLOW", "buffer_overflow")
_SPAN_DROP = getattr(c, "SPAN_DROP", "ws.drop")
_EXC_UNAVAILABLE = (
    r"(?i)connection ?refused|error 111|connecting to|connectionerror|connection closed by server|"
    r"timeout connecting|timed? ?out|oom command|connectionreset|name or service not known|"
    r"no route to host|busyloading"
)
_EXC_CHANNEL_FULL = r"(?i)channelfull|channel_full|over capacity"
_EXC_STUCK = r"(?i)workerlost|timelimitexceeded|soft time limit|time limit|sigkill"


def hop_is(hop: str) -> pl.Expr:
    """Rows of one hop."""
    return pl.col("hop") == hop


_NOT_ERRORS = r"StopConsumer|CancelledError"


def errored() -> pl.Expr:
    """Rows with an error status (a consumer's normal StopConsumer is not an error)."""
    benign = pl.col("exception").str.contains(_NOT_ERRORS).fill_null(False)
    return (pl.col("status") == "error") & ~benign


def chunk_key() -> pl.Expr:
    """What counts as one chunk: its ws.seq, else the span itself."""
    return pl.coalesce(pl.col("seq").cast(pl.String), pl.col("span_id"))


def _count_chunks(hop: str, *, ok_only: bool = True) -> pl.Expr:
    cond = hop_is(hop) & ~errored().fill_null(False) if ok_only else hop_is(hop)
    return chunk_key().filter(cond).drop_nulls().n_unique().cast(pl.Int64)


def _first(column: str, cond: pl.Expr) -> pl.Expr:
    return pl.col(column).filter(cond).drop_nulls().first()


def _exc() -> pl.Expr:
    return pl.coalesce(pl.col("exception"), pl.col("status_message"))


def _end() -> pl.Expr:
    return pl.coalesce(pl.col("end_ts"), pl.col("ts"))


def _message_aggs() -> list[pl.Expr]:
    aggs: list[pl.Expr] = [
        pl.coalesce(
            _first("connection_id", hop_is(c.HOP_RECEIVE)),
            pl.col("connection_id").drop_nulls().first(),
        ).alias("connection_id"),
        pl.col("ts").min().alias("first_ts"),
        _end().max().alias("last_ts"),
        pl.col("service").filter(hop_is(c.HOP_TASK)).drop_nulls().first().alias("task_service"),
    ]
    for hop in MESSAGE_HOPS:
        is_hop = hop_is(hop)
        bad = is_hop & errored()
        aggs += [
            is_hop.sum().cast(pl.Int64).alias(f"n_{hop}"),
            bad.any().alias(f"err_{hop}"),
            _exc().filter(bad).drop_nulls().first().alias(f"exc_{hop}"),
            _first("cause", is_hop).alias(f"cause_{hop}"),
            pl.col("ts").filter(is_hop).min().alias(f"ts_{hop}"),
            pl.col("ts").filter(bad).min().alias(f"err_ts_{hop}"),
        ]
    publish = hop_is(c.HOP_PUBLISH)
    empty = publish & ((pl.col("members") == 0) | (pl.col("receivers") == 0))
    full = publish & (
        (pl.col("over_capacity") > 0)
        | (pl.col("event") == c.EV_CHANNEL_FULL)
        | (pl.col("name") == c.EV_CHANNEL_FULL)
        | pl.col("exception").str.contains(_EXC_CHANNEL_FULL)
    )
    task = hop_is(c.HOP_TASK)
    aggs += [
        _first("queue", hop_is(c.HOP_ENQUEUE)).alias("queue"),
        pl.coalesce(_first("task_name", hop_is(c.HOP_ENQUEUE)), _first("task_name", task)).alias(
            "task_name"
        ),
        pl.col("task_id").filter(task).drop_nulls().n_unique().cast(pl.Int64).alias("task_ids"),
        (task & pl.col("end_ts").is_null()).any().alias("task_unended"),
        pl.col("end_ts").filter(task).max().alias("task_end_ts"),
        pl.coalesce(_first("exception", task), pl.lit(None, pl.String)).alias("task_exception"),
        _count_chunks(c.HOP_PUBLISH).alias("published"),
        _count_chunks(c.HOP_PUBLISH, ok_only=False).alias("publish_attempts"),
        _count_chunks(c.HOP_DELIVER).alias("delivered"),
        pl.col("seq")
        .filter(hop_is(c.HOP_SEND) & ~errored().fill_null(False))
        .drop_nulls()
        .n_unique()
        .cast(pl.Int64)
        .alias("sent"),
        empty.any().alias("empty_publish"),
        pl.col("ts").filter(empty).min().alias("empty_publish_ts"),
        pl.col("members").filter(publish).min().alias("min_members"),
        pl.col("receivers").filter(publish).min().alias("min_receivers"),
        pl.col("over_capacity").filter(publish).sum().cast(pl.Int64).alias("over_capacity"),
        full.any().alias("channel_full"),
        _first("layer", publish).alias("publish_layer"),
        _first("group", publish).alias("publish_group"),
        _first("event", publish).alias("publish_event"),
        _first("message_type", publish).alias("message_type"),
        pl.col("ts").filter(publish).max().alias("last_publish_ts"),
        _first("connection_id", hop_is(c.HOP_DELIVER)).alias("deliver_connection_id"),
        chunk_key()
        .filter((pl.col("event") == _EV_BUFFER_OVERFLOW) | (pl.col("name") == _SPAN_DROP))
        .drop_nulls()
        .n_unique()
        .cast(pl.Int64)
        .alias("dropped"),
    ]
    return aggs


def _latest_error(column: str) -> pl.Expr:
    """Value of ``{column}_{hop}`` at the latest errored hop along the chain."""
    out = None
    for hop in reversed(MESSAGE_HOPS):
        value = pl.lit(hop) if column == "hop" else pl.col(f"{column}_{hop}")
        cond = pl.col(f"err_{hop}")
        out = pl.when(cond).then(value) if out is None else out.when(cond).then(value)
    return out.otherwise(None)


def message_facts(events: pl.LazyFrame) -> pl.LazyFrame:
    """One row per (conversation_id, message_id) with how far the message got."""
    rows = events.filter(
        pl.col("message_id").is_not_null()
        & pl.col("conversation_id").is_not_null()
        & pl.col("hop").is_in(MESSAGE_HOPS)
    )
    facts = rows.group_by("conversation_id", "message_id").agg(_message_aggs())
    n = pl.col
    return facts.with_columns(
        err_hop=_latest_error("hop"),
        err_exc=_latest_error("exc"),
        err_cause=_latest_error("cause"),
        err_ts=_latest_error("err_ts"),
        task_seen=(n("n_task") > 0) | (n("n_publish") > 0),
        task_open=n("task_unended") | ((n("n_task") == 0) & (n("n_publish") > 0)),
        duplicate_tasks=(n("task_ids") > 0) & (n("n_task") > n("task_ids")),
    ).with_columns(
        any_error=n("err_hop").is_not_null(),
        exc_unavailable=n("err_exc").str.contains(_EXC_UNAVAILABLE).fill_null(False),
        exc_channel_full=n("err_exc").str.contains(_EXC_CHANNEL_FULL).fill_null(False),
        exc_stuck=n("err_exc").str.contains(_EXC_STUCK).fill_null(False),
        complete=(
            (n("published") > 0)
            & (n("sent") >= n("published"))
            & (n("delivered") >= n("published"))
            & (n("publish_attempts") <= n("published"))
            | (n("publish_attempts") == 0) & (n("n_enqueue") == 0) & (n("n_send") > 0)
        )
        & ~n("task_open"),
        first_missing=pl.when(n("n_receive") == 0)
        .then(pl.lit(c.HOP_RECEIVE))
        .when((n("n_enqueue") == 0) & ~n("task_seen") & (n("n_deliver") == 0) & (n("n_send") == 0))
        .then(pl.lit(c.HOP_ENQUEUE))
        .when((n("n_enqueue") > 0) & ~n("task_seen"))
        .then(pl.lit(c.HOP_TASK))
        .when(n("task_seen") & (n("publish_attempts") == 0) & (n("n_send") == 0))
        .then(pl.lit(c.HOP_PUBLISH))
        .when(n("delivered") < n("published"))
        .then(pl.lit(c.HOP_DELIVER))
        .when(n("sent") < pl.max_horizontal("delivered", "published"))
        .then(pl.lit(c.HOP_SEND))
        .when(n("task_open"))
        .then(pl.lit(c.HOP_TASK))
        .otherwise(pl.lit(c.HOP_SEND)),
    )


_CONN_SPANS = (c.SPAN_CONNECT, c.SPAN_AUTH, c.SPAN_ACCEPT, c.SPAN_CLOSE, c.SPAN_DISCONNECT)


def connection_facts(events: pl.LazyFrame) -> pl.LazyFrame:
    """One row per (conversation_id, connection_id): handshake, close and group membership."""
    rows = events.filter(
        pl.col("connection_id").is_not_null()
        & pl.col("conversation_id").is_not_null()
        & (
            pl.col("hop").is_in(c.CONNECTION_HOPS)
            | pl.col("name").is_in(_CONN_SPANS)
            | pl.col("event").is_in((c.EV_GROUP_ADD, c.EV_GROUP_DISCARD))
        )
    )
    name = pl.col("name")
    is_close = (name == c.SPAN_CLOSE) | pl.col("event").is_in((c.EV_CLOSE, c.EV_REJECT))
    is_disc = (name == c.SPAN_DISCONNECT) | (pl.col("event") == c.EV_DISCONNECT)
    is_connect = (name == c.SPAN_CONNECT) | (pl.col("event") == c.EV_CONNECT)
    is_auth = (name == c.SPAN_AUTH) | (pl.col("event") == c.EV_AUTH)
    group_add = pl.col("event") == c.EV_GROUP_ADD
    facts = rows.group_by("conversation_id", "connection_id").agg(
        pl.coalesce(pl.col("ts").filter(is_connect).min(), pl.col("ts").min()).alias("opened"),
        _end().max().alias("last_ts"),
        ((name == c.SPAN_ACCEPT) | (pl.col("event") == c.EV_ACCEPT)).any().alias("has_accept"),
        (pl.col("handshake_rejected").fill_null(False) | (pl.col("event") == c.EV_REJECT))
        .any()
        .alias("handshake_rejected"),
        (pl.col("origin_allowed") == False).any().alias("origin_denied"),  # noqa: E712
        (pl.col("user_authenticated") == False).any().alias("anonymous"),  # noqa: E712
        (is_auth & errored()).any().alias("auth_error"),
        _exc().filter(is_auth & errored()).drop_nulls().first().alias("auth_exc"),
        _first("cause", is_connect).alias("connect_cause"),
        _first("cause", is_auth).alias("auth_cause"),
        _first("close_code", is_connect).alias("connect_code"),
        is_close.any().alias("server_closed"),
        _first("close_code", is_close).alias("server_close_code"),
        _first("cause", is_close).alias("server_close_cause"),
        pl.col("ts").filter(is_close).min().alias("server_close_ts"),
        is_disc.any().alias("disconnected"),
        _first("close_code", is_disc).alias("disconnect_code"),
        _first("closed_by", is_disc).alias("disconnect_by"),
        _first("cause", is_disc).alias("disconnect_cause"),
        (is_disc & (errored() | (pl.col("close_code") == 1011))).any().alias("crashed"),
        _exc().filter(is_disc & errored()).drop_nulls().first().alias("crash_exc"),
        pl.col("ts").filter(is_disc).min().alias("disconnect_ts"),
        _first("layer", group_add).alias("group_layer"),
        _first("group", group_add).alias("group"),
        pl.col("ts").filter(group_add).min().alias("group_add_ts"),
    )
    n = pl.col
    return facts.with_columns(
        close_code=pl.coalesce("server_close_code", "disconnect_code", "connect_code"),
        closed=pl.coalesce("disconnect_ts", "server_close_ts"),
        closed_by=pl.when(n("server_closed") | n("crashed"))
        .then(pl.lit("server"))
        .otherwise(n("disconnect_by")),
        accepted=n("has_accept") & ~n("handshake_rejected"),
    )


def consumer_layers(events: pl.LazyFrame) -> pl.LazyFrame:
    """Per conversation: the layer fingerprints its consumers joined groups on."""
    return (
        events.filter(
            (pl.col("event") == c.EV_GROUP_ADD)
            & pl.col("layer").is_not_null()
            & pl.col("conversation_id").is_not_null()
        )
        .group_by("conversation_id")
        .agg(pl.col("layer").unique().sort().alias("consumer_layers"))
    )


def consumed_queues(events: pl.LazyFrame) -> pl.LazyFrame:
    """The queues every ready worker consumes (one row; empty list when unknown)."""
    ready = events.filter(
        (pl.col("event") == c.EV_WORKER_READY) | (pl.col("name") == c.SPAN_WORKER_READY)
    )
    return ready.select(
        pl.col("queues").explode().drop_nulls().unique().sort().implode().alias("consumed_queues"),
        (pl.len() > 0).alias("workers_known"),
    )
