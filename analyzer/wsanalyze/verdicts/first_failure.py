"""A conversation's verdict: its first failure in time, else what is still in flight.

One polars aggregation (``verdict_items``) picks, per conversation, the message or
connection its verdict names and counts what the verdict text needs; one function
(``conversation_verdict``) turns that row into a ``Verdict``. ``conversations``
runs them over every conversation at once and ``conversation`` over one, so the
two commands cannot disagree: they only word the named item differently (a list
row says outcome, hop and cause; a report adds the item's own summary line).

The ranking, earliest first:

* failures (lost, rejected, or delivered with a cause other than ``ok``) by when
  they failed, then messages before connections (a message says which answer was
  lost), then the earlier hop, then the one that started first; from logs, a
  message a server close cut off ranks after the connection, which tells that close;
* else the first message still in flight, by when it started.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import polars as pl
from wstrace import conventions as c

from ..report import Verdict
from .logchains import RANK

HOP_RANK = {hop: i for i, hop in enumerate(c.HOPS)}
"""Earlier hops first when failures tie in time."""

NO_MESSAGES_IN_LOGS = (
    "from logs only: the connection opened and closed and no line ties a task or message to "
    "it; Daphne logs no frames, so whether messages were sent (and a server close code) is "
    "not in the logs. wstrace's ws.receive spans, or app lines naming the conversation, "
    "would tell"
)

ITEM_FIELDS = ("kind", "item_id", "outcome", "hop", "cause", "confidence")
"""What the verdict takes from the message or connection it names."""

Describe = Callable[[Mapping[str, Any]], str]
"""The verdict's text for the item it names (a struct of ``ITEM_FIELDS``)."""


def candidates(msgs: pl.LazyFrame, conns: pl.LazyFrame) -> pl.LazyFrame:
    """Message and connection verdict rows as one frame of candidates per conversation.

    ``at`` is when it failed; ``kind_rank`` orders a message before a connection failing
    at the same moment, except a log-only message a server close cut off: the
    connection's verdict tells that close (the message's is its consequence).
    ``start`` (a message's first row, a connection's opening) breaks the remaining ties
    as a report lists its messages and connections.
    """
    m = msgs.select(
        "conversation_id",
        pl.lit("message").alias("kind"),
        pl.col("message_id").alias("item_id"),
        "outcome",
        "hop",
        "cause",
        pl.col("failed_ts").alias("at"),
        "is_failure",
        pl.when((pl.col("rule") == "server_close") & pl.col("log_only"))
        .then(pl.lit(2))
        .otherwise(pl.lit(0))
        .alias("kind_rank"),
        pl.col("first_ts").alias("start"),
        pl.col("confidence").fill_null("exact"),
        pl.lit(False).alias("log_conn"),
    )
    k = conns.select(
        "conversation_id",
        pl.lit("connection").alias("kind"),
        pl.col("connection_id").alias("item_id"),
        "outcome",
        "hop",
        "cause",
        pl.col("close_ts").alias("at"),
        pl.col("outcome").is_in(["rejected", "lost"]).alias("is_failure"),
        pl.lit(1).alias("kind_rank"),
        pl.col("opened").alias("start"),
        pl.col("confidence").fill_null("exact"),
        pl.col("log_only").fill_null(False).alias("log_conn"),
    )
    return pl.concat([m, k], how="vertical_relaxed")


def verdict_items(msgs: pl.LazyFrame, conns: pl.LazyFrame) -> pl.LazyFrame:
    """Per conversation: its first failure (``fail``), first in-flight message (``pending``),
    the weakest confidence of its messages, and its counts of connections and messages.

    ``msgs`` / ``conns`` are ``message_verdicts`` / ``connection_verdicts`` frames, of
    every conversation or of one.
    """
    hop_rank = pl.col("hop").replace_strict(HOP_RANK, default=99, return_dtype=pl.Int32)
    by_failure = [pl.col("at"), pl.col("kind_rank"), hop_rank.fill_null(99), pl.col("start")]
    by_start = [pl.col("start")]
    is_msg = pl.col("kind") == "message"
    in_flight = is_msg & (pl.col("outcome") == "in_flight")
    names = {rank: name for name, rank in RANK.items()}
    return (
        candidates(msgs, conns)
        .group_by("conversation_id")
        .agg(
            _earliest(pl.col("is_failure").fill_null(False), by_failure).alias("fail"),
            _earliest(in_flight, by_start).alias("pending"),
            pl.col("confidence")
            .filter(is_msg)
            .replace_strict(RANK, default=0, return_dtype=pl.Int32)
            .max()
            .fill_null(0)
            .replace_strict(names, return_dtype=pl.String)
            .alias("weakest"),
            pl.col("log_conn").sum().alias("log_connections"),
            (pl.col("kind") == "connection").sum().alias("connections"),
            is_msg.sum().alias("messages"),
            (is_msg & (pl.col("outcome") == "lost")).sum().alias("lost"),
            (is_msg & (pl.col("outcome") == "delivered")).sum().alias("delivered"),
            in_flight.sum().alias("in_flight"),
        )
    )


def _earliest(cond: pl.Expr, keys: list[pl.Expr]) -> pl.Expr:
    """The first item (a struct of ``ITEM_FIELDS``) where ``cond`` holds, ordered by ``keys``
    then the item's id: a total order, so no tie is broken by how a sort ran."""
    keys = [*keys, pl.col("item_id")]
    return (
        pl.struct(ITEM_FIELDS)
        .filter(cond)
        .sort_by([key.filter(cond) for key in keys], nulls_last=True)
        .first()
    )


def conversation_verdict(row: Mapping[str, Any] | None, describe: Describe) -> Verdict:
    """The verdict of one ``verdict_items`` row (None: no connection or message at all)."""
    row = row or {}
    item = row.get("fail") or row.get("pending")
    if item and item.get("outcome"):
        return Verdict(
            item["outcome"], item["hop"], item["cause"], describe(item), item["confidence"]
        )
    if row.get("messages"):
        weakest = row.get("weakest") or "exact"
        text = f"all {row['messages']} message(s) delivered"
        if weakest == "inferred":
            text += " (inferred from logs: no line shows the answers reaching the client)"
        return Verdict("delivered", "send", "ok", text, weakest)
    if row.get("connections") and row.get("log_connections") == row.get("connections"):
        return Verdict("unknown", None, "unknown", NO_MESSAGES_IN_LOGS, "path")
    if row.get("connections"):
        return Verdict("delivered", None, "ok", "connected; no messages were sent", "exact")
    return Verdict("lost", None, "unknown", "no connection or message spans")
