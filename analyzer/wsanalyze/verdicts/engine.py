"""The verdict frames: per message and per connection, how far it got and why it stopped.

Data flows one way: the event table → facts per message and connection (lazy
aggregations, ``facts``) → the first matching rule of ``rules`` (one module per
cause, evaluated as polars expressions) → one row per message / connection with
``rule``, ``outcome``, ``hop``, ``cause`` and ``confidence``. Everything that
judges (one conversation, many, the lost messages) reads these two frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import polars as pl
from wstrace import conventions as c

from . import facts as F
from .closecodes import CloseCodes, cause_hop, code_cause, code_hop
from .invariants import violations
from .rules import RULES, Rule

HANDSHAKE_TIMEOUT = timedelta(seconds=4.5)
"""A refused handshake that took this long hit Daphne's websocket_connect_timeout (5 s)."""
DEFAULT_IN_FLIGHT = timedelta(seconds=5)
"""Evidence that ends this close to the end of the data may still be on its way."""

_JWT = r"(?i)jwt|token|signature|expired|decode"


def _lit(value: pl.Expr | str) -> pl.Expr:
    return pl.lit(value) if isinstance(value, str) else value


def _first_match(rules: Sequence[Rule], attr: str) -> pl.Expr:
    out = None
    for rule in rules:
        value = pl.lit(rule.name) if attr == "name" else _lit(getattr(rule, attr))
        out = pl.when(rule.when).then(value) if out is None else out.when(rule.when).then(value)
    return out.otherwise(None)


def _tables(close_codes: CloseCodes | None) -> tuple[dict, dict]:
    overrides = dict(close_codes or {})
    return overrides, {**c.DEFAULT_CLOSE_CODES, **overrides}


def connection_verdicts(
    events: pl.LazyFrame, close_codes: CloseCodes | None = None
) -> pl.LazyFrame:
    """Connection facts plus ``outcome``, ``cause`` and ``hop`` per connection."""
    overrides, table = _tables(close_codes)
    n = pl.col
    refused = n("handshake_rejected") | (n("auth_error") & ~n("has_accept"))
    refused_cause = pl.coalesce(
        code_cause("close_code", overrides),
        n("connect_cause"),
        # a refusal whose reason the app logged (logchains: its reject line's cause)
        n("server_close_cause"),
        pl.when(n("origin_denied")).then(pl.lit("origin_rejected")),
        pl.when(n("anonymous")).then(pl.lit("auth_rejected")),
        n("auth_cause"),
        pl.when(n("auth_exc").str.contains(_JWT)).then(pl.lit("auth_rejected")),
        code_cause("close_code", table),
        pl.when(n("connect_duration") >= HANDSHAKE_TIMEOUT).then(pl.lit("handshake_timeout")),
        pl.lit("handshake_rejected"),
    )
    closed_cause = pl.coalesce(
        code_cause("close_code", overrides),
        n("server_close_cause"),
        code_cause("close_code", table),
    )
    crash_cause = pl.coalesce(n("disconnect_cause"), pl.lit("consumer_error"))
    frame = F.connection_facts(events).with_columns(
        _refused_cause=refused_cause, _closed_cause=closed_cause
    )
    outcome = (
        pl.when(refused)
        .then(pl.lit("rejected"))
        .when(n("crashed"))
        .then(pl.lit("lost"))
        .when(n("server_closed") & n("_closed_cause").is_not_null())
        .then(
            pl.when(n("_closed_cause") == "consumer_error")
            .then(pl.lit("lost"))
            .otherwise(pl.lit("rejected"))
        )
        .when(n("disconnected") & (n("close_code") == 1006) & ~n("server_closed"))
        .then(pl.lit("lost"))
        .when(n("disconnected") | n("server_closed"))
        .then(pl.lit("delivered"))
        .otherwise(pl.lit("in_flight"))
    )
    cause = (
        pl.when(refused)
        .then(n("_refused_cause"))
        .when(n("crashed"))
        .then(crash_cause)
        .when(n("server_closed") & n("_closed_cause").is_not_null())
        .then(n("_closed_cause"))
        .when(n("disconnected") & (n("close_code") == 1006) & ~n("server_closed"))
        .then(pl.lit("idle_timeout"))
        .otherwise(pl.lit("ok"))
    )
    return (
        frame.with_columns(outcome=outcome, cause=cause)
        .with_columns(
            hop=pl.when(n("cause") == "ok")
            .then(pl.lit(None, pl.String))
            .otherwise(
                pl.coalesce(
                    code_hop("close_code", overrides),
                    cause_hop("cause"),
                    code_hop("close_code", table),
                )
            )
        )
        .with_columns(
            close_ts=pl.coalesce("server_close_ts", "disconnect_ts", "opened"),
            confidence=F.confidence_name("confidence_rank"),
        )
        .drop("_refused_cause", "_closed_cause")
    )


