"""Celery runs from worker lines (and the app's lines naming a task id)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
from wstrace import conventions as c

from ._rows import (
    _END_EVENTS,
    PRODUCERS,
    _line,
    _row,
    _traced_conversations,
    raw_log,
    weakest,
)
from .connections import Conns, _open_at, log_connections
from .evidence import _span_owners, _task_evidence
from .workers import _broker_down, _broker_line, _layer_errors, _over_capacity, _worker_lost


def _task_rows(frame: pl.DataFrame, conns: Conns | None = None) -> list[dict]:
    logs = frame.filter(raw_log() & pl.col("task_id").is_not_null())
    if logs.is_empty():
        return []
    spans = frame.filter(pl.col("source") != "log")
    ran = set(
        spans.filter((pl.col("hop") == c.HOP_TASK) & pl.col("task_id").is_not_null())[
            "task_id"
        ].unique()
    )
    enq_spans = {
        r["task_id"]: r
        for r in spans.filter((pl.col("hop") == c.HOP_ENQUEUE) & pl.col("task_id").is_not_null())
        .sort("ts")
        .unique("task_id", keep="first")
        .iter_rows(named=True)
    }
    traced = _traced_conversations(frame)
    conns = log_connections(frame) if conns is None else conns
    lost = _worker_lost(frame.filter(raw_log()), logs)
    layer = _layer_errors(frame.filter(raw_log()), logs)
    down = _broker_down(frame.filter(raw_log()))
    owner = _span_owners(spans)
    out: list[dict] = []
    for (task_id,), rows in logs.sort("ts").group_by("task_id", maintain_order=True):
        if task_id in ran and task_id in owner:
            out += _task_evidence(rows, owner[task_id], lost.get(task_id))
        out += _one_task(task_id, rows, enq_spans.get(task_id), task_id in ran, traced, conns,
                         lost.get(task_id), layer.get(task_id), down)  # fmt: skip
    return out + _over_capacity(frame.filter(raw_log()), out)


_REVOKES = ("task_terminating", "task_revoked_discarded", "task_revoke_flagged")


def _revoke_rows(base: dict, celery: list[dict], conf: str | None) -> list[dict]:
    """Celery's revoke lines for a task → one ``task_revoked`` row (never a run).

    ``Terminating <id> (signal)`` and ``Discarding revoked task`` say it was stopped;
    ``Tasks flagged as revoked: <id>`` only that a revoke was asked for: it counts unless
    the task had already succeeded (a revoke that comes too late stops nothing).
    """
    lines = [r for r in celery if r.get("event") in _REVOKES]
    if not lines:
        return []
    done = [r["ts"] for r in celery if r.get("event") == "task_succeeded"]
    said = [
        r for r in lines
        if r["event"] != "task_revoke_flagged" or not done or r["ts"] < min(done)
    ]  # fmt: skip
    if not said:
        return []
    first = said[0]
    how = first.get("exception") or first.get("status_message")
    if first["event"] == "task_terminating":
        how = f"terminated ({how})" if how else "terminated"
    elif first["event"] == "task_revoked_discarded":
        how = "discarded before it ran (revoked)"
    else:
        how = "revoked"
    return [
        _row(**{**base, "service": first["service"]}, ts=first["ts"], end_ts=first["ts"],
             hop=c.HOP_TASK, event=c.EV_TASK_REVOKED, name="celery", status="unset",
             cause="task_revoked", status_message=how,
             confidence=weakest(conf, first.get("confidence")),
             detail="\n".join(_line(r) for r in said))
    ]  # fmt: skip


def log_span_id(task_id: str) -> str:
    """The id a task run row made from log lines stands under (its publishes' parent), so a
    stream from logs names its task like a span's would."""
    return f"log:task:{task_id}"


def _one_task(task_id, rows: pl.DataFrame, enq_span, has_run, traced, conns, lost,
              layer=None, down=None) -> list[dict]:  # fmt: skip
    recs = rows.to_dicts()
    celery = [r for r in recs if r.get("name") == "celery"]
    app = [r for r in recs if r.get("name") not in PRODUCERS]
    first = {}
    for r in celery:
        first.setdefault(r["event"], r)
    received = first.get("task_received")
    app_task = [r for r in app if r.get("hop") == c.HOP_TASK]
    start = received or (app_task[0] if app_task else None)
    conversation = next((r["conversation_id"] for r in recs if r.get("conversation_id")), None)
    message = next((r["message_id"] for r in app if r.get("message_id")), None)
    conf = weakest(*[r.get("confidence") for r in recs if r.get("conversation_id")]) or "time"
    if enq_span is not None:
        conversation = enq_span["conversation_id"] or conversation
        message, conf = enq_span["message_id"], "exact"
    if conversation is None:
        return []  # no line ties it to a conversation (an ambiguous time join stays untied)
    exact_tie = conf == "exact"
    if conversation in traced and enq_span is None and not exact_tie:
        return []  # a time guess has no place among spans
    message = message or f"task:{task_id}"
    name = next((r["task_name"] for r in recs if r.get("task_name")), None)
    anchor = (start or (app[0] if app else recs[0]))["ts"]
    found = _open_at(conns, conversation, anchor) if enq_span is None else []
    connection = found[0]["connection_id"] if len(found) == 1 else None
    if enq_span is not None:
        connection = enq_span["connection_id"]
    base = dict(service=None, conversation_id=conversation, message_id=message,
                connection_id=connection, task_id=task_id, task_name=name)  # fmt: skip
    out: list[dict] = []
    enqueue = next(
        (r for r in app if r.get("hop") in (c.HOP_ENQUEUE, None)
         and (start is None or r["ts"] <= start["ts"] + timedelta(milliseconds=1))),
        None,
    )  # fmt: skip
    unregistered = first.get("task_unregistered")
    if enq_span is None and (enqueue is not None or (unregistered and start is None)):
        src = enqueue or unregistered
        lines = [_line(src)] + ([_line(unregistered)] if unregistered and enqueue else [])
        broker = _broker_line(down or {}, src["ts"]) if start is None else None
        status, exception, enq_conf = "ok", None, weakest(conf, src.get("confidence"))
        if broker is not None:  # never received, enqueued while the worker's broker was down
            status, enq_conf = "error", weakest(enq_conf, "time")
            exception = broker.get("exception") or broker.get("status_message") or "broker down"
            lines.append(_line(broker) + " [the only worker's broker connection was down then]")
        out.append(
            _row(**{**base, "service": src["service"]}, ts=src["ts"], end_ts=src["ts"],
                 hop=c.HOP_ENQUEUE, event=c.EV_ENQUEUE, name=src.get("name") or "app",
                 status=status, exception=exception, status_message=exception,
                 queue=src.get("queue"), confidence=enq_conf, detail="\n".join(lines))
        )  # fmt: skip
    if not has_run:
        out += _revoke_rows(base, celery, conf)
    if has_run or start is None:
        return out
    after = [r for r in celery if r["ts"] >= start["ts"]]
    ends = [r for r in after if r["event"] in _END_EVENTS]
    end = ends[-1] if ends else None
    retried = [r for r in after if r["event"] == "task_retry"]
    if end is not None and retried and retried[-1]["ts"] > end["ts"]:
        end = None  # it will run again
    soft = first.get("task_soft_time_limit")
    status, exception, end_ts = "unset", None, None
    used = [start, *after]
    if end is not None:
        end_ts = end["ts"]
        if end["event"] == "task_succeeded":
            status = "ok"
        else:
            status = "error"
            exception = end.get("exception") or end.get("status_message") or end.get("detail")
            if end["event"] == "task_time_limit":
                exception = f"TimeLimitExceeded: {end.get('detail')}"
    elif lost is not None:
        status, end_ts, used = "error", lost["ts"], [*used, lost]
        exception = lost.get("exception") or lost.get("status_message") or "WorkerLostError"
    elif soft is not None:
        status, end_ts = "error", soft["ts"]
        exception = f"SoftTimeLimitExceeded: {soft.get('detail')}"
    if status != "ok" and exception is None and layer is not None:
        status, end_ts = "error", end_ts or layer["ts"]
        exception = layer.get("exception") or layer.get("status_message") or layer.get("detail")
        layer = {
            **layer,
            "detail": (layer.get("detail") or "").split("\n", 1)[0]
            + f" [no task id: the one task running on {layer.get('service')} then]",
        }
        used.append(layer)
    app_errors = [r for r in app if r.get("status") == "error" and r["ts"] >= start["ts"]]
    if status == "unset" and app_errors:
        status, end_ts = "error", app_errors[0]["ts"]
        exception = app_errors[0].get("exception") or app_errors[0].get("detail")
        used.append(app_errors[0])
    lines = [_line(r) for r in used]
    timed = lost is not None or any(r is layer for r in used if layer is not None)
    tied = weakest(conf, "time" if timed else None) if exact_tie else conf
    out.append(
        _row(**{**base, "service": start["service"]}, ts=start["ts"], end_ts=end_ts,
             span_id=log_span_id(task_id),
             hop=c.HOP_TASK, event=c.EV_TASK, name="celery", status=status,
             exception=exception, status_message=exception, confidence=tied,
             detail="\n".join(dict.fromkeys(lines)))
    )  # fmt: skip
    return out
