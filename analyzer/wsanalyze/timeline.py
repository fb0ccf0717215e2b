"""The merged timeline of one conversation: every span and log line, in causal order.

Causal order comes from the span tree first, timestamps second. Spans written by
other instrumentations (or by a process whose baggage was lost) may miss the
conversation/connection/message ids; ``attach`` fills them from their parent span,
or from the span they link to. Each span also gets a ``causal_ts``: its own start,
but never earlier than its parent's, so clock skew between containers cannot put a
task before the enqueue that caused it. ``depth`` breaks ties between a parent and
a child that share a causal time. The verdict engine attaches before it judges;
``build_timeline`` orders the rows it shows the same way.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from wstrace import conventions as c

from .report import TimelineEntry

# --- chains: ids, causal time and depth along parent/link spans ----------------------------

_IDS = ("conversation_id", "connection_id", "message_id")
_REF_COLS = ("span_id", *_IDS, "causal_ts", "depth")


def _refs(frame: pl.LazyFrame, prefix: str) -> pl.LazyFrame:
    """One row per span id with what a child inherits from it."""
    return (
        frame.filter(pl.col("span_id").is_not_null())
        .select(_REF_COLS)
        .unique("span_id", keep="first")
        .rename({name: f"{prefix}{name}" for name in _REF_COLS})
    )


def _inherit(frame: pl.LazyFrame) -> pl.LazyFrame:
    """One round: take ids, causal time and depth from the parent (else the first link)."""
    joined = frame.join(
        _refs(frame, "p_"),
        left_on="parent_span_id",
        right_on="p_span_id",
        how="left",
        maintain_order="left",
    ).join(
        _refs(frame, "l_"), left_on="_link", right_on="l_span_id", how="left", maintain_order="left"
    )
    has_parent = pl.col("p_depth").is_not_null()
    has_link = pl.col("l_depth").is_not_null()
    return joined.with_columns(
        *[pl.coalesce(name, f"p_{name}", f"l_{name}").alias(name) for name in _IDS],
        causal_ts=pl.max_horizontal("ts", "p_causal_ts", "l_causal_ts"),
        depth=pl.when(has_parent)
        .then(pl.col("p_depth") + 1)
        .when(has_link)
        .then(pl.col("l_depth") + 1)
        .otherwise(0),
    ).drop([c for c in joined.collect_schema().names() if c.startswith(("p_", "l_"))])


def attach(events: pl.LazyFrame, rounds: int = 12) -> pl.DataFrame:
    """Fill missing ids along parent/link chains and add ``causal_ts`` and ``depth``.

    Each round materializes (the frames are one conversation or one selection), and
    rounds stop as soon as nothing changes; ``rounds`` bounds the chain length
    followed (connect → receive → enqueue → task → publish → deliver → send is
    seven spans deep).
    """
    frame = events.with_columns(
        _link=pl.col("links").list.first(),
        causal_ts=pl.col("ts"),
        depth=pl.lit(0, pl.Int32),
    ).collect()
    for _ in range(rounds):
        nxt = _inherit(frame.lazy()).collect()
        if nxt.equals(frame):
            break
        frame = nxt
    return frame.drop("_link")


def causal_sort(frame: pl.DataFrame) -> pl.DataFrame:
    """Order rows by causal time, then depth, then wall clock."""
    return frame.sort(["causal_ts", "depth", "ts"], nulls_last=True)


# --- entries: what the report shows ----------------------------------------------------------

_CHAIN_COLUMNS = ("causal_ts", "depth")


def _detail(row: dict[str, Any]) -> str:
    """The row's own detail line, else one built from its facts; side effects say so."""
    text = row.get("detail") or _built_detail(row)
    if _side_effect(row):
        text = f"{text} (side effect: not a group of this conversation's connections)".strip()
    return text


def _built_detail(row: dict[str, Any]) -> str:
    parts: list[str] = []
    event = row.get("event")
    if event in (
        c.EV_GROUP_SEND,
        c.EV_CHANNEL_SEND,
        c.EV_REDIS_PUBLISH,
        c.EV_GROUP_ADD,
        c.EV_GROUP_DISCARD,
    ):
        if row.get("group"):
            parts.append(f"group {row['group']}")
        if row.get("members") is not None:
            parts.append(f"members={row['members']}")
        if row.get("receivers") is not None:
            parts.append(f"receivers={row['receivers']}")
        if row.get("over_capacity"):
            parts.append(f"over_capacity={row['over_capacity']}")
        if row.get("layer"):
            parts.append(f"layer={row['layer']}")
    if row.get("message_type"):
        parts.append(f"type={row['message_type']}")
    if row.get("task_name"):
        parts.append(f"{row['task_name']}[{(row.get('task_id') or '')[:8]}]")
    if row.get("queue"):
        parts.append(f"queue={row['queue']}")
    if row.get("queues"):
        parts.append("queues=" + ",".join(row["queues"]))
    if row.get("close_code") is not None:
        parts.append(f"code={row['close_code']}")
    if row.get("closed_by"):
        parts.append(f"closed_by={row['closed_by']}")
    if row.get("handshake_rejected"):
        parts.append("handshake rejected")
    if row.get("origin_allowed") is False:
        parts.append("origin not allowed")
    if row.get("user_authenticated") is False:
        parts.append("anonymous user")
    if row.get("cause"):
        parts.append(f"cause={row['cause']}")
    if row.get("status") == "error":
        parts.append("ERROR " + (row.get("exception") or row.get("status_message") or ""))
    return " ".join(part for part in parts if part).strip()


def _side_effect(row: dict[str, Any]) -> bool:
    """A publish that does not answer the conversation (per-user fan-out, a bot's group)."""
    return row.get("hop") == c.HOP_PUBLISH and row.get("_answers") is False


def _failed(row: dict[str, Any]) -> bool:
    # an empty per-user notification group is not a failure of this conversation
    empty = (row.get("members") == 0 or row.get("receivers") == 0) and not _side_effect(row)
    return bool(
        row.get("status") == "error"
        or empty
        or (row.get("over_capacity") or 0) > 0
        or row.get("handshake_rejected")
    )


def build_timeline(table: pl.DataFrame | pl.LazyFrame) -> tuple[TimelineEntry, ...]:
    """Timeline entries for the rows of ``table``, ordered causally, offsets from the first."""
    frame = table.collect() if isinstance(table, pl.LazyFrame) else table
    if not set(_CHAIN_COLUMNS) <= set(frame.columns):
        frame = frame.with_columns(causal_ts=pl.col("ts"), depth=pl.lit(0, pl.Int32))
    frame = causal_sort(frame)
    if frame.is_empty():
        return ()
    start = frame["causal_ts"].min()
    out = []
    for row in frame.iter_rows(named=True):
        ts = row["causal_ts"] or row["ts"]
        out.append(
            TimelineEntry(
                ts=row["ts"],
                offset_ms=(ts - start).total_seconds() * 1000.0 if ts and start else 0.0,
                source=row.get("source") or "trace",
                service=row.get("service"),
                hop=row.get("hop"),
                event=row.get("event") or row.get("name"),
                message_id=row.get("message_id"),
                connection_id=row.get("connection_id"),
                seq=row.get("seq"),
                status=row.get("status"),
                detail=_detail(row),
                trace_id=row.get("trace_id"),
                span_id=row.get("span_id"),
                parent_span_id=row.get("parent_span_id"),
                name=row.get("name"),
                failed=_failed(row),
                confidence=row.get("confidence"),
            )
        )
    return tuple(out)
