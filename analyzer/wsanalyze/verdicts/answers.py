"""What a message's answer is: which publishes answer the conversation, in which stream.

Real apps publish more than the answer: an echo of the message to the room, a
"typing…" event, fan-out to per-user notification groups that are usually
empty, a second task. Counting all of that as "the answer" hides a lost answer
behind a delivered echo and turns an empty notification group into a loss.
This module annotates the rows of the event table so that the message facts
count real chunks:

* a publish **answers** the conversation when it targets a group the message's
  own connection joined (at any time: a stream may begin before the join), or a
  group one of the conversation's connections was a member of when it was
  published, or one of their channels directly, or is a raw Redis PUBLISH (read
  by the conversation's own subscriber); any other publish is a **side
  effect** — a per-user group whose socket had left, a bot's group — shown and
  counted, never the reason for a verdict. A conversation with no recorded
  membership at all (a layer wstrace cannot see into) keeps every publish as an
  answer;
* a publish's **stream** is the run that produced it: the nearest enclosing
  ``ws.receive`` / HTTP request / ``ws.task`` / ``ws.deliver`` span, else its
  parent (which, when absent from the store, is a process that died before it
  exported);
* a chunk is one publish span; it was **delivered** once per ``ws.deliver``
  span whose parent is that publish (one per receiving connection), or, on raw
  pub/sub, whose payload hash equals the publish's; it was **sent** once per
  ``ws.send`` under such a delivery.

Rows the instrumentation could not tag get their ids first (``untagged``); what
each stream and receiving connection got is counted in ``breakdown``.
"""

from __future__ import annotations

import polars as pl
from wstrace import conventions as c

from .logchains import raw_log
from .untagged import fill_ids, group_targets, is_hop, split_rows

_NOT_HOPS = (c.EV_GROUP_ADD, c.EV_GROUP_DISCARD, c.EV_REVOKE, c.EV_WORKER_READY)
_RUN_EVENTS = (c.EV_RECEIVE, c.EV_HTTP_REQUEST, c.EV_TASK, c.EV_DELIVER, c.EV_REDIS_MESSAGE)


def is_chain_row(events_hop: pl.Expr | None = None) -> pl.Expr:
    """Rows that are a hop of a message's chain (not membership, revoke calls or worker facts)."""
    hop = pl.col("hop") if events_hop is None else events_hop
    return (
        hop.is_in(c.MESSAGE_HOPS)
        & ~pl.col("event").is_in(_NOT_HOPS).fill_null(False)
        & (pl.col("name") != c.SPAN_REVOKE).fill_null(True)
    ).fill_null(False)


def _is_run() -> pl.Expr:
    """Spans that start a unit of work: what a publish's stream is named after."""
    return (
        pl.col("event").is_in(_RUN_EVENTS)
        | (pl.col("hop").is_in((c.HOP_RECEIVE, c.HOP_TASK)) & pl.col("name").ne(c.SPAN_REVOKE))
    ).fill_null(False)


_PUB, _DLV, _SEND = c.HOP_PUBLISH, c.HOP_DELIVER, c.HOP_SEND


def not_errored() -> pl.Expr:
    """Rows that did not error (a consumer's normal StopConsumer is no error)."""
    benign = pl.col("exception").str.contains(r"StopConsumer|CancelledError").fill_null(False)
    return ~((pl.col("status") == "error") & ~benign).fill_null(False)


