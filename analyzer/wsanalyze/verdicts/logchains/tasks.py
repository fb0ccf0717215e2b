"""Celery runs from worker lines (and the app's lines naming a task id)."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
from wstrace import conventions as c

from ._rows import (
    _END_EVENTS,
    _UNAVAILABLE,
    _WHOLE,
    LOG_EVIDENCE,
    PRODUCERS,
    _line,
    _row,
    _traced_conversations,
    raw_log,
    weakest,
)
from .connections import Conns, _open_at, log_connections


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


def _span_owners(spans: pl.DataFrame) -> dict[str, dict]:
    """task id → the (conversation, message) its spans name (enqueue first, then the run)."""
    rows = (
        spans.filter(
            pl.col("task_id").is_not_null()
            & pl.col("message_id").is_not_null()
            & pl.col("conversation_id").is_not_null()
        )
        .with_columns(_o=pl.when(pl.col("hop") == c.HOP_ENQUEUE).then(0).otherwise(1))
        .sort("_o", "ts")
        .unique("task_id", keep="first")
    )
    return {r["task_id"]: r for r in rows.iter_rows(named=True)}


def _evidence_row(owner: dict, lines: list[dict], notes: dict[int, str] | None = None) -> dict:
    """One evidence-only row: log lines tied exactly to a message whose spans decide it."""
    notes = notes or {}
    text = [_line(r) + notes.get(id(r), "") for r in lines]
    first = lines[0]
    return _row(kind=LOG_EVIDENCE, service=first.get("service"), ts=first["ts"],
                conversation_id=owner["conversation_id"], message_id=owner["message_id"],
                task_id=owner.get("task_id"), name=first.get("name") or "app",
                event=LOG_EVIDENCE, confidence="exact",
                detail="\n".join(dict.fromkeys(text)))  # fmt: skip


def _task_evidence(rows: pl.DataFrame, owner: dict, lost: dict | None) -> list[dict]:
    """The log lines of a task whose run has spans: evidence of its message, never a run.

    Celery's lines and the app's lines carrying the task id join exactly; the worker's
    ``WorkerLostError`` line (no task id) joins when it was the one task open there.
    """
    recs = [r for r in rows.to_dicts() if not r.get("conversation_id")
            or r["conversation_id"] == owner["conversation_id"]]  # fmt: skip
    notes: dict[int, str] = {}
    if lost is not None:
        recs.append(lost)
        notes[id(lost)] = (
            f" [no task id on this line: the one task open on {lost.get('service') or '?'} then]"
        )
    if not recs:
        return []
    return [_evidence_row(owner, sorted(recs, key=lambda r: r["ts"]), notes)]


def _message_evidence(frame: pl.DataFrame) -> list[dict]:
    """App lines naming a message id its spans carry (no task id): evidence of that message."""
    raw = frame.filter(raw_log() & pl.col("message_id").is_not_null() & pl.col("task_id").is_null())
    if raw.is_empty():
        return []
    spans = frame.filter((pl.col("source") != "log") & pl.col("message_id").is_not_null())
    owners = {
        r["message_id"]: r
        for r in spans.filter(pl.col("conversation_id").is_not_null())
        .select("message_id", "conversation_id")
        .unique("message_id", keep="first")
        .iter_rows(named=True)
    }
    out = []
    for (message,), rows in raw.sort("ts").group_by("message_id", maintain_order=True):
        owner = owners.get(message)
        if owner is None:
            continue
        recs = [r for r in rows.to_dicts() if not r.get("conversation_id")
                or r["conversation_id"] == owner["conversation_id"]]  # fmt: skip
        if recs:
            out.append(_evidence_row(owner, recs))
    return out


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
