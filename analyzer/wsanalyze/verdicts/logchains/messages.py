"""The app's own lines about a message on its socket: received, sent, raised; group gaps.

A consumer that logs ``message received … message_id=…`` says the frame reached it; one
that logs ``answer sent … message_id=…`` says the answer left on the socket; an error
line naming the message, on the process that holds the socket, says the consumer raised
while handling it (at ``receive`` before any task was enqueued for it, at ``deliver``
after). Each becomes a chain row of that message, on the one connection of its
conversation open then on that service (none when several were: the line does not say
which). Lines on another service (a worker's own lines about the message) are not the
socket's and make no row here.

**Group gaps.** An app that logs its consumers joining and leaving groups (``joined group
… group=chat_x``, ``left group …``) shows when a conversation's group had nobody in it.
A task that ran from start to end inside such a gap, while a socket of the conversation
stayed open, streamed its answer to an empty group: a publish row with ``members = 0``
(confidence ``time``) — what ``ws.publish`` would have recorded.
"""

from __future__ import annotations

from datetime import datetime

import polars as pl
from wstrace import conventions as c

from ._rows import (
    PRODUCERS,
    _line,
    _row,
    _traced_conversations,
    raw_log,
    weakest,
)
from .connections import STREAM_SLACK, Conns, _open_at

_SOCKET_HOPS = (c.HOP_RECEIVE, c.HOP_SEND)
SENDS_LOGGED = "sends_logged"
"""``event`` of a mark row (one per service, tied to no conversation): the app on that
service logs the answers it sends, so a finished task with no such line was not sent."""


def message_rows(
    frame: pl.DataFrame,
    conns: Conns,
    runs: list[dict],
    closed: dict[str, datetime] | None = None,
) -> list[dict]:
    """Receive, send and consumer-error rows from the app's lines, group-gap and layer
    publishes, and which services log their sends. ``closed``: connection id → its close
    time as precisely as a line gives it."""
    traced = _traced_conversations(frame)
    app = frame.filter(
        raw_log()
        & ~pl.col("name").is_in(PRODUCERS).fill_null(False)
        & pl.col("conversation_id").is_not_null()
        & pl.col("ts").is_not_null()
    )
    if app.is_empty():
        return []
    marks = _sends_logged(app)
    app = app.filter(~pl.col("conversation_id").is_in(sorted(traced)))
    layers = _layers(frame)
    mismatched = _layer_publishes(layers, app, conns, runs)
    done = {r["task_id"] for r in mismatched}
    runs = [r for r in runs if r.get("task_id") not in done]
    gaps = _gap_publishes(app, conns, runs, closed or {})
    return marks + _socket_rows(app, conns) + mismatched + gaps


def _sends_logged(app: pl.DataFrame) -> list[dict]:
    """One mark per service whose app logged an answer sent on a socket."""
    sends = app.filter(
        (pl.col("hop") == c.HOP_SEND)
        & pl.col("message_id").is_not_null()
        & pl.col("task_id").is_null()
    )
    return [
        _row(service=r["service"], ts=r["ts"], event=SENDS_LOGGED, name="app",
             confidence="exact", detail=_line(r))
        for r in sends.sort("ts").unique("service", keep="first").iter_rows(named=True)
    ]  # fmt: skip


def _layers(frame: pl.DataFrame) -> dict[str, list[tuple[datetime, str, dict]]]:
    """service → the channel layers its process said it loaded (app lines naming a layer)."""
    lines = frame.filter(
        raw_log()
        & ~pl.col("name").is_in(PRODUCERS).fill_null(False)
        & pl.col("layer").is_not_null()
        & pl.col("ts").is_not_null()
    ).sort("ts")
    out: dict[str, list[tuple[datetime, str, dict]]] = {}
    for r in lines.iter_rows(named=True):
        out.setdefault(r["service"], []).append((r["ts"], r["layer"], r))
    return out


def _layer_at(layers: dict, service: str | None, ts: datetime) -> tuple[str, dict] | None:
    """The layer ``service`` had loaded at ``ts`` (its last such line before), if it said."""
    said = [(layer, line) for at_, layer, line in layers.get(service or "", []) if at_ <= ts]
    return said[-1] if said else None