def window_end_of(events: pl.LazyFrame, window_end: datetime | None) -> datetime | None:
    """The end of the data: ``window_end`` when the source knows it, else the latest stamp."""
    if window_end is not None:
        return window_end
    return (
        events.select(pl.max_horizontal(pl.col("end_ts").max(), pl.col("ts").max()))
        .collect()
        .item()
    )


def message_verdicts(
    events: pl.LazyFrame,
    *,
    window_end: datetime | None = None,
    in_flight: timedelta = DEFAULT_IN_FLIGHT,
    close_codes: CloseCodes | None = None,
    rules: Sequence[Rule] = RULES,
) -> pl.LazyFrame:
    """Message facts joined with their connection, plus ``rule``/``outcome``/``hop``/``cause``."""
    end = window_end_of(events, window_end)
    conns = connection_verdicts(events, close_codes).select(
        "conversation_id",
        "connection_id",
        *[
            pl.col(name).alias(f"conn_{name}")
            for name in (
                "outcome",
                "cause",
                "hop",
                "closed",
                "closed_by",
                "close_code",
                "close_ts",
                "close_parent",
                "confidence_rank",
                "log_only",
            )
        ],
    )
    n = pl.col
    frame = (
        F.message_facts(events)
        .join(conns, on=["conversation_id", "connection_id"], how="left", nulls_equal=False)
        .join(F.consumer_layers(events), on="conversation_id", how="left")
        .join(F.revokers(events), left_on="enq_task_id", right_on="task_id", how="left")
        .join(F.frame_types(events), left_on="revoked_by", right_on="message_id", how="left")
        .join(F.consumed_queues(events), how="cross")
        .join(F.worker_logs(events), how="cross")
        .join(F.send_services(events), how="cross")
        .with_columns(
            consumer_layers=n("consumer_layers").fill_null(pl.lit([], pl.List(pl.String))),
            consumed_queues=n("consumed_queues").fill_null(pl.lit([], pl.List(pl.String))),
            window_end=pl.lit(end, dtype=pl.Datetime("ns", "UTC")),
        )
        .with_columns(
            # a zero horizon means nothing is in flight
            recent=((n("window_end") - n("last_ts")) <= pl.lit(in_flight))
            & (in_flight > timedelta(0)),
            idle_s=(n("window_end") - n("last_ts")).dt.total_milliseconds() / 1000.0,
        )
    )
    frame = _log_facts(frame).with_columns(
        rule=_first_match(rules, "name"),
        outcome=_first_match(rules, "outcome"),
        hop=_first_match(rules, "hop"),
        cause=_first_match(rules, "cause"),
    )
    return frame.with_columns(
        violations=violations(),
        # a message the server's close killed failed when the close happened
        failed_ts=pl.when(n("rule").is_in(["server_close", "refused"]))
        .then(pl.coalesce("conn_close_ts", "err_ts", "empty_publish_ts", "last_ts"))
        .otherwise(pl.coalesce("err_ts", "empty_publish_ts", "last_ts")),
        is_failure=n("outcome").is_in(["lost", "rejected"])
        | ((n("outcome") == "delivered") & (n("cause") != "ok")),
        confidence=pl.when(n("rule").is_in(INFERRED_RULES))
        .then(pl.lit("inferred"))
        .otherwise(F.confidence_name("_conf_rank")),
    ).drop("_conf_rank")


