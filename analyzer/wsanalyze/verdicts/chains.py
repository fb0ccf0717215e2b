"""Chain reconstruction: causal links first, timestamps second.

Spans written by other instrumentations (or by a process whose baggage was lost)
may miss the conversation/connection/message ids; they inherit them from their
parent span, or from the span they link to. Each span also gets a ``causal_ts``:
its own start, but never earlier than its parent's, so clock skew between
containers cannot put a task before the enqueue that caused it. ``depth`` breaks
ties between a parent and a child that share a causal time.
"""

from __future__ import annotations

import polars as pl

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
