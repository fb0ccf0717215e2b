"""Nothing explains where the message stopped: say what is missing."""

from __future__ import annotations

import polars as pl

from ._base import Rule, at, col


def _evidence(f):
    if f.get("log_only"):
        return _log_evidence(f)
    return [f"the chain stops before {f['first_missing']}; no span explains why"]


def _log_evidence(f):
    """From logs alone: what the lines show, and what is missing to decide."""
    if f.get("n_enqueue") and not f.get("task_seen") and not f.get("worker_logs"):
        return [
            "the app logged the enqueue, and no Celery worker's log was read: whether a "
            "worker received the task is not in the evidence (give the worker's logs too)"
        ]
    end, closed = f.get("task_end_ts"), f.get("conn_closed")
    if end is not None and closed is not None and end > closed:
        return [
            f"the task ended at {at(end)}, within the second of the close Daphne stamped "
            f"{at(closed)}: whether its last frames went out before the close is not in the "
            "logs (Daphne's stamps are whole seconds); wstrace's ws.send spans would tell"
        ]
    if not f.get("connection_id"):
        return [
            "no connection of the conversation was open alone when the task ran (several "
            "were, or none is in the logs): where its answer went is not in the logs"
        ]
    return [f"the log lines stop before {f['first_missing']}; no line explains why"]


def _hint(f):
    missing = f["first_missing"]
    if missing in ("task", "publish"):
        return "Check that the worker runs wstrace (same settings module) and writes to this store."
    if missing in ("deliver", "send"):
        return (
            "Check that the web process records group membership (ws.group_add) and that the "
            "consumer has a handler for the message type."
        )
    return "Make sure every process runs wstrace and writes to the store you read."


RULES = (
    Rule(
        name="unknown",
        priority=999,
        when=pl.lit(True),
        cause="unknown",
        hop=col("first_missing"),
        evidence=_evidence,
        hint=_hint,
    ),
)