INFERRED_RULES = ("log_delivered", "log_handled")
"""Rules whose verdict no line states: their confidence is ``inferred``."""

ANSWER_GRACE = timedelta(seconds=0.5)
"""A worker logs success a moment after the last frame went out: a close this soon after the
task's end does not prove the answer was cut off."""


CRASH_AFTER_RECEIVE = timedelta(seconds=2)
"""Daphne notices a dead consumer on its next check (about once a second): a crash this soon
after a frame was received may be the frame's."""


def _log_facts(frame: pl.LazyFrame) -> pl.LazyFrame:
    """What log-only messages can show (``verdicts.logchains``): deliveries are never logged.

    A log-only message is complete when its task succeeded before its connection closed
    (or the connection is still open): ``log_delivered`` then says delivered, inferred.
    It was cut off (``log_cut``) when the task ended surely after the close: a Daphne
    stamp is a whole second, so the close may be up to 1 s later than it reads.
    """
    n = pl.col
    whole = (n("conn_closed").dt.nanosecond() == 0) & n("conn_log_only").fill_null(False)
    grace = pl.lit(ANSWER_GRACE)
    close_hi = n("conn_closed") + pl.when(whole).then(pl.lit(timedelta(seconds=1))).otherwise(grace)
    # the task's success is logged a moment after its last frame went out
    close_lo = n("conn_closed") + pl.when(whole).then(pl.lit(timedelta(0))).otherwise(grace)
    before = (
        (n("tasks_done") > 0)
        & ~n("task_open")
        & (n("conn_closed").is_null() | (n("task_end_ts") <= close_lo))
    ).fill_null(False)
    pending = n("task_open") | ((n("n_enqueue") > 0) & ~n("task_seen"))
    closed = n("conn_closed").is_not_null()
    # received, no task, no answer expected, no crash of its socket: handled in the consumer
    handled = (
        n("handled")
        & (n("n_receive") > 0)
        & ~n("task_seen")  # a task logged as run without its enqueue line is still work
        & (n("conn_close_code") != 1011).fill_null(True)
        & (n("conn_cause") != "consumer_error").fill_null(True)
    )
    # received, no work started, and its socket crashed moments later: the crash took it
    crashed_on_it = (
        (n("n_enqueue") == 0)
        & (n("task_runs") == 0)
        & (n("n_receive") > 0)
        & (n("conn_outcome") == "lost")
        & (n("first_ts") <= close_hi)
        & (n("first_ts") >= n("conn_closed") - pl.lit(CRASH_AFTER_RECEIVE))
    )
    return frame.with_columns(
        conn_close_hi=close_hi,
        log_before=before,
        # the app logs the frames it sends on this message's socket, and none for it
        log_unsent=(
            n("log_only")
            & (n("n_send") == 0)
            & n("receive_service").is_not_null()
            & n("send_services").list.contains(n("receive_service"))
        ).fill_null(False),
        # cut off by the close: ended surely after it, or still waiting when it came (and
        # the logs end soon after, so nothing else explains the missing end)
        log_cut=(
            n("log_only")
            & closed
            & (
                (n("task_end_ts").is_not_null() & (n("task_end_ts") > close_hi))
                | (pending & n("recent") & (n("first_ts") <= n("conn_closed")))
                | crashed_on_it
            )
        ).fill_null(False),
        complete=pl.when(n("log_only"))
        .then((before | handled) & ~n("any_error") & ~n("channel_full") & ~n("empty_publish"))
        .otherwise(n("complete")),
        # what logs cannot show (publishes, deliveries) is not "missing": the first hop
        # after the task that a line could show is the socket's
        first_missing=pl.when(n("log_only"))
        .then(
            pl.when((n("n_enqueue") > 0) & ~n("task_seen"))
            .then(pl.lit(c.HOP_TASK))
            .when(n("task_seen") | (n("n_publish") > 0))
            .then(pl.lit(c.HOP_DELIVER))
            .otherwise(n("first_missing"))
        )
        .otherwise(n("first_missing")),
        _conf_rank=pl.max_horizontal("confidence_rank", "conn_confidence_rank"),
    )
