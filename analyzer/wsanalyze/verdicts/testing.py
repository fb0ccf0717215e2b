"""Build event tables by hand: for tests of verdicts, renderers and commands.

    t = Trace("conv-1")
    conn = t.connect("k1")
    t.message("m1", conn, chunks=3)          # a healthy chain
    report = analyze_conversation(t.frame(), "conv-1")

Times are milliseconds from a fixed start; every helper returns the span id it
wrote so callers can hang children under it or break the chain on purpose.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from wstrace import conventions as c

from ..events import SCHEMA, conform

START = datetime(2026, 1, 2, 10, 0, 0, tzinfo=UTC)

# One counter for every builder: two conversations built side by side must not share trace
# or span ids, which real (random) ids never do and the joins rely on.
_IDS = itertools.count(1)


class Trace:
    """Rows in the event table's schema for one (or more) conversations."""

    def __init__(self, conversation_id: str = "conv-1", *, start: datetime = START) -> None:
        self.conversation_id = conversation_id
        self.start = start
        self.rows: list[dict[str, Any]] = []
        self._ids = _IDS
        self.trace_id = f"{next(self._ids):032x}"

    def _t(self, ms: float | None) -> datetime | None:
        return None if ms is None else self.start + timedelta(milliseconds=ms)

    def span(
        self,
        name: str,
        hop: str | None,
        event: str | None,
        at: float,
        dur: float | None = 1.0,
        *,
        parent: str | None = None,
        service: str = "web",
        **cols: Any,
    ) -> str:
        """One span row; ``dur=None`` leaves it without an end."""
        span_id = f"{next(self._ids):016x}"
        row: dict[str, Any] = {
            "ts": self._t(at),
            "end_ts": None if dur is None else self._t(at + dur),
            "source": "trace",
            "service": service,
            "conversation_id": self.conversation_id,
            "hop": hop,
            "event": event,
            "name": name,
            "status": "unset",
            "trace_id": self.trace_id,
            "span_id": span_id,
            "parent_span_id": parent,
        }
        row.update(cols)
        self.rows.append(row)
        return span_id

    # --- connection -----------------------------------------------------------------------
    def connect(
        self,
        connection_id: str = "k1",
        at: float = 0,
        *,
        accept: bool = True,
        layer: str | None = "L1",
        group: str | None = None,
        user_authenticated: bool | None = True,
        origin_allowed: bool | None = None,
        **cols: Any,
    ) -> str:
        """ws.connect (+ ws.auth, ws.accept and a group_add on ``layer`` when accepted)."""
        root = self.span(
            c.SPAN_CONNECT, c.HOP_CONNECT, c.EV_CONNECT, at, 5,
            connection_id=connection_id, origin_allowed=origin_allowed, **cols,
        )  # fmt: skip
        self.span(
            c.SPAN_AUTH, c.HOP_AUTH, c.EV_AUTH, at + 1, 1, parent=root,
            connection_id=connection_id, user_authenticated=user_authenticated,
        )  # fmt: skip
        if accept:
            if layer:
                self.span(
                    c.SPAN_GROUP_ADD, c.HOP_CONNECT, c.EV_GROUP_ADD, at + 2, 1, parent=root,
                    connection_id=connection_id, layer=layer,
                    group=group or f"chat_{self.conversation_id}",
                )  # fmt: skip
            self.span(
                c.SPAN_ACCEPT, c.HOP_ACCEPT, c.EV_ACCEPT, at + 3, 1, parent=root,
                connection_id=connection_id,
            )  # fmt: skip
        return root

    def reject(
        self, connection_id: str = "k1", at: float = 0, *, code: int = 4003, **cols: Any
    ) -> str:
        """A handshake refused before accept."""
        root = self.span(
            c.SPAN_CONNECT, c.HOP_CONNECT, c.EV_CONNECT, at, 3, connection_id=connection_id,
            status="error", handshake_rejected=True, close_code=code, **cols,
        )  # fmt: skip
        self.span(
            c.SPAN_CLOSE, c.HOP_CONNECT, c.EV_REJECT, at + 1, 1, parent=root,
            connection_id=connection_id, close_code=code, closed_by="server", accepted=False,
        )  # fmt: skip
        return root

    def close(
        self, connection_id: str, at: float, code: int, *, parent: str | None = None, **cols: Any
    ) -> str:
        """The server closed an accepted connection (ws.close then ws.disconnect)."""
        span = self.span(
            c.SPAN_CLOSE, c.HOP_DISCONNECT, c.EV_CLOSE, at, 1, parent=parent,
            connection_id=connection_id, close_code=code, closed_by="server", accepted=True, **cols,
        )  # fmt: skip
        self.disconnect(connection_id, at + 2, code=code, by="server")
        return span

    def disconnect(
        self, connection_id: str, at: float, *, code: int = 1000, by: str = "client", **cols: Any
    ) -> str:
        """ws.disconnect."""
        return self.span(
            c.SPAN_DISCONNECT, c.HOP_DISCONNECT, c.EV_DISCONNECT, at, 1,
            connection_id=connection_id, close_code=code, closed_by=by, **cols,
        )  # fmt: skip

    # --- message chain ----------------------------------------------------------------------
    def receive(
        self, message_id: str, connection_id: str = "k1", at: float = 10, **cols: Any
    ) -> str:
        return self.span(
            c.SPAN_RECEIVE, c.HOP_RECEIVE, c.EV_RECEIVE, at, 2,
            connection_id=connection_id, message_id=message_id, **cols,
        )  # fmt: skip

    def enqueue(
        self, message_id: str, parent: str, at: float, *, queue: str = "celery", **cols: Any
    ) -> str:
        return self.span(
            c.SPAN_ENQUEUE, c.HOP_ENQUEUE, c.EV_ENQUEUE, at, 1, parent=parent,
            message_id=message_id, queue=queue, task_name="chat.tasks.run_agent",
            task_id=f"task-{message_id}", **cols,
        )  # fmt: skip

    def task(
        self, message_id: str, parent: str, at: float, dur: float | None = 50, **cols: Any
    ) -> str:
        cols.setdefault("task_id", f"task-{message_id}")
        return self.span(
            c.SPAN_TASK, c.HOP_TASK, c.EV_TASK, at, dur, parent=parent, service="worker",
            message_id=message_id, queue="celery", task_name="chat.tasks.run_agent", **cols,
        )  # fmt: skip

    def publish(self, message_id: str, parent: str, at: float, seq: int, *, members: int | None = 1,
                layer: str = "L1", event: str = c.EV_GROUP_SEND, **cols: Any) -> str:  # fmt: skip
        """A group_send (by default to the conversation's group, from the worker)."""
        cols.setdefault("service", "worker")
        cols.setdefault("group", f"chat_{self.conversation_id}")
        cols.setdefault("message_type", "chat.chunk")
        return self.span(
            c.SPAN_PUBLISH, c.HOP_PUBLISH, event, at, 1, parent=parent,
            message_id=message_id, seq=seq, members=members, layer=layer, **cols,
        )  # fmt: skip

    def deliver(self, message_id: str, parent: str, at: float, seq: int, connection_id: str = "k1",
                **cols: Any) -> str:  # fmt: skip
        return self.span(
            c.SPAN_DELIVER, c.HOP_DELIVER, c.EV_DELIVER, at, 1, parent=parent,
            message_id=message_id, seq=seq, connection_id=connection_id,
            message_type="chat.chunk", **cols,
        )  # fmt: skip

    def send(self, message_id: str, parent: str, at: float, seq: int | None, **cols: Any) -> str:
        return self.span(
            c.SPAN_SEND, c.HOP_SEND, c.EV_SEND, at, 0.5, parent=parent, message_id=message_id,
            seq=seq, **cols,
        )  # fmt: skip

    def message(
        self,
        message_id: str,
        connection_id: str = "k1",
        at: float = 10,
        *,
        chunks: int = 3,
        deliver_upto: int | None = None,
        members: int | None = 1,
        layer: str = "L1",
        task_dur: float | None = None,
    ) -> dict[str, str]:
        """A whole chain; chunks after ``deliver_upto`` are published but never delivered."""
        rec = self.receive(message_id, connection_id, at)
        enq = self.enqueue(message_id, rec, at + 1)
        dur = task_dur if task_dur is not None else 10.0 * chunks + 5
        task = self.task(message_id, enq, at + 5, dur)
        upto = chunks if deliver_upto is None else deliver_upto
        for seq in range(1, chunks + 1):
            pub = self.publish(message_id, task, at + 5 + 10 * seq, seq,
                               members=members if seq <= upto else 0, layer=layer)  # fmt: skip
            if seq <= upto:
                dlv = self.deliver(message_id, pub, at + 7 + 10 * seq, seq, connection_id)
                self.send(message_id, dlv, at + 8 + 10 * seq, seq, connection_id=connection_id)
        return {"receive": rec, "enqueue": enq, "task": task}

    def worker_ready(self, queues: list[str], at: float = -1000, layer: str = "L1") -> str:
        return self.span(
            c.SPAN_WORKER_READY, None, c.EV_WORKER_READY, at, 1, service="worker",
            conversation_id=None, queues=queues, layer=layer,
        )  # fmt: skip

    def frame(self) -> pl.LazyFrame:
        """The rows as an event table (full schema)."""
        # every row's keys count (polars reads the first 100 by default): a long stream's
        # close or error row comes after them, and its columns would be silently dropped
        return conform(
            pl.LazyFrame(
                self.rows,
                schema_overrides={k: SCHEMA[k] for k in _typed(self.rows)},
                infer_schema_length=None,
            )
        )