def _web_service(app: pl.DataFrame, conns: Conns, run: dict) -> str | None:
    """The service holding the run's conversation's socket."""
    known = conns.by_id.get(run.get("connection_id"))
    if known is not None:
        return known["service"]
    services = {k["service"] for k in conns.of(run["conversation_id"])}
    if not services:
        services = set(
            app.filter(
                (pl.col("conversation_id") == run["conversation_id"])
                & pl.col("hop").is_in(_SOCKET_HOPS)
            )["service"].drop_nulls()
        )
    return services.pop() if len(services) == 1 else None


def _layer_publishes(layers: dict, app: pl.DataFrame, conns: Conns, runs: list[dict]) -> list[dict]:
    """A run whose worker loaded another channel layer than the socket's process published
    where no consumer listens: the socket's layer (a group_add row, tied to no connection)
    and the worker's publish (``members = 0``), as ws.group_add / ws.publish would record."""
    if len(layers) < 2:
        return []
    groups = {
        r["conversation_id"]: r["group"]
        for r in app.filter(pl.col("group").is_not_null()).iter_rows(named=True)
    }
    out = []
    for run in runs:
        if run.get("status") != "ok" or run.get("end_ts") is None:
            continue
        worker = _layer_at(layers, run["service"], run["ts"])
        web = _layer_at(layers, _web_service(app, conns, run), run["ts"])
        if worker is None or web is None or worker[0] == web[0]:
            continue
        group = groups.get(run["conversation_id"])
        base = dict(conversation_id=run["conversation_id"], message_id=run["message_id"],
                    group=group, name="app", status="ok",
                    confidence=weakest(run.get("confidence"), "path"))  # fmt: skip
        out.append(
            _row(**base, service=web[1]["service"], ts=run["ts"], end_ts=run["ts"],
                 event=c.EV_GROUP_ADD, layer=web[0], detail=_line(web[1]))
        )  # fmt: skip
        out.append(
            _row(**base, service=run["service"], connection_id=run.get("connection_id"),
                 task_id=run.get("task_id"), ts=run["end_ts"], end_ts=run["end_ts"],
                 hop=c.HOP_PUBLISH, event=c.EV_GROUP_SEND, members=0, layer=worker[0],
                 parent_span_id=run.get("span_id"),
                 detail="\n".join([_line(worker[1]) + " [the worker's layer]",
                                   _line(web[1]) + " [the socket's layer]",
                                   *(run.get("detail") or "").split("\n")]))
        )  # fmt: skip
    return out


def _socket_of(conns: Conns, line: dict) -> tuple[bool, str | None]:
    """(the line is on the socket's process, the connection it names when only one fits)."""
    conversation, service = line["conversation_id"], line.get("service")
    if not conns.of(conversation):  # no access lines for it: the app's own lines are all there is
        return True, f"{service}:{conversation}"
    # the app's line may be stamped after Daphne's close of the same socket: engine stamps
    # of stdout and stderr are taken as each stream is read
    found = [
        k
        for k in _open_at(conns, conversation, line["ts"], after=STREAM_SLACK)
        if k["service"] == service
    ]
    if not found:
        return False, None
    return True, found[0]["connection_id"] if len(found) == 1 else None


def _socket_rows(app: pl.DataFrame, conns: Conns) -> list[dict]:
    lines = app.filter(
        pl.col("message_id").is_not_null()
        & pl.col("task_id").is_null()
        & (pl.col("hop").is_in(_SOCKET_HOPS) | (pl.col("status") == "error")).fill_null(False)
    ).sort("ts")
    if lines.is_empty():
        return []
    # when the app first named a task for each message: an error after it is the answer's
    enqueued = {
        r["message_id"]: r["ts"]
        for r in app.filter(pl.col("message_id").is_not_null() & pl.col("task_id").is_not_null())
        .group_by("message_id")
        .agg(pl.col("ts").min())
        .iter_rows(named=True)
    }
    out: list[dict] = []
    received: set[str] = set()
    for line in lines.iter_rows(named=True):
        on_socket, connection = _socket_of(conns, line)
        if not on_socket:
            continue
        message = line["message_id"]
        base = dict(service=line["service"], conversation_id=line["conversation_id"],
                    message_id=message, connection_id=connection, ts=line["ts"],
                    end_ts=line["ts"], name="app", detail=_line(line),
                    confidence=weakest(line.get("confidence"), None if connection else "time"))  # fmt: skip
        if line["status"] == "error":
            since = enqueued.get(message)
            hop = c.HOP_DELIVER if since is not None and since <= line["ts"] else c.HOP_RECEIVE
            exception = line.get("exception") or line.get("status_message") or "error logged"
            out.append(_row(**base, hop=hop, event=c.EV_EXCEPTION, status="error",
                            exception=exception, status_message=exception))  # fmt: skip
        elif line["hop"] == c.HOP_RECEIVE:
            if message in received:
                continue
            received.add(message)
            out.append(_row(**base, hop=c.HOP_RECEIVE, event=c.EV_RECEIVE, status="ok"))
        else:
            out.append(_row(**base, hop=c.HOP_SEND, event=c.EV_SEND, status="ok"))
    return out