def _memberships(events: pl.DataFrame) -> pl.DataFrame:
    """Per (conversation, connection, group): when the connection joined it and when it left.

    Left = its ``ws.group_discard``, else the connection's end (disconnect or close),
    else never (still a member when the data ends).
    """
    conv = pl.col("conversation_id").is_not_null() & pl.col("connection_id").is_not_null()
    adds = (
        events.filter((pl.col("event") == c.EV_GROUP_ADD).fill_null(False) & conv)
        .filter(pl.col("group").is_not_null())
        .group_by("conversation_id", "connection_id", "group")
        .agg(pl.col("ts").min().alias("_joined"))
    )
    discards = (
        events.filter((pl.col("event") == c.EV_GROUP_DISCARD).fill_null(False) & conv)
        .filter(pl.col("group").is_not_null())
        .group_by("connection_id", "group")
        .agg(pl.col("ts").max().alias("_discarded"))
    )
    ended = (
        events.filter(
            pl.col("connection_id").is_not_null()
            & (
                pl.col("name").is_in((c.SPAN_DISCONNECT, c.SPAN_CLOSE))
                | pl.col("event").is_in((c.EV_DISCONNECT, c.EV_CLOSE))
            ).fill_null(False)
        )
        .group_by("connection_id")
        .agg(pl.col("ts").min().alias("_ended"))
    )
    return (
        adds.join(discards, on=["connection_id", "group"], how="left")
        .join(ended, on="connection_id", how="left")
        .with_columns(_left=pl.coalesce("_discarded", "_ended"))
        .select(
            "conversation_id", "connection_id", pl.col("group").alias("_target"), "_joined", "_left"
        )
    )


def annotate(events: pl.LazyFrame) -> pl.LazyFrame:
    """The event table with ids filled in and per-row answer facts (``_answers``, ``_stream`` …).

    Added columns: ``_chain`` (a hop of a message chain), ``_answers`` (a publish
    that answers its conversation), ``_stream`` / ``_stream_absent`` (publishes),
    ``_pub_of`` (the publish a delivery delivered), ``_n_dlv`` / ``_n_sent`` /
    ``_n_unsent`` (publishes: successful deliveries, frames sent for them,
    deliveries with no frame), ``_d_sends`` (deliveries: frames sent under it),
    ``_dlv_orphan`` (a delivery whose publish is absent), ``_parent_hop``.
    """
    frame = fill_ids(events).collect()
    _, channels = group_targets(frame)
    spans = (
        frame.filter(pl.col("span_id").is_not_null())
        .select(
            pl.col("span_id").alias("_a_span"),
            pl.col("parent_span_id").alias("_a_parent"),
            _is_run().alias("_a_run"),
            pl.col("hop").alias("_parent_hop"),
        )
        .unique("_a_span", keep="first")
    )
    ok_sends = (
        frame.filter(is_hop(_SEND) & not_errored() & pl.col("parent_span_id").is_not_null())
        .group_by("parent_span_id")
        .agg(pl.len().cast(pl.Int64).alias("_sends"))
    )
    senders = (
        frame.filter(
            is_hop(c.HOP_RECEIVE)
            & pl.col("message_id").is_not_null()
            & pl.col("connection_id").is_not_null()
        )
        .group_by("message_id")
        .agg(pl.col("connection_id").first().alias("_sender"))
    )
    pubs, rest = split_rows(frame, is_hop(_PUB))
    pubs = pubs.join(senders, on="message_id", how="left")
    dlvs, rest = split_rows(rest, is_hop(_DLV))
    sends, rest = split_rows(rest, is_hop(_SEND))
    pubs = _publish_facts(pubs, spans, _memberships(frame), channels, dlvs, ok_sends)
    present = pubs.select(pl.col("span_id").drop_nulls().unique().alias("_present"))
    dlvs = (
        dlvs.join(ok_sends, left_on="span_id", right_on="parent_span_id", how="left")
        .with_columns(
            _d_sends=pl.col("_sends").fill_null(0).cast(pl.Int64),
            _dlv_orphan=pl.col("_pub_of").is_not_null()
            & ~pl.col("_pub_of").is_in(present["_present"].implode()),
        )
        .drop("_sends")
    )
    sends = sends.join(
        spans.select("_a_span", "_parent_hop"),
        left_on="parent_span_id",
        right_on="_a_span",
        how="left",
    )
    out = pl.concat([pubs, dlvs, sends, rest], how="diagonal_relaxed")
    return out.with_columns(
        _answers=pl.col("_answers").fill_null(False),
        _stream_absent=pl.col("_stream_absent").fill_null(False),
        _dlv_orphan=pl.col("_dlv_orphan").fill_null(False),
        # raw log lines are evidence to show; their chain rows (verdicts.logchains) count
        _chain=is_chain_row() & ~raw_log(),
    ).lazy()