def _typed(rows: list[dict[str, Any]]) -> set[str]:
    return {key for row in rows for key in row} & set(SCHEMA)


def combine(*traces: Trace) -> pl.LazyFrame:
    """One event table from several builders."""
    return pl.concat([t.frame() for t in traces], how="vertical")


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_any_value(v) for v in value]}}
    return {"stringValue": str(value)}


def _nanos(ts: datetime) -> str:
    return str(int(ts.timestamp()) * 1_000_000_000 + ts.microsecond * 1000)


def otlp_span(row: dict[str, Any]) -> dict[str, Any]:
    """One event-table row as an OTLP/JSON span."""
    attrs = [
        {"key": key, "value": _any_value(row[column])}
        for key, column in c.ATTRIBUTE_COLUMNS.items()
        if row.get(column) is not None
    ]
    span: dict[str, Any] = {
        "traceId": row["trace_id"],
        "spanId": row["span_id"],
        "name": row["name"],
        "kind": 1,
        "startTimeUnixNano": _nanos(row["ts"]),
        "endTimeUnixNano": _nanos(row["end_ts"] or row["ts"]),
        "attributes": attrs,
        "status": {"code": 2 if row.get("status") == "error" else 0},
    }
    if row.get("parent_span_id"):
        span["parentSpanId"] = row["parent_span_id"]
    if row.get("exception"):
        kind, _, message = row["exception"].partition(": ")
        span["events"] = [
            {
                "timeUnixNano": span["endTimeUnixNano"],
                "name": "exception",
                "attributes": [
                    {"key": "exception.type", "value": {"stringValue": kind}},
                    {"key": "exception.message", "value": {"stringValue": message}},
                ],
            }
        ]
    return span


def write_otlp(traces: list[Trace] | Trace, directory: Any) -> list[Any]:
    """Write the builders' rows as OTLP/JSON lines, one file per service (like the file store)."""
    import json
    from pathlib import Path

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    rows = [row for t in ([traces] if isinstance(traces, Trace) else traces) for row in t.rows]
    by_service: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_service.setdefault(row["service"], []).append(otlp_span(row))
    written = []
    for service, spans in by_service.items():
        doc = {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": service}}]
                    },
                    "scopeSpans": [{"scope": {"name": "wstrace"}, "spans": spans}],
                }
            ]
        }
        path = out / f"{service}-test-1-20260102T100000.0.jsonl"
        path.write_text(json.dumps(doc) + "\n")
        written.append(path)
    return written