Steps = list[tuple[datetime, int, dict]]


def _members(app: pl.DataFrame) -> dict[str, dict[str, Steps]]:
    """conversation → service → its group join (+1) / leave (-1) lines in time order."""
    lines = app.filter(pl.col("event").is_in((c.EV_GROUP_ADD, c.EV_GROUP_DISCARD))).sort("ts")
    out: dict[str, dict[str, Steps]] = {}
    for r in lines.iter_rows(named=True):
        step = 1 if r["event"] == c.EV_GROUP_ADD else -1
        per_service = out.setdefault(r["conversation_id"], {})
        per_service.setdefault(r["service"], []).append((r["ts"], step, r))
    return out


def _gap_publishes(
    app: pl.DataFrame, conns: Conns, runs: list[dict], closed: dict[str, datetime]
) -> list[dict]:
    members = _members(app)
    if not members:
        return []
    # The app's own "finished" line is written when the task body returns; Celery logs its
    # success only after storing the result, which a consumer waiting on it may already
    # have seen (and rejoined): the body's end is when the answer stopped being published.
    finished = {
        r["task_id"]: r["ts"]
        for r in app.filter(pl.col("task_id").is_not_null() & (pl.col("event") == "task_succeeded"))
        .group_by("task_id")
        .agg(pl.col("ts").min())
        .iter_rows(named=True)
    }
    out = []
    for run in runs:
        if run.get("status") != "ok" or run.get("end_ts") is None:
            continue
        body_end = finished.get(run.get("task_id"))
        if body_end is not None and run["ts"] <= body_end < run["end_ts"]:
            run = {**run, "end_ts": body_end}
        gap = _empty_through(members, conns, run, closed)
        if gap is None:
            continue
        left, group = gap
        out.append(
            _row(service=run["service"], conversation_id=run["conversation_id"],
                 message_id=run["message_id"], connection_id=run.get("connection_id"),
                 task_id=run.get("task_id"), ts=run["end_ts"], end_ts=run["end_ts"],
                 hop=c.HOP_PUBLISH, event=c.EV_GROUP_SEND, name="app", status="ok",
                 group=group, members=0, confidence=weakest(run.get("confidence"), "time"),
                 parent_span_id=run.get("span_id"),
                 detail="\n".join([
                     _line(left) + " [the conversation's last socket left the group]",
                     *(run.get("detail") or "").split("\n"),
                 ]))
        )  # fmt: skip
    return out


def _open_after(conn: dict, closed: dict[str, datetime], ts: datetime) -> bool:
    """The connection surely closed after ``ts`` (or never): the app's close line is precise;
    Daphne's whole-second stamp is the start of its second, so it proves only what it reads."""
    at = closed.get(conn["connection_id"]) or conn["disconnected"]
    return at is None or at > ts


def _empty_through(
    members: dict[str, dict[str, Steps]],
    conns: Conns,
    run: dict,
    closed: dict[str, datetime],
) -> tuple[dict, str | None] | None:
    """(the leave line, the group) when the conversation's group was empty for the whole run
    while a socket of it stayed open; else None."""
    start, end = run["ts"], run["end_ts"]
    conversation = run["conversation_id"]
    for service, steps in members.get(conversation, {}).items():
        count, last_leave = 0, None
        for ts, step, line in steps:
            if ts > start:
                break
            count = max(0, count + step)
            if step < 0:
                last_leave = line
        if count > 0 or last_leave is None:
            continue  # a member when the run began, or no line says it ever left
        if any(step > 0 for ts, step, _ in steps if start < ts <= end):
            continue  # someone joined while it ran: part of the answer may have arrived
        # a socket of the conversation open on that service through the run (not a client
        # that left: its consumer leaves the group on disconnect)
        still_open = [
            k for k in _open_at(conns, conversation, end)
            if k["service"] == service
            and _open_after(k, closed, end)
        ]  # fmt: skip
        if not still_open and conns.of(conversation):
            continue
        return last_leave, last_leave.get("group")
    return None
