"""Worker-wide lines that name no task: which run each belongs to, if any one.

A ``WorkerLostError``, a Redis connection error, channels_redis's "over capacity"
warning carry no task id; the worker's broker going down and coming back is a
state of the whole worker. Each joins the one run open on that worker at that
moment (``_runs``), or none when several were: an ambiguous line ties nothing.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
from wstrace import conventions as c

from ._rows import (
    _END_EVENTS,
    _UNAVAILABLE,
    _WHOLE,
    _line,
    _row,
    weakest,
)


def _runs(tasks: pl.DataFrame) -> list[dict]:
    """Celery's task runs from their lines: task id, service, received, first end (or None)."""
    celery = tasks.filter(pl.col("name") == "celery")
    received = (
        celery.filter(pl.col("event") == "task_received")
        .group_by("task_id")
        .agg(pl.col("ts").min().alias("rcv"), pl.col("service").first())
    )
    ended = (
        celery.filter(pl.col("event").is_in(_END_EVENTS))
        .group_by("task_id")
        .agg(pl.col("ts").min().alias("end"))
    )
    return received.join(ended, on="task_id", how="left").to_dicts()


def _layer_errors(raw: pl.DataFrame, tasks: pl.DataFrame) -> dict[str, dict]:
    """task id → a Redis connection error line (no task id on it) its worker logged while
    that task was the one running there (several running: it joins none)."""
    lines = (
        raw.filter(
            pl.col("task_id").is_null()
            & (pl.col("status") == "error").fill_null(False)
            & (pl.col("name") != "celery").fill_null(True)
            & (
                (pl.col("event") == "redis_error")
                | pl.coalesce("exception", "detail").str.contains(_UNAVAILABLE).fill_null(False)
            )
        )
        .sort("ts")
        .to_dicts()
    )
    if not lines:
        return {}
    runs = _runs(tasks)
    out: dict[str, dict] = {}
    for line in lines:
        found = [
            r for r in runs
            if r["service"] == line["service"] and r["rcv"] <= line["ts"]
            and (r["end"] is None or line["ts"] <= r["end"])
        ]  # fmt: skip
        if len(found) == 1:
            out.setdefault(found[0]["task_id"], line)
    return out


_DOWN = ("broker_unreachable", "broker_lost")


_UP = ("broker_connected", "worker_ready", "task_received")


def _broker_down(raw: pl.DataFrame) -> dict[str, list[tuple]]:
    """Per worker service (Celery lines): the spans of time its broker connection was down,
    (first error line, until) — ``until`` None while it never came back."""
    celery = raw.filter((pl.col("name") == "celery").fill_null(False)).sort("ts")
    out: dict[str, list[tuple]] = {}
    for (service,), rows in celery.group_by("service", maintain_order=True):
        spans: list[tuple] = []
        first = None
        for r in rows.iter_rows(named=True):
            if r["event"] in _DOWN and first is None:
                first = r
            elif r["event"] in _UP and first is not None:
                spans.append((first, r["ts"]))
                first = None
        if first is not None:
            spans.append((first, None))
        out[service] = spans
    return out


def _broker_line(down: dict[str, list[tuple]], ts: datetime) -> dict | None:
    """The broker error line of the one worker that logged, when it was down at ``ts``."""
    if len(down) != 1:
        return None  # several workers (or none): which one would have taken it is unknown
    (spans,) = down.values()
    for first, until in spans:
        if first["ts"] <= ts + _WHOLE and (until is None or ts <= until):
            return first
    return None


def _worker_lost(raw: pl.DataFrame, tasks: pl.DataFrame) -> dict[str, dict]:
    """task id → the WorkerLostError line of its worker, when it was the one task open there."""
    lines = raw.filter(pl.col("event") == "worker_lost").sort("ts").to_dicts()
    if not lines:
        return {}
    runs = _runs(tasks)
    out: dict[str, dict] = {}
    for line in lines:
        open_ = [
            r for r in runs
            if r["service"] == line["service"] and r["rcv"] <= line["ts"]
            and (r["end"] is None) and r["task_id"] not in out
        ]  # fmt: skip
        if len(open_) == 1:
            out[open_[0]["task_id"]] = line
    return out


def _over_capacity(raw: pl.DataFrame, made: list[dict]) -> list[dict]:
    """channels_redis's "N of M channels over capacity in group G" → a refused publish of the
    one task of that conversation running on that process then (none when several ran)."""
    lines = raw.filter(
        (pl.col("event") == "over_capacity") & pl.col("conversation_id").is_not_null()
    ).to_dicts()
    runs = [r for r in made if r["hop"] == c.HOP_TASK]
    out = []
    for line in lines:
        found = [
            r for r in runs
            if r["conversation_id"] == line["conversation_id"] and r["service"] == line["service"]
            and r["ts"] <= line["ts"] and (r["end_ts"] is None or line["ts"] <= r["end_ts"])
        ]  # fmt: skip
        if len(found) != 1:
            continue
        run = found[0]
        out.append(
            _row(service=line["service"], conversation_id=run["conversation_id"],
                 message_id=run["message_id"], connection_id=run["connection_id"],
                 task_id=run["task_id"], ts=line["ts"], end_ts=line["ts"], hop=c.HOP_PUBLISH,
                 parent_span_id=run.get("span_id"),
                 event=c.EV_GROUP_SEND, name="channels_redis", status="ok",
                 group=line.get("group"), members=line.get("members"),
                 over_capacity=line.get("over_capacity"),
                 confidence=weakest(run["confidence"], line.get("confidence")),
                 detail=_line(line))
        )  # fmt: skip
    return out
