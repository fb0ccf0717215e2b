"""Facts per connection: its handshake, how it closed, the groups it joined."""

from __future__ import annotations

import polars as pl
from wstrace import conventions as c

from ..logchains import raw_log
from ._rows import conf_rank, errored, exception_text, first_where, row_end

_CONN_SPANS = (c.SPAN_CONNECT, c.SPAN_AUTH, c.SPAN_ACCEPT, c.SPAN_CLOSE, c.SPAN_DISCONNECT)


def connection_facts(events: pl.LazyFrame) -> pl.LazyFrame:
    """One row per (conversation_id, connection_id): handshake, close and group membership.

    A connection whose conversation id was written only on some spans (a resolver that
    named it from the first frame) gets it on every row first.
    """
    named = (
        events.filter(
            pl.col("connection_id").is_not_null() & pl.col("conversation_id").is_not_null()
        )
        .group_by("connection_id")
        .agg(pl.col("conversation_id").first().alias("_named"))
    )
    events = (
        events.join(named, on="connection_id", how="left", maintain_order="left")
        .with_columns(conversation_id=pl.coalesce("conversation_id", "_named"))
        .drop("_named")
    )
    # connections without a conversation (a notification route) are kept: listed on
    # their own, never part of a conversation's verdict
    rows = events.filter(
        pl.col("connection_id").is_not_null()
        & ~raw_log()
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
        (pl.col("end_ts") - pl.col("ts")).filter(is_connect).max().alias("connect_duration"),
        row_end().max().alias("last_ts"),
        ((name == c.SPAN_ACCEPT) | (pl.col("event") == c.EV_ACCEPT)).any().alias("has_accept"),
        (pl.col("handshake_rejected").fill_null(False) | (pl.col("event") == c.EV_REJECT))
        .any()
        .alias("handshake_rejected"),
        (pl.col("origin_allowed") == False).any().alias("origin_denied"),  # noqa: E712
        (pl.col("user_authenticated") == False).any().alias("anonymous"),  # noqa: E712
        (is_auth & errored()).any().alias("auth_error"),
        exception_text().filter(is_auth & errored()).drop_nulls().first().alias("auth_exc"),
        first_where("cause", is_connect).alias("connect_cause"),
        first_where("cause", is_auth).alias("auth_cause"),
        first_where("close_code", is_connect).alias("connect_code"),
        is_close.any().alias("server_closed"),
        first_where("close_code", is_close).alias("server_close_code"),
        first_where("cause", is_close).alias("server_close_cause"),
        pl.col("ts").filter(is_close).min().alias("server_close_ts"),
        first_where("parent_span_id", is_close).alias("close_parent"),
        is_disc.any().alias("disconnected"),
        first_where("close_code", is_disc).alias("disconnect_code"),
        first_where("closed_by", is_disc).alias("disconnect_by"),
        first_where("cause", is_disc).alias("disconnect_cause"),
        (is_disc & (errored() | (pl.col("close_code") == 1011))).any().alias("crashed"),
        exception_text().filter(is_disc & errored()).drop_nulls().first().alias("crash_exc"),
        pl.col("ts").filter(is_disc).min().alias("disconnect_ts"),
        first_where("layer", group_add).alias("group_layer"),
        first_where("group", group_add).alias("group"),
        pl.col("ts").filter(group_add).min().alias("group_add_ts"),
        pl.col("route").drop_nulls().first().alias("route"),
        (pl.col("source") == "log").fill_null(False).all().alias("log_only"),
        conf_rank().max().alias("confidence_rank"),
        pl.col("detail")
        .filter(pl.col("source") == "log")
        .drop_nulls()
        .str.split("\n")
        .explode()
        .unique(maintain_order=True)
        .alias("log_lines"),
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
