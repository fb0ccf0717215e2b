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

Rows of other processes that the instrumentation could not tag (a subscriber's
read, the frames it forwards, an HTTP request whose conversation is known only
by the group it published to) get their message and conversation ids here.
"""

from __future__ import annotations

import polars as pl
from wstrace import conventions as c

from .logchains import raw_log

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


def _is(hop: str) -> pl.Expr:
    return (pl.col("hop") == hop).fill_null(False)


def _split(frame: pl.DataFrame, cond: pl.Expr) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(rows where ``cond`` holds, the others): joins run on the few rows that need them."""
    mask = frame.select(cond.fill_null(False).alias("m"))["m"]
    return frame.filter(mask), frame.filter(~mask)


def _fill_from_hash(events: pl.DataFrame) -> pl.DataFrame:
    """A subscriber's read takes the message (and conversation) of the PUBLISH it read.

    Adds ``_pub_of`` to every row: for a delivery, the publish it delivered (its
    parent, or on raw pub/sub the earliest PUBLISH with the same payload hash).
    """
    events = events.with_columns(
        _pub_of=pl.when(_is(_DLV)).then(pl.col("parent_span_id")).otherwise(pl.lit(None))
    )
    reads, rest = _split(events, _is(_DLV) & pl.col("payload_hash").is_not_null())
    if reads.is_empty():
        return events
    pubs = (
        events.filter(_is(_PUB) & pl.col("payload_hash").is_not_null())
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
    orphans, rest = _split(
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


def _membership(events: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
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


def _fill_conversation(events: pl.DataFrame, groups: pl.DataFrame) -> pl.DataFrame:
    """A message with no conversation (an HTTP request) takes the one whose connections it answered."""
    loose, rest = _split(
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
        loose.filter(_is(_PUB) & pl.col("group").is_not_null())
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
    groups, _ = _membership(frame)
    return _fill_conversation(frame, groups).lazy()


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
    _, channels = _membership(frame)
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
        frame.filter(_is(_SEND) & _ok() & pl.col("parent_span_id").is_not_null())
        .group_by("parent_span_id")
        .agg(pl.len().cast(pl.Int64).alias("_sends"))
    )
    senders = (
        frame.filter(
            _is(c.HOP_RECEIVE)
            & pl.col("message_id").is_not_null()
            & pl.col("connection_id").is_not_null()
        )
        .group_by("message_id")
        .agg(pl.col("connection_id").first().alias("_sender"))
    )
    pubs, rest = _split(frame, _is(_PUB))
    pubs = pubs.join(senders, on="message_id", how="left")
    dlvs, rest = _split(rest, _is(_DLV))
    sends, rest = _split(rest, _is(_SEND))
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
        dlvs.filter(_ok() & (pl.col("event") != c.EV_BUFFER_OVERFLOW).fill_null(True))
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


def _ok() -> pl.Expr:
    benign = pl.col("exception").str.contains(r"StopConsumer|CancelledError").fill_null(False)
    return ~((pl.col("status") == "error") & ~benign).fill_null(False)


def _producer() -> pl.Expr:
    """A readable name for the run a stream came from."""
    task = pl.concat_str(
        pl.lit("task "), pl.col("_r_task").fill_null("?"), pl.lit(" on "), pl.col("_r_service")
    )
    return (
        pl.when(pl.col("_r_name").is_null())
        .then(pl.lit("a run whose spans never reached the store (its process died)"))
        .when(pl.col("_r_event") == c.EV_HTTP_REQUEST)
        .then(pl.concat_str(pl.lit("HTTP request on "), pl.col("_r_service")))
        .when(pl.col("_r_hop") == c.HOP_TASK)
        .then(task)
        .when(pl.col("_r_hop") == c.HOP_RECEIVE)
        .then(pl.concat_str(pl.lit("the receive handler on "), pl.col("_r_service")))
        .when(pl.col("_r_hop") == c.HOP_DELIVER)
        .then(pl.concat_str(pl.lit("a delivery handler on "), pl.col("_r_service")))
        .otherwise(pl.concat_str(pl.col("_r_name"), pl.lit(" on "), pl.col("_r_service")))
    )


def breakdown(annotated: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per message and stream, per message and receiving connection) counts of answering chunks."""
    runs = (
        annotated.filter(pl.col("span_id").is_not_null())
        .select(
            pl.col("span_id").alias("_stream"),
            pl.col("name").alias("_r_name"),
            pl.col("event").alias("_r_event"),
            pl.col("hop").alias("_r_hop"),
            pl.col("service").fill_null("?").alias("_r_service"),
            pl.col("task_name").alias("_r_task"),
        )
        .unique("_stream", keep="first")
    )
    ok_pub = (
        (pl.col("hop") == c.HOP_PUBLISH)
        & pl.col("_answers")
        & pl.col("message_id").is_not_null()
        & ~(_raised()).fill_null(False)
    )
    streams = (
        annotated.filter(ok_pub)
        .group_by("message_id", "_stream")
        .agg(
            pl.len().cast(pl.Int64).alias("published"),
            pl.col("_n_dlv").sum().cast(pl.Int64).alias("delivered"),
            pl.col("_n_sent").sum().cast(pl.Int64).alias("sent"),
            (pl.col("_n_dlv") == 0).sum().cast(pl.Int64).alias("gaps"),
            pl.col("ts").min().alias("_first"),
        )
        .join(runs, on="_stream", how="left")
        .with_columns(producer=_producer())
        .sort("message_id", "_first")
        .select(
            "message_id",
            pl.col("_stream").alias("stream"),
            "producer",
            "published",
            "delivered",
            "sent",
            "gaps",
        )
    )
    answering = annotated.filter(ok_pub).select(pl.col("span_id").alias("_pub_of"))
    delivers = annotated.filter(
        (pl.col("hop") == c.HOP_DELIVER)
        & _ok()
        & pl.col("message_id").is_not_null()
        & pl.col("connection_id").is_not_null()
        & (pl.col("event") != c.EV_BUFFER_OVERFLOW)
    )
    receivers = (
        pl.concat(
            [
                delivers.join(answering, on="_pub_of", how="semi"),
                delivers.filter(pl.col("_dlv_orphan")),
            ]
        )
        .group_by("message_id", "connection_id")
        .agg(
            pl.len().cast(pl.Int64).alias("delivered"),
            pl.col("_d_sends").fill_null(0).sum().cast(pl.Int64).alias("sent"),
        )
        .sort("message_id", "connection_id")
    )
    return streams, receivers


def _raised() -> pl.Expr:
    benign = pl.col("exception").str.contains(r"StopConsumer|CancelledError").fill_null(False)
    return pl.col("exception").is_not_null() & ~benign
