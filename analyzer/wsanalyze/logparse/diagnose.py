"""Log-only diagnosis: what container logs alone say about a conversation, and how sure.

With no traces (wstrace not enabled yet), the logs still show: handshakes refused
(`WSREJECT`), connections that ran no task, tasks received and never finished,
tasks that raised, consumer crashes (1011), over-capacity drops, broker / Redis
errors and idle drops. Every verdict carries a ``confidence``:

* ``path``  the conversation is named by the line itself (WebSocket path, group name)
* ``exact`` a task id or wstrace id field ties the line to the conversation
* ``time``  only time proximity ties it (see ``correlate``)

and says what enabling wstrace would add. Deliveries are never logged, and several
losses are silent in every log (consumer_gone, layer_mismatch): a conversation whose
tasks succeeded while it was connected gets outcome ``unknown`` / cause ``unknown``
with that reason, not ``delivered``. Server close codes (4001, 4004, 4005) are not
logged either: a connection closed with no task, or while its task still ran, is
``unknown`` with the candidates named.

    diagnosis = diagnose(events, "abc")        # events: log rows of every service
    diagnosis.verdict.cause, diagnosis.verdict.confidence
    diagnosis.to_dict()                         # the --json contract + confidence fields
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from wsanalyze.logparse.correlate import connections, correlate

UNCONFIRMED = "unknown"
"""Outcome of a log-only verdict when the logs cannot tell delivered from silently lost
(beside the contract's delivered / rejected / lost / in_flight, which need spans)."""
HANDSHAKE_TIMEOUT = timedelta(seconds=4.5)
IDLE_DROP = timedelta(seconds=45)
IN_FLIGHT = timedelta(seconds=5)
ANSWER_GRACE = timedelta(seconds=0.5)
"""A task may log success this long after the client, having its last frame, closed."""
# a task that raised one of these could not reach the channel layer's Redis
_REDIS_DOWN = (
    r"(?i)error \d+ connecting to|connection refused|timeout connecting to server|"
    r"connection closed by server|oom command not allowed|redis\.exceptions\.ConnectionError"
)

WSTRACE_ADDS = {
    "handshake_rejected": "wstrace's ws.connect span records ws.origin_allowed, "
    "ws.user_authenticated and the close code the app asked for, which tell origin_rejected "
    "(4003) from auth_rejected (4001) — both are the same WSREJECT / HTTP 403 in Daphne's log.",
    "handshake_timeout": "wstrace's ws.connect/ws.auth spans show which step of the handshake "
    "was slow.",
    "consumer_error": "wstrace's ws.deliver span names the handler, the chunk (ws.seq) and the "
    "message it crashed on; the log only has the exception and the time.",
    "task_failed": "wstrace ties the task to its message (ws.message_id) exactly and shows how "
    "many chunks were published and delivered before it raised.",
    "task_stuck": "wstrace's ws.task span shows how far the task got (last ws.publish seq).",
    "no_worker": "wstrace's ws.enqueue span records the queue the task went to; "
    "ws.worker_ready records the queues each worker consumes.",
    "channel_full": "wstrace counts the chunks each member missed (ws.seq gaps, "
    "ws.over_capacity per publish).",
    "channel_layer_unavailable": "wstrace marks the exact publish that failed and its message.",
    "broker_unavailable": "wstrace's ws.enqueue span shows which message could not be enqueued.",
    "idle_timeout": "wstrace records who closed (ws.closed_by) and the close code.",
    "client_disconnected": "wstrace records who closed the socket (ws.closed_by), the close "
    "code, and which chunks were sent before it closed.",
    "ok": "wstrace's ws.send spans prove each chunk reached the socket (logs never show "
    "deliveries).",
    "unknown": "wstrace records each client message (ws.receive), its task (ws.enqueue) and "
    "every chunk published, delivered and sent, so silent losses (consumer_gone, "
    "layer_mismatch, message_expired) become visible.",
}


@dataclass(frozen=True)
class LogVerdict:
    outcome: str  # delivered | rejected | lost | in_flight
    hop: str | None
    cause: str
    summary: str
    confidence: str  # exact | path | time
    ts: datetime | None = None
    evidence: tuple[str, ...] = ()
    wstrace_would_add: str = ""
    task_id: str | None = None


@dataclass(frozen=True)
class LogConnection:
    client: str | None
    service: str | None
    opened: datetime | None
    accepted: bool
    closed: datetime | None
    outcome: str
    cause: str
    confidence: str


@dataclass
class LogDiagnosis:
    conversation_id: str
    verdict: LogVerdict
    connections: list[LogConnection] = field(default_factory=list)
    tasks: list[LogVerdict] = field(default_factory=list)
    timeline: pl.DataFrame | None = None

    def to_dict(self) -> dict[str, Any]:
        """The conversation --json shape (docs/verdicts.md), from logs, with `confidence` fields."""
        timeline = []
        if self.timeline is not None:
            for row in self.timeline.iter_rows(named=True):
                timeline.append(
                    {
                        "ts": row["ts"].isoformat() if row["ts"] else None,
                        "source": "log",
                        "service": row["service"],
                        "hop": row["hop"],
                        "event": row["event"],
                        "message_id": row["message_id"],
                        "seq": None,
                        "detail": (row["detail"] or "").split("\n", 1)[0],
                        "trace_id": row["trace_id"],
                        "confidence": row["confidence"],
                    }
                )
        verdict = asdict(self.verdict)
        return {
            "conversation_id": self.conversation_id,
            "verdict": {
                k: verdict[k] for k in ("outcome", "hop", "cause", "summary", "confidence")
            },
            "connections": [
                {
                    "connection_id": c.client,
                    "opened": c.opened.isoformat() if c.opened else None,
                    "closed": c.closed.isoformat() if c.closed else None,
                    "close_code": None,
                    "outcome": c.outcome,
                    "cause": c.cause,
                    "confidence": c.confidence,
                }
                for c in self.connections
            ],
            "messages": [
                {
                    "message_id": None,
                    "outcome": t.outcome,
                    "hop": t.hop,
                    "cause": t.cause,
                    "chunks": None,
                    "evidence": list(t.evidence),
                    "hint": t.wstrace_would_add,
                    "confidence": t.confidence,
                }
                for t in self.tasks
            ],
            "timeline": timeline,
            "evidence": list(self.verdict.evidence),
            "wstrace_would_add": self.verdict.wstrace_would_add,
        }


def _line(row: dict) -> str:
    first = (row.get("detail") or "").split("\n", 1)[0]
    return f"{row['ts']:%H:%M:%S.%f}"[:-3] + f" {row['service']}: {first[:240]}"


def _verdict(outcome, hop, cause, summary, confidence, ts, rows=()) -> LogVerdict:
    return LogVerdict(
        outcome,
        hop,
        cause,
        summary,
        confidence,
        ts,
        tuple(_line(r) for r in rows),
        WSTRACE_ADDS.get(cause, WSTRACE_ADDS["unknown"]),
    )


def _connection_verdicts(conns: pl.DataFrame, own: pl.DataFrame, events: pl.DataFrame) -> list:
    out: list[tuple[LogConnection, LogVerdict | None]] = []
    for c in conns.iter_rows(named=True):
        rows = own.filter(
            (pl.col("name") == "daphne")
            & (pl.col("attributes").str.json_path_match("$.client") == c["client"])
            & (pl.col("ts") >= c["connecting"])
        ).to_dicts()
        rows = [r for r in rows if c["disconnected"] is None or r["ts"] <= c["disconnected"]]
        if c["rejected"] is not None:
            slow = c["connecting"] and c["rejected"] - c["connecting"] >= HANDSHAKE_TIMEOUT
            cause = "handshake_timeout" if slow else "handshake_rejected"
            summary = (
                "the handshake was refused before accept (Daphne WSREJECT: HTTP 403, the client "
                "sees 1006); origin and auth refusals look the same in logs"
                if not slow
                else "the handshake did not finish within Daphne's connect timeout"
            )
            v = _verdict("rejected", "connect", cause, summary, "path", c["rejected"], rows)
            conn = LogConnection(
                c["client"],
                c["service"],
                c["connecting"],
                False,
                c["disconnected"],
                "rejected",
                cause,
                "path",
            )
            out.append((conn, v))
            continue
        crash = own.filter(
            (pl.col("event") == "app_exception")
            & (pl.col("service") == c["service"])
            & (pl.col("ts") >= (c["accepted"] or c["connecting"]))
            # a whole-second access stamp may read up to 1 s before the crash it follows
            & (pl.col("ts") <= (c["disconnected"] or events["ts"].max()) + timedelta(seconds=1))
        ).to_dicts()
        if crash:
            exc = crash[0]["exception"] or "an exception"
            v = _verdict(
                "lost",
                "deliver",
                "consumer_error",
                f"the consumer crashed ({exc}); Daphne closed the socket with 1011",
                crash[0]["confidence"] or "time",
                crash[0]["ts"],
                [*rows[:2], crash[0]],
            )
            conn = LogConnection(
                c["client"],
                c["service"],
                c["connecting"],
                True,
                c["disconnected"],
                "lost",
                "consumer_error",
                crash[0]["confidence"] or "time",
            )
            out.append((conn, v))
            continue
        out.append(
            (
                LogConnection(
                    c["client"],
                    c["service"],
                    c["connecting"],
                    c["accepted"] is not None,
                    c["disconnected"],
                    "closed",
                    "ok",
                    "path",
                ),
                None,
            )
        )
    return out


def _task_verdicts(own: pl.DataFrame, events: pl.DataFrame, window_end, in_flight) -> list:
    verdicts = []
    tasks = own.filter(pl.col("task_id").is_not_null() & (pl.col("name") == "celery"))
    for (task_id,), rows in tasks.sort("ts").group_by("task_id", maintain_order=True):
        before = len(verdicts)
        by_event = {r["event"]: r for r in rows.iter_rows(named=True)}
        conf = rows["confidence"].drop_nulls().first() or "time"
        name = rows["task_name"].drop_nulls().first()
        all_rows = rows.to_dicts()
        if "task_unregistered" in by_event:
            r = by_event["task_unregistered"]
            verdicts.append(
                _verdict(
                    "lost",
                    "task",
                    "no_worker",
                    f"the worker does not know task {name}: it was discarded",
                    conf,
                    r["ts"],
                    all_rows,
                )
            )
        elif "task_failed" in by_event or "task_soft_time_limit" in by_event:
            r = by_event.get("task_soft_time_limit") or by_event["task_failed"]
            stuck = r["event"] == "task_soft_time_limit" or "TimeLimit" in (r["exception"] or "")
            cause = "task_stuck" if stuck else "task_failed"
            hop = "task"
            if not stuck and re.search(_REDIS_DOWN, r["exception"] or ""):
                cause, hop = "channel_layer_unavailable", "publish"
            what = "hit its time limit" if stuck else f"raised {r['exception']}"
            verdicts.append(
                _verdict(
                    "lost", hop, cause, f"task {name}[{task_id}] {what}", conf, r["ts"], all_rows
                )
            )
        elif "task_succeeded" in by_event:
            r = by_event["task_succeeded"]
            verdicts.append(
                _verdict(
                    "delivered",
                    "task",
                    "ok",
                    f"task {name}[{task_id}] succeeded; delivery to the socket is not logged",
                    conf,
                    r["ts"],
                    all_rows,
                )
            )
        elif "task_received" in by_event:
            r = by_event["task_received"]
            lost = events.filter(
                (pl.col("event") == "worker_lost")
                & (pl.col("service") == r["service"])
                & (pl.col("ts") >= r["ts"])
            ).to_dicts()
            if lost:
                verdicts.append(
                    _verdict(
                        "lost",
                        "task",
                        "task_stuck",
                        f"task {name}[{task_id}] was running when a worker "
                        "process died (WorkerLostError)",
                        "time",
                        lost[0]["ts"],
                        [r, lost[0]],
                    )
                )
            elif window_end is not None and window_end - r["ts"] < in_flight:
                verdicts.append(
                    _verdict(
                        "in_flight",
                        "task",
                        "unknown",
                        f"task {name}[{task_id}] is still running at the end of the logs",
                        conf,
                        r["ts"],
                        [r],
                    )
                )
            else:
                verdicts.append(
                    _verdict(
                        "lost",
                        "task",
                        "task_stuck",
                        f"task {name}[{task_id}] was received and never finished",
                        conf,
                        r["ts"],
                        [r],
                    )
                )
        verdicts[before:] = [
            LogVerdict(**{**asdict(v), "task_id": task_id}) for v in verdicts[before:]
        ]
    return verdicts


def _conversation_facts(own: pl.DataFrame, events: pl.DataFrame, start, end) -> list[LogVerdict]:
    out = []
    over = own.filter(pl.col("event") == "over_capacity").to_dicts()
    if over:
        r = over[0]
        out.append(
            _verdict(
                "lost",
                "publish",
                "channel_full",
                f"{r['over_capacity']} of {r['members']} channels of {r['group']} were "
                "over capacity: chunks were dropped",
                r["confidence"] or "path",
                r["ts"],
                over[:3],
            )
        )
    if start is None:
        return out
    window = (pl.col("ts") >= start) & (pl.col("ts") <= end)
    broker = events.filter(window & pl.col("event").is_in(["broker_unreachable", "broker_lost"]))
    redis = events.filter(window & (pl.col("event") == "redis_error"))
    if not redis.is_empty():
        r = redis.row(0, named=True)
        out.append(
            _verdict(
                "lost",
                "publish",
                "channel_layer_unavailable",
                f"{r['service']} could not reach Redis while the conversation was "
                f"open: {r['exception'] or r['status_message']}",
                "time",
                r["ts"],
                redis.head(3).to_dicts(),
            )
        )
    elif not broker.is_empty():
        r = broker.row(0, named=True)
        out.append(
            _verdict(
                "lost",
                "enqueue",
                "broker_unavailable",
                f"the Celery broker was unreachable while the conversation was "
                f"open ({r['service']}: {r['status_message']})",
                "time",
                r["ts"],
                broker.head(3).to_dicts(),
            )
        )
    return out


def diagnose(
    events: pl.DataFrame | pl.LazyFrame,
    conversation_id: str,
    *,
    window_end: datetime | None = None,
    in_flight: timedelta = IN_FLIGHT,
) -> LogDiagnosis:
    """The log-only verdict of one conversation (log rows of every service as input)."""
    frame = correlate(events)
    frame = frame.filter(pl.col("source") == "log").sort("ts")
    if window_end is None and not frame.is_empty():
        window_end = frame["ts"].max()
    own = frame.filter(pl.col("conversation_id") == conversation_id)
    conns = connections(frame).filter(pl.col("conversation_id") == conversation_id)
    conn_results = _connection_verdicts(conns, own, frame)
    start = conns["connecting"].min() if not conns.is_empty() else None
    end = conns["disconnected"].max() if not conns.is_empty() else None
    end = end or window_end
    tasks = _task_verdicts(own, frame, window_end, in_flight)
    failures = [v for _, v in conn_results if v is not None]
    failures += [t for t in tasks if t.outcome != "delivered"]
    failures += _conversation_facts(own, frame, start, end)
    failures.sort(key=lambda v: (v.ts is None, v.ts.timestamp() if v.ts else 0.0))
    if failures:
        verdict = failures[0]
    elif (cut := _closed_mid_answer(conns, tasks)) is not None:
        verdict = cut
    elif any(t.outcome == "delivered" for t in tasks):
        ok = next(t for t in tasks if t.outcome == "delivered")
        verdict = _verdict(
            UNCONFIRMED,
            None,
            "unknown",
            "the task succeeded while the connection was open and no log line shows a failure; "
            "whether the answer reached the client is not in any log (a consumer out of its "
            "group, a worker on another layer, dropped chunks are all silent)",
            ok.confidence,
            ok.ts,
            [],
        )
        verdict = LogVerdict(**{**asdict(verdict), "evidence": ok.evidence})
    elif not conns.is_empty():
        idle = _idle(conns, own)
        verdict = idle or _verdict(
            UNCONFIRMED,
            None,
            "unknown",
            "the connection opened and closed and no task ran for it: either no message was "
            "sent, the server closed the socket (4001 auth, 4005 bad frame: Daphne logs no "
            "close code), or the task never reached a worker (no_worker). Logs cannot tell which.",
            "path",
            start,
            own.head(4).to_dicts(),
        )
    else:
        verdict = _verdict(
            UNCONFIRMED, None, "unknown", "no log line names this conversation", "time", None, []
        )
    return LogDiagnosis(
        conversation_id,
        verdict,
        [c for c, _ in conn_results],
        tasks,
        own.select(
            "ts", "service", "hop", "event", "message_id", "detail", "trace_id", "confidence"
        ),
    )


def _closed_mid_answer(conns: pl.DataFrame, tasks: list[LogVerdict]) -> LogVerdict | None:
    """A task that finished after its conversation's last connection closed: the rest of
    the answer went to a closed socket. Who closed is not logged."""
    if conns.is_empty() or not tasks:
        return None
    closed = conns["disconnected"].max()
    if closed is None:
        return None
    # a whole-second access stamp: the close happened somewhere in that second
    # (and the last frame goes out before the worker logs success: allow it a moment)
    surely_after = closed + (timedelta(seconds=1) if closed.microsecond == 0 else ANSWER_GRACE)
    late = [
        t for t in tasks if t.outcome == "delivered" and t.ts is not None and t.ts > surely_after
    ]
    if not late:
        return None
    t = late[0]
    return LogVerdict(
        "lost",
        "send",
        "unknown",
        f"the connection closed at {closed:%H:%M:%S.%f} while its task was still running "
        f"(it finished at {t.ts:%H:%M:%S.%f}): the client left (client_disconnected) or the "
        "server closed it (4004 rate limit, 4005 bad frame …) — Daphne logs no close code",
        t.confidence,
        closed,
        t.evidence,
        WSTRACE_ADDS["client_disconnected"],
        t.task_id,
    )


def _idle(conns: pl.DataFrame, own: pl.DataFrame) -> LogVerdict | None:
    """A connection that lasted long with nothing logged at the end: an idle proxy dropped it."""
    for c in conns.iter_rows(named=True):
        if c["accepted"] is None or c["disconnected"] is None:
            continue
        last = own.filter(
            (pl.col("ts") < c["disconnected"]) & (pl.col("event") != "ws_disconnect")
        )["ts"].max()
        if last is not None and c["disconnected"] - last >= IDLE_DROP:
            quiet = (c["disconnected"] - last).total_seconds()
            return _verdict(
                "lost",
                "disconnect",
                "idle_timeout",
                f"the connection was dropped after {quiet:.0f} s without traffic and no app "
                "close: an idle timeout (proxy) is likely",
                "time",
                c["disconnected"],
                own.filter(pl.col("ts") >= last).head(3).to_dicts(),
            )
    return None


def diagnose_report(
    events: pl.DataFrame | pl.LazyFrame,
    conversation_id: str,
    *,
    window_end: datetime | None = None,
    problems: tuple[str, ...] = (),
    sources: tuple[str, ...] = (),
):
    """The log-only diagnosis as a `wsanalyze.report.ConversationReport` (every renderer
    takes it). Confidence and what wstrace would add go into the summaries and hints."""
    from wsanalyze.report import (
        Chunks,
        ConnectionVerdict,
        ConversationReport,
        MessageVerdict,
        TimelineEntry,
        Verdict,
    )

    d = diagnose(events, conversation_id, window_end=window_end)
    v = d.verdict
    verdict = Verdict(
        v.outcome, v.hop, v.cause, f"{v.summary} [logs only; confidence: {v.confidence}]"
    )
    connections = tuple(
        ConnectionVerdict(
            connection_id=f"{c.service}:{c.client}",
            opened=c.opened,
            closed=c.closed,
            close_code=None,
            closed_by=None,
            outcome=c.outcome,
            cause=c.cause,
            summary=f"from Daphne's access lines (confidence: {c.confidence})",
        )
        for c in d.connections
    )
    messages = tuple(
        MessageVerdict(
            message_id=f"task:{t.task_id}",
            connection_id=None,
            outcome=t.outcome,
            hop=t.hop,
            cause=t.cause,
            chunks=Chunks(),
            hops_seen=("task",),
            evidence=t.evidence,
            hint=t.wstrace_would_add,
            summary=f"{t.summary} [confidence: {t.confidence}]",
            first_ts=t.ts,
            failed_ts=t.ts if t.outcome == "lost" else None,
            rule="logs",
        )
        for t in d.tasks
    )
    rows = d.timeline.to_dicts() if d.timeline is not None else []
    start = rows[0]["ts"] if rows else None
    timeline = tuple(
        TimelineEntry(
            ts=r["ts"],
            offset_ms=(r["ts"] - start).total_seconds() * 1e3 if start else 0.0,
            source="log",
            service=r["service"],
            hop=r["hop"],
            event=r["event"],
            message_id=r["message_id"],
            connection_id=None,
            seq=None,
            status=None,
            detail=(r["detail"] or "").split("\n", 1)[0],
            trace_id=r["trace_id"],
            span_id=None,
            parent_span_id=None,
            name=None,
        )
        for r in rows
    )
    return ConversationReport(
        conversation_id, verdict, connections, messages, timeline, window_end,
        tuple(problems), tuple(sources),
    )  # fmt: skip
