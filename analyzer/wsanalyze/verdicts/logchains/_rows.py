"""What every log chain row shares: its kinds, confidence ranks, and how one is written."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
from wstrace import conventions as c

from ...events import SCHEMA

LOG_CHAIN = "log_chain"
"""``kind`` of a chain row made from log lines."""


LOG_EVIDENCE = "log_evidence"
"""``kind`` of an evidence-only row: log lines tied exactly to a message that has spans.

It takes part in no fact (spans decided the verdict); ``facts.log_evidence`` lists its
lines in that message's evidence."""


PRODUCERS = ("daphne", "celery", "redis", "channels_redis")
"""Log producers whose formats the parser knows; any other row is the app's own line."""


RANK = {"exact": 0, "path": 1, "time": 2, "inferred": 3}


_END_EVENTS = ("task_succeeded", "task_failed", "task_time_limit")


_WHOLE = timedelta(seconds=1)


_UNAVAILABLE = (
    r"(?i)error 111|connection refused|connecting to|connection closed by server|"
    r"timeout connecting|connectionerror|connectionreset"
)


def is_chain_log() -> pl.Expr:
    """Rows made here (the raw log rows are evidence only)."""
    return pl.col("kind").is_in((LOG_CHAIN, LOG_EVIDENCE)).fill_null(False)


def raw_log() -> pl.Expr:
    """Raw log rows: shown, never part of a fact."""
    return ((pl.col("source") == "log") & ~is_chain_log()).fill_null(False)


def weakest(*values: str | None) -> str | None:
    known = [v for v in values if v]
    return max(known, key=lambda v: RANK.get(v, 0)) if known else None


def _line(row: dict) -> str:
    first = (row.get("detail") or "").split("\n", 1)[0][:240]
    who = row.get("service") or "?"
    producer = row.get("name") or "app"
    return f"log: {who} ({producer}) {_at(row.get('ts'))}: {first}"


def _at(ts: datetime | None) -> str:
    return ts.strftime("%H:%M:%S.%f")[:-3] if ts else "?"


def _whole(ts: datetime | None) -> bool:
    return ts is not None and ts.microsecond == 0 and getattr(ts, "nanosecond", 0) == 0


def _row(**values) -> dict:
    row = {name: None for name in SCHEMA}
    row.update(values)
    row["source"] = "log"
    row["kind"] = values.get("kind") or LOG_CHAIN
    return row


def _server_code(code: int | None) -> bool:
    if code is None:
        return False
    return code in c.DEFAULT_CLOSE_CODES or code == 1011 or code >= 4000


def _traced_conversations(frame: pl.DataFrame) -> set[str]:
    return set(
        frame.filter((pl.col("source") != "log") & pl.col("conversation_id").is_not_null())[
            "conversation_id"
        ].unique()
    )