def _publish_facts(
    pubs: pl.DataFrame,
    spans: pl.DataFrame,
    members: pl.DataFrame,
    channels: pl.DataFrame,
    dlvs: pl.DataFrame,
    ok_sends: pl.DataFrame,
) -> pl.DataFrame:
    """Stream, answering or not, and what became of each publish."""
    # the stream: the nearest enclosing run span (two levels up), else the parent
    up = pubs.join(
        spans.drop("_parent_hop"), left_on="parent_span_id", right_on="_a_span", how="left"
    ).join(
        spans.drop("_parent_hop").rename(
            {"_a_span": "_b_span", "_a_parent": "_b_parent", "_a_run": "_b_run"}
        ),
        left_on="_a_parent",
        right_on="_b_span",
        how="left",
    )
    up = up.with_columns(
        _stream=pl.when(pl.col("_a_run").fill_null(False))
        .then(pl.col("parent_span_id"))
        .when(pl.col("_b_run").fill_null(False))
        .then(pl.col("_a_parent"))
        .otherwise(pl.coalesce("parent_span_id", "span_id")),
        # the producing run is absent from the store: its process died before exporting
        _stream_absent=pl.col("parent_span_id").is_not_null() & pl.col("_a_run").is_null(),
        _target=pl.coalesce("group", "channel"),
        _row=pl.int_range(pl.len()),
    ).drop("_a_run", "_a_parent", "_b_run", "_b_parent")
    return _answering(up, members, channels, dlvs, ok_sends)


def _answering(
    up: pl.DataFrame,
    members: pl.DataFrame,
    channels: pl.DataFrame,
    dlvs: pl.DataFrame,
    ok_sends: pl.DataFrame,
) -> pl.DataFrame:
    """Whether each publish answers its conversation, and its delivery counts.

    It answers when its group was joined by the message's own connection (at any
    time: a stream that began before the consumer joined is still its answer), or
    had a member among the conversation's connections when it was published (a
    per-user group whose socket had left is nobody's answer any more), or targets
    one of their channels, or is a raw PUBLISH. A conversation with no recorded
    membership keeps every publish as an answer.
    """
    candidates = up.select("_row", "conversation_id", "_target", "ts", "_sender").join(
        members, on=["conversation_id", "_target"], how="inner"
    )
    by_sender = candidates.filter(pl.col("connection_id") == pl.col("_sender"))
    at_time = candidates.filter(
        (pl.col("_joined") <= pl.col("ts"))
        & (pl.col("_left").is_null() | (pl.col("_left") > pl.col("ts")))
    )
    answering_rows = pl.concat([by_sender.select("_row"), at_time.select("_row")]).unique()
    known = members.select("conversation_id").unique()
    unknown_rows = up.join(known, on="conversation_id", how="anti").select("_row")
    channel_rows = up.join(channels, on=["conversation_id", "_target"], how="semi").select("_row")
    yes = pl.concat([answering_rows, unknown_rows, channel_rows]).unique()["_row"].implode()
    up = up.with_columns(
        _answers=pl.col("_row").is_in(yes)
        | (pl.col("event") == c.EV_REDIS_PUBLISH).fill_null(False)
    ).drop("_target", "_row", "_sender")
    per_delivery = (
        dlvs.filter(not_errored() & (pl.col("event") != c.EV_BUFFER_OVERFLOW).fill_null(True))
        .filter(pl.col("_pub_of").is_not_null())
        .select("span_id", "_pub_of")
        .join(ok_sends, left_on="span_id", right_on="parent_span_id", how="left")
        .group_by("_pub_of")
        .agg(
            pl.len().cast(pl.Int64).alias("_n_dlv"),
            pl.col("_sends").fill_null(0).sum().cast(pl.Int64).alias("_n_sent"),
            (pl.col("_sends").fill_null(0) == 0).sum().cast(pl.Int64).alias("_n_unsent"),
        )
    )
    return (
        up.drop("_pub_of")
        .join(per_delivery, left_on="span_id", right_on="_pub_of", how="left")
        .with_columns(
            _n_dlv=pl.col("_n_dlv").fill_null(0),
            _n_sent=pl.col("_n_sent").fill_null(0),
            _n_unsent=pl.col("_n_unsent").fill_null(0),
        )
    )
