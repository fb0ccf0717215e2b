"""Message and conversation ids for rows the instrumentation could not tag.

A subscriber's read of a raw pub/sub message, the frames it forwards, an HTTP
request whose conversation is known only by the group it published to: their rows
carry no message or conversation id, or only one of them. Each takes the ids of
what it is provably part of (the PUBLISH it read, the delivery it ran under, the
conversation whose connections joined its group) before any fact is counted.
"""

from __future__ import annotations

import polars as pl
from wstrace import conventions as c

_PUB, _DLV, _SEND = c.HOP_PUBLISH, c.HOP_DELIVER, c.HOP_SEND


def is_hop(hop: str) -> pl.Expr:
    """Rows of one hop (never null)."""
    return (pl.col("hop") == hop).fill_null(False)


def split_rows(frame: pl.DataFrame, cond: pl.Expr) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows where ``cond`` holds, the others): joins run on the few rows that need them."""
    mask = frame.select(cond.fill_null(False).alias("m"))["m"]
    return frame.filter(mask), frame.filter(~mask)


def _fill_from_hash(events: pl.DataFrame) -> pl.DataFrame:
    """A subscriber's read takes the message (and conversation) of the PUBLISH it read.

    Adds ``_pub_of`` to every row: for a delivery, the publish it delivered (its
    parent, or on raw pub/sub the earliest PUBLISH with the same payload hash).
    """
    events = events.with_columns(
        _pub_of=pl.when(is_hop(_DLV)).then(pl.col("parent_span_id")).otherwise(pl.lit(None))
    )
    reads, rest = split_rows(events, is_hop(_DLV) & pl.col("payload_hash").is_not_null())
    if reads.is_empty():
        return events
    pubs = (
        events.filter(is_hop(_PUB) & pl.col("payload_hash").is_not_null())
        .sort("ts")
        .group_by("payload_hash")
        .agg(
            pl.col("span_id").first().alias("_h_pub"),
            pl.col("message_id").drop_nulls().first().alias("_h_msg"),
            pl.col("conversation_id").drop_nulls().first().alias("_h_conv"),
        )
    )
    reads = (
        reads.join(pubs, on="payload_hash", how="left")
        .with_columns(
            message_id=pl.coalesce("message_id", "_h_msg"),
            conversation_id=pl.coalesce("conversation_id", "_h_conv"),
            _pub_of=pl.coalesce("_h_pub", "_pub_of"),
        )
        .drop("_h_pub", "_h_msg", "_h_conv")
    )
    return pl.concat([rest, reads], how="vertical_relaxed")


def _fill_from_parent(events: pl.DataFrame) -> pl.DataFrame:
    """Frames written under a delivery (or a request) take its message id when they lack one."""
    orphans, rest = split_rows(
        events,
        pl.col("message_id").is_null()
        & pl.col("parent_span_id").is_not_null()
        & pl.col("hop").is_in((_SEND, c.HOP_ENQUEUE, _PUB)),
    )
    if orphans.is_empty():
        return events
    parents = (
        events.filter(pl.col("span_id").is_not_null() & pl.col("message_id").is_not_null())
        .select(
            pl.col("span_id").alias("_p_span"),
            pl.col("message_id").alias("_p_msg"),
            pl.col("conversation_id").alias("_p_conv"),
        )
        .unique("_p_span", keep="first")
    )
    orphans = (
        orphans.join(parents, left_on="parent_span_id", right_on="_p_span", how="left")
        .with_columns(
            message_id=pl.col("_p_msg"),
            conversation_id=pl.coalesce("conversation_id", "_p_conv"),
        )
        .drop("_p_msg", "_p_conv")
    )
    return pl.concat([rest, orphans], how="vertical_relaxed")


def group_targets(events: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(conversation, group) and (conversation, channel) pairs its connections joined."""
    adds = events.filter(
        (pl.col("event") == c.EV_GROUP_ADD).fill_null(False)
        & pl.col("conversation_id").is_not_null()
    )
    groups = (
        adds.filter(pl.col("group").is_not_null())
        .select("conversation_id", pl.col("group").alias("_target"))
        .unique()
    )
    channels = (
        adds.filter(pl.col("channel").is_not_null())
        .select("conversation_id", pl.col("channel").alias("_target"))
        .unique()
    )
    return groups, channels


def _fill_conversation(events: pl.DataFrame, groups: pl.DataFrame) -> pl.DataFrame:
    """A message with no conversation (an HTTP request) takes the one whose connections it answered."""
    loose, rest = split_rows(
        events, pl.col("message_id").is_not_null() & pl.col("conversation_id").is_null()
    )
    if loose.is_empty():
        return events
    ids = loose.select(pl.col("message_id").unique())
    by_message = (
        rest.filter(pl.col("conversation_id").is_not_null())
        .join(ids, on="message_id", how="semi")
        .group_by("message_id")
        .agg(pl.col("conversation_id").first().alias("_m_conv"))
    )
    by_group = (
        loose.filter(is_hop(_PUB) & pl.col("group").is_not_null())
        .select("message_id", pl.col("group").alias("_target"))
        .join(groups, on="_target", how="inner")
        .group_by("message_id")
        .agg(pl.col("conversation_id").first().alias("_g_conv"))
    )
    loose = (
        loose.join(by_message, on="message_id", how="left")
        .join(by_group, on="message_id", how="left")
        .with_columns(conversation_id=pl.coalesce("_m_conv", "_g_conv"))
        .drop("_m_conv", "_g_conv")
    )
    return pl.concat([rest, loose], how="vertical_relaxed")


def fill_ids(events: pl.LazyFrame) -> pl.LazyFrame:
    """Message and conversation ids for rows the instrumentation could not tag.

    A subscriber's read takes them from the PUBLISH it read (payload hash), a frame
    written under a delivery from the delivery, an HTTP-started message from the
    conversation whose connections joined the group it published to. Adds
    ``_pub_of`` (the publish a delivery delivered). Idempotent.
    """
    if "_pub_of" in events.collect_schema().names():
        return events
    # Eager and on subsets: each step joins the few rows that need it with an
    # aggregate of the table (a lazy plan would repeat every earlier step per use).
    frame = _fill_from_hash(events.collect())
    frame = _fill_from_parent(frame)
    groups, _ = group_targets(frame)
    return _fill_conversation(frame, groups).lazy()
