"""One conversation's report: its verdict, every message and connection, and the timeline.

The conversation's rows are selected with what judging them needs from the rest
of the table (rows of its traces and tasks that carry no conversation id, the
workers' facts), attached along their span chains, judged by the engine, and
assembled into a ``ConversationReport``. The verdict is ``first_failure``'s, the
same ``conversations`` gives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import polars as pl
from wstrace import conventions as c

from ..report import ConnectionVerdict, ConversationReport, MessageVerdict, Verdict
from ..timeline import attach, build_timeline
from .answers import annotate
from .closecodes import CloseCodes
from .engine import DEFAULT_IN_FLIGHT, connection_verdicts, message_verdicts, window_end_of
from .first_failure import conversation_verdict, verdict_items
from .invariants import enforce
from .logchains import SENDS_LOGGED, is_chain_log, log_chains, raw_log
from .results import answer_counts, connection_result, message_result
from .untagged import fill_ids


def analyze_conversation(
    events: pl.LazyFrame,
    conversation_id: str,
    *,
    window_end: datetime | None = None,
    in_flight: timedelta = DEFAULT_IN_FLIGHT,
    close_codes: CloseCodes | None = None,
    problems: Sequence[str] = (),
    sources: Sequence[str] = (),
) -> ConversationReport:
    """The full report for one conversation: verdicts, evidence, hints and the merged timeline."""
    events = log_chains(events)
    end = window_end_of(events, window_end)
    is_worker = (
        (pl.col("event") == c.EV_WORKER_READY) | (pl.col("name") == c.SPAN_WORKER_READY)
    ).fill_null(False)
    # rows the instrumentation could not tag (an HTTP-started re-run, a pub/sub read)
    # join their conversation before it is selected
    events = fill_ids(events)
    own = events.filter(pl.col("conversation_id") == conversation_id)
    traces = own.select(pl.col("trace_id").drop_nulls().unique())
    tasks = own.select(pl.col("task_id").drop_nulls().unique())
    loose = events.filter(pl.col("conversation_id").is_null() & ~is_worker)
    orphans = pl.concat(
        [
            loose.join(traces, on="trace_id", how="semi"),
            # log lines (no trace) that name one of the conversation's tasks
            loose.filter(pl.col("trace_id").is_null()).join(tasks, on="task_id", how="semi"),
        ]
    )
    # the workers' raw log lines stay in: whether workers logged at all is a fact (no_worker)
    workers_logged = raw_log() & (pl.col("name") == "celery").fill_null(False)
    # which services log the answers they send: a fact of the whole log (log_unsent)
    sends_logged = (pl.col("event") == SENDS_LOGGED).fill_null(False)
    workers = events.filter(
        is_worker | sends_logged | (workers_logged & pl.col("conversation_id").is_null())
    )
    table = attach(fill_ids(pl.concat([own, orphans, workers]).unique(maintain_order=True)))
    mine = table.filter(
        (pl.col("conversation_id") == conversation_id) | is_worker | workers_logged | sends_logged
    ).lazy()
    conns = (
        connection_verdicts(mine, close_codes)
        .filter(pl.col("conversation_id") == conversation_id)
        .sort("opened", nulls_last=True)
        .collect()
    )
    msgs = (
        message_verdicts(mine, window_end=end, in_flight=in_flight, close_codes=close_codes)
        .filter(pl.col("conversation_id") == conversation_id)
        .sort("first_ts", nulls_last=True)
        .collect()
    )
    problems = [*problems, *enforce(msgs)]
    annotated = annotate(table.lazy()).collect()
    streams, receivers = answer_counts(annotated)
    connections = tuple(connection_result(row) for row in conns.iter_rows(named=True))
    messages = tuple(
        message_result(
            row, streams.get(row["message_id"], ()), receivers.get(row["message_id"], ())
        )
        for row in msgs.iter_rows(named=True)
    )
    conv_rows = annotated.filter((pl.col("conversation_id") == conversation_id) & ~is_chain_log())
    return ConversationReport(
        conversation_id=conversation_id,
        verdict=_verdict(conns, msgs, connections, messages),
        connections=connections,
        messages=messages,
        timeline=build_timeline(conv_rows),
        window_end=end,
        problems=tuple(problems),
        sources=tuple(sources),
    )


def _verdict(
    conns: pl.DataFrame,
    msgs: pl.DataFrame,
    connections: Sequence[ConnectionVerdict],
    messages: Sequence[MessageVerdict],
) -> Verdict:
    """The conversation's verdict, picked as ``conversations`` picks it, told with the
    named item's own summary line."""
    picked = verdict_items(msgs.lazy(), conns.lazy()).collect()
    summaries = {("connection", k.connection_id): k.summary for k in connections}
    summaries.update({("message", m.message_id): m.summary for m in messages})

    def describe(item: Mapping[str, Any]) -> str:
        return f"{item['kind']} {item['item_id']} {summaries[item['kind'], item['item_id']]}"

    return conversation_verdict(picked.row(0, named=True) if picked.height else None, describe)
