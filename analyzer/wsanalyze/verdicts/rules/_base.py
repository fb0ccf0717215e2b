"""The shape of a rule: a condition over the facts table and what it concludes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import polars as pl

Facts = Mapping[str, Any]


def _nothing(_: Facts) -> list[str]:
    return []


def _no_hint(_: Facts) -> str | None:
    return None


@dataclass(frozen=True)
class Rule:
    """One way a message ends: when ``when`` holds (and no earlier rule did), conclude this.

    ``cause``, ``hop`` and ``outcome`` are literals or expressions over the facts
    columns; ``evidence`` and ``hint`` turn one facts row into readable lines.
    Lower ``priority`` is tried first.
    """

    name: str
    priority: int
    when: pl.Expr
    cause: pl.Expr | str
    hop: pl.Expr | str
    outcome: pl.Expr | str = "lost"
    evidence: Callable[[Facts], list[str]] = field(default=_nothing)
    hint: Callable[[Facts], str | None] = field(default=_no_hint)


def col(name: str) -> pl.Expr:
    """Shorthand for a facts column."""
    return pl.col(name)


def incomplete() -> pl.Expr:
    """The message did not reach the client in full."""
    return ~pl.col("complete")


def after_server_close() -> pl.Expr:
    """The failing span came after the server closed (or crashed) the connection: the close explains it."""
    return (
        col("conn_outcome").is_in(["rejected", "lost"])
        & col("conn_close_ts").is_not_null()
        & col("err_ts").is_not_null()
        & (col("conn_close_ts") <= col("err_ts"))
        & (col("conn_cause") != "consumer_error")
    ).fill_null(False)


CLIENT_CLOSE_SLACK = timedelta(seconds=2)
"""How long before its ``ws.disconnect`` a client's close can already show: the server reads
the close frame at once, the consumer handles the disconnect after what it was doing (a
loaded web process: a backlog of chunks). The same second or two Daphne's checks take."""


def send_after_client_left() -> pl.Expr:
    """The failing hop is a send the client's own close explains.

    Once the client's close frame is read, a send fails (Daphne: ``Disconnected``) until
    the consumer handles the disconnect, a moment later: not the app's send failing.
    """
    return (
        (col("err_hop") == "send")
        & (col("err_cause").fill_null("send_failed") == "send_failed")
        & (col("conn_closed_by") == "client")
        & col("conn_closed").is_not_null()
        & col("err_ts").is_not_null()
        & (col("err_ts") >= col("conn_closed") - pl.lit(CLIENT_CLOSE_SLACK))
    ).fill_null(False)


def from_spans() -> pl.Expr:
    """Trace-shaped reasoning holds: the message has spans, or (logs only) was cut off."""
    return ~pl.col("log_only") | pl.col("log_cut")


def source(f: Facts, hop: str) -> str:
    """What recorded a hop: its span (``ws.task``), or the log lines it was read from."""
    return f"ws.{hop}" if f.get(f"src_{hop}") != "log" else f"the {hop}'s log lines"


def span_source(f: Facts, hop: str) -> str:
    """Like :func:`source`, saying "span" outright (for evidence listed beside log lines)."""
    if f.get(f"src_{hop}") == "log":
        return f"the {hop}'s log lines"
    if hop == "task" and f.get("task_lost"):
        return (
            "ws.task_lost (span, recorded by the worker's main process: its child running "
            "the task died)"
        )
    return f"ws.{hop} (span)"


def at(ts: datetime | None) -> str:
    """A time as HH:MM:SS.mmm (UTC)."""
    return ts.strftime("%H:%M:%S.%f")[:-3] if ts else "?"


def exc(f: Facts) -> str:
    """The exception at the failing hop, or a placeholder."""
    return f.get("err_exc") or "no exception recorded"
