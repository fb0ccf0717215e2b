"""Verdicts over the whole table: one row per conversation, the lost messages by hop and
cause, every connection, every conversation id.

Each runs the engine once over every conversation (no per-conversation loop), so
its cost grows with the table, not with the number of conversations.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from ..report import ConnectionSummary, ConversationSummary, LostGroup, LostReport
from .closecodes import CloseCodes
from .engine import DEFAULT_IN_FLIGHT, connection_verdicts, message_verdicts, window_end_of
from .first_failure import conversation_verdict, verdict_items
from .invariants import enforce, strict
from .logchains import log_chains


def summarize_conversations(
    events: pl.LazyFrame,
    *,
    window_end: datetime | None = None,
    in_flight: timedelta = DEFAULT_IN_FLIGHT,
    close_codes: CloseCodes | None = None,
) -> list[ConversationSummary]:
    """One verdict per conversation (first failure in time), newest first."""
    events = log_chains(events)
    end = window_end_of(events, window_end)
    msgs = message_verdicts(events, window_end=end, in_flight=in_flight, close_codes=close_codes)
    if strict():  # the test suite: every verdict listed is checked (costs a second pass)
        enforce(_broken(msgs))
    per = verdict_items(msgs, connection_verdicts(events, close_codes))
    spans = (
        events.filter(pl.col("conversation_id").is_not_null())
        .group_by("conversation_id")
        .agg(pl.col("ts").min().alias("first_ts"), pl.col("ts").max().alias("last_ts"))
    )
    rows = (
        spans.join(per, on="conversation_id", how="left")
        # newest first; whole-second log stamps tie often: the id keeps the order stable
        .sort(["first_ts", "conversation_id"], descending=[True, False], nulls_last=True)
        .collect()
    )
    out = []
    for row in rows.iter_rows(named=True):
        out.append(
            ConversationSummary(
                conversation_id=row["conversation_id"],
                verdict=conversation_verdict(row, _listed),
                first_ts=row["first_ts"],
                last_ts=row["last_ts"],
                connections=row["connections"] or 0,
                messages=row["messages"] or 0,
                lost=row["lost"] or 0,
                delivered=row["delivered"] or 0,
                in_flight=row["in_flight"] or 0,
            )
        )
    return out


def _listed(item: Mapping[str, Any]) -> str:
    """A list row names the item and its verdict (the report adds the item's summary)."""
    what = f"{item['kind']} {item['item_id']}"
    return f"{what}: {item['outcome']} at {item['hop']} ({item['cause']})"


def _broken(msgs: pl.LazyFrame) -> pl.DataFrame:
    """The message verdicts that break an invariant."""
    return (
        msgs.filter(pl.col("violations").list.len() > 0)
        .select("message_id", "outcome", "hop", "cause", "violations")
        .collect()
    )


def aggregate_lost(
    events: pl.LazyFrame,
    *,
    window_end: datetime | None = None,
    in_flight: timedelta = DEFAULT_IN_FLIGHT,
    close_codes: CloseCodes | None = None,
    examples: int = 3,
    since: datetime | None = None,
    until: datetime | None = None,
) -> LostReport:
    """Lost messages grouped by hop and cause, most frequent first.

    ``since``/``until`` select messages by when they started; each is judged on all
    of its evidence.
    """
    events = log_chains(events)
    end = window_end_of(events, window_end)
    msgs = message_verdicts(events, window_end=end, in_flight=in_flight, close_codes=close_codes)
    if since is not None:
        msgs = msgs.filter(pl.col("first_ts") >= since)
    if until is not None:
        msgs = msgs.filter(pl.col("first_ts") <= until)
    if strict():
        enforce(_broken(msgs))
    frame = msgs.select("conversation_id", "message_id", "outcome", "hop", "cause").collect()
    lost = frame.filter(pl.col("outcome") == "lost")
    groups = (
        lost.group_by("hop", "cause")
        .agg(
            pl.len().alias("count"),
            pl.col("conversation_id").n_unique().alias("conversations"),
            pl.concat_str("conversation_id", pl.lit("/"), "message_id")
            .head(examples)
            .alias("examples"),
        )
        .sort(["count", "hop", "cause"], descending=[True, False, False])
    )
    return LostReport(
        total_messages=frame.height,
        lost=lost.height,
        groups=tuple(
            LostGroup(r["hop"], r["cause"], r["count"], r["conversations"], tuple(r["examples"]))
            for r in groups.iter_rows(named=True)
        ),
    )


def list_connections(
    events: pl.LazyFrame, close_codes: CloseCodes | None = None
) -> list[ConnectionSummary]:
    """Every connection (those of no conversation too), newest first."""
    events = log_chains(events)
    frame = (
        connection_verdicts(events, close_codes)
        .sort("opened", descending=True, nulls_last=True)
        .collect()
    )
    return [
        ConnectionSummary(
            connection_id=r["connection_id"],
            conversation_id=r["conversation_id"],
            route=r.get("route"),
            opened=r.get("opened"),
            closed=r.get("closed"),
            close_code=r.get("close_code"),
            closed_by=r.get("closed_by"),
            outcome=r["outcome"],
            cause=r["cause"],
            hop=r.get("hop"),
            confidence=r.get("confidence") or "exact",
        )
        for r in frame.iter_rows(named=True)
    ]


def known_conversations(events: pl.LazyFrame) -> list[str]:
    """Every conversation id in the table, sorted."""
    frame = events.select(pl.col("conversation_id").drop_nulls().unique().sort()).collect()
    return frame.to_series().to_list()
