"""One OTLP span object → one event-table row tuple (``ROW_COLUMNS`` order).

Tuples, not dicts or frames: decoding workers build millions of them and send
them between processes, and ``frame.rows_to_frame`` turns them into columns.
A span holding a value its column cannot represent (a timestamp past int64, an
id of the wrong length, an int past its column's range) raises ``BadSpan``
naming it; readers skip that span and report it, never the rest of the file.
"""

from __future__ import annotations

from collections.abc import Iterator

from wstrace import conventions as C

from wsanalyze.sources._otlp.codec import dumps
from wsanalyze.sources._otlp.values import (
    INT32,
    INT64,
    BadSpan,
    any_value,
    as_bool,
    as_int,
    as_str,
    attributes,
    in_range,
    nanos,
    norm_id,
)

# Column order of the row tuples produced here (a subset of events.SCHEMA, by name).
ROW_COLUMNS: tuple[str, ...] = (
    "ts",
    "end_ts",
    "service",
    "conversation_id",
    "connection_id",
    "message_id",
    "hop",
    "event",
    "name",
    "kind",
    "status",
    "status_message",
    "exception",
    "cause",
    "close_code",
    "closed_by",
    "accepted",
    "handshake_rejected",
    "origin_allowed",
    "user_authenticated",
    "seq",
    "group",
    "channel",
    "layer",
    "members",
    "receivers",
    "over_capacity",
    "message_type",
    "task_id",
    "task_name",
    "queue",
    "queues",
    "frame_type",
    "expects_answer",
    "app_message_id",
    "payload_hash",
    "conversation_source",
    "route",
    "trace_id",
    "span_id",
    "parent_span_id",
    "links",
    "attributes",
    "detail",
    "origin",
)

_KINDS = {
    1: "internal",
    2: "server",
    3: "client",
    4: "producer",
    5: "consumer",
    "SPAN_KIND_INTERNAL": "internal",
    "SPAN_KIND_SERVER": "server",
    "SPAN_KIND_CLIENT": "client",
    "SPAN_KIND_PRODUCER": "producer",
    "SPAN_KIND_CONSUMER": "consumer",
}
_STATUS = {
    2: "error",
    1: "ok",
    "STATUS_CODE_ERROR": "error",
    "STATUS_CODE_OK": "ok",
    "2": "error",
    "1": "ok",
}
# Attributes shown in the one-line ``detail`` column, in this order.
_DETAIL_KEYS = (
    C.PATH,
    C.CLOSE_CODE,
    C.CLOSED_BY,
    C.CAUSE,
    C.GROUP,
    C.MEMBERS,
    C.RECEIVERS,
    C.OVER_CAPACITY,
    C.TASK_NAME,
    C.QUEUE,
    C.TASK_STATE,
    C.WORKER,
)


def _exception(events: object) -> str | None:
    """``type: message`` of a span's first exception event, if it has one."""
    for ev in events or ():
        if ev.get("name") == C.EV_EXCEPTION:
            attrs = attributes(ev.get("attributes"))
            etype = attrs.get("exception.type")
            msg = attrs.get("exception.message")
            if etype and msg:
                return f"{etype}: {msg}"
            return as_str(etype or msg) or "exception"
    return None


def _queues(value: object) -> list[str]:
    return [str(q) for q in value] if isinstance(value, list) else [str(value)]


# Attribute key -> (row index, converter) for the attributes with a column of their own
# (conventions.ATTRIBUTE_COLUMNS); the rest of the row is filled from the span.
_CONVERTERS = {  # the others are strings
    C.CLOSE_CODE: as_int,
    C.SEQ: as_int,
    C.MEMBERS: as_int,
    C.RECEIVERS: as_int,
    C.OVER_CAPACITY: as_int,
    C.ACCEPTED: as_bool,
    C.HANDSHAKE_REJECTED: as_bool,
    C.ORIGIN_ALLOWED: as_bool,
    C.USER_AUTHENTICATED: as_bool,
    C.EXPECTS_ANSWER: as_bool,
    C.QUEUES: _queues,
}
_ATTR_COLUMNS: dict[str, tuple[int, object]] = {
    key: (ROW_COLUMNS.index(column), _CONVERTERS.get(key, as_str))
    for key, column in C.ATTRIBUTE_COLUMNS.items()
}
_ATTR_KEYS = frozenset(_ATTR_COLUMNS)
# The integer columns' ranges (events.SCHEMA: close_code is Int32, the others Int64).
_INT_RANGES = {
    key: INT32 if column == "close_code" else INT64
    for key, column in C.ATTRIBUTE_COLUMNS.items()
    if _CONVERTERS.get(key) is as_int
}
_EMPTY: dict = {}
(_NAME, _KIND, _STATUS_I, _STATUS_MSG, _EXC, _TRACE, _SPAN, _PARENT, _LINKS, _ATTRS, _DETAIL,
 _ORIGIN) = (ROW_COLUMNS.index(c) for c in (
    "name", "kind", "status", "status_message", "exception", "trace_id", "span_id",
    "parent_span_id", "links", "attributes", "detail", "origin"))  # fmt: skip
_N = len(ROW_COLUMNS)


_INFINITE = (float("inf"), float("-inf"))
_NO_STAMP = (None, "", 0, "0")  # an absent or zero stamp: the span simply has none


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _stamp(span: dict, key: str) -> int | None:
    raw = span.get(key)
    ns = nanos(raw)
    if not in_range(ns) or (ns is None and raw in _INFINITE):
        raise BadSpan(f"{key} {ns if ns is not None else raw} is out of range")
    if ns is None and raw not in _NO_STAMP:  # present but no integer ("1e30", [1], true)
        raise BadSpan(f"{key} {_short(raw)} is not a number of nanoseconds")
    return ns


def _id(value: object, size: int, key: str) -> str | None:
    """A present id as hex of ``size`` bytes; BadSpan when it is none."""
    if not value:
        return None
    norm = norm_id(value, size)
    if norm is None:
        raise BadSpan(f"{key} {_short(value)} is not a {size}-byte id")
    return norm


def span_row(span: dict, service: str | None, origin: str) -> tuple:
    """One event-table row (ROW_COLUMNS order) from one OTLP span object.

    Raises BadSpan (or, for a span that is not even an object, another error) when
    the span cannot be a row; the caller skips it. A BadSpan in place of the span
    (``iter_spans`` yields one for a resource it cannot read) is raised as it is.
    """
    if isinstance(span, BadSpan):
        raise span
    kvs = span.get("attributes")
    attrs = (
        {
            kv["key"]: v["stringValue"]
            if "stringValue" in (v := kv.get("value") or _EMPTY)
            else any_value(v)
            for kv in kvs
        }
        if kvs
        else {}
    )
    row: list = [None] * _N
    for key in attrs.keys() & _ATTR_KEYS:
        v = attrs[key]
        if v is not None:
            index, convert = _ATTR_COLUMNS[key]
            v = row[index] = v if convert is as_str and type(v) is str else convert(v)
            if convert is as_int and v is not None:
                low, high = _INT_RANGES[key]
                if not low <= v <= high:
                    raise BadSpan(f"attribute {key} {v} is out of range")
    detail = [f"{k[3:]}={attrs[k]}" for k in _DETAIL_KEYS if k in attrs]
    status = span.get("status") or _EMPTY
    status_message = as_str(status.get("message")) or None
    exc = _exception(span["events"]) if span.get("events") else None
    links = span.get("links")
    if links:
        links = [i for i in (_id(link.get("spanId"), 8, "link spanId") for link in links) if i]
    row[0] = _stamp(span, "startTimeUnixNano")
    row[1] = _stamp(span, "endTimeUnixNano")
    row[2] = service
    name = span.get("name")
    row[_NAME] = name if name is None or type(name) is str else str(name)
    row[_KIND] = _KINDS.get(span.get("kind"))
    row[_STATUS_I] = _STATUS.get(status.get("code"), "unset")
    row[_STATUS_MSG] = status_message
    row[_EXC] = exc
    row[_TRACE] = _id(span.get("traceId"), 16, "traceId")
    row[_SPAN] = _id(span.get("spanId"), 8, "spanId")
    row[_PARENT] = _id(span.get("parentSpanId"), 8, "parentSpanId")
    row[_LINKS] = links or None
    row[_ATTRS] = dumps(attrs)
    if exc or status_message:
        detail.append(exc or status_message)
    row[_DETAIL] = " ".join(detail) or None
    row[_ORIGIN] = origin
    return tuple(row)


def _resource_spans(doc: dict) -> list:
    rs = doc.get("resourceSpans")
    if rs is None:
        rs = doc.get("batches")  # Tempo v1 API
        if rs is None and isinstance(doc.get("result"), dict):
            rs = doc["result"].get("resourceSpans")  # Jaeger api/v3
        if rs is None and isinstance(doc.get("trace"), dict):
            rs = doc["trace"].get("resourceSpans")  # Tempo v2 API
    return _list(rs)


def _list(value: object) -> list:
    """A repeated field: the list, or a stray single value as one item to reject later."""
    if isinstance(value, list):
        return value
    return [value] if value else []


def _service(resource: object) -> str | None:
    """The ``service.name`` of a Resource object (None when it names none)."""
    attrs = resource.get("attributes") if isinstance(resource, dict) else None
    for kv in _list(attrs):
        if isinstance(kv, dict) and kv.get("key") == "service.name":
            return as_str(any_value(kv.get("value")))
    return None


def iter_spans(doc: object) -> Iterator[tuple[str | None, dict]]:
    """(service, span) pairs of one decoded TracesData / ExportTraceServiceRequest.

    Garbage inside (a resource or scope that is no object, a resource whose service
    name cannot be read) is yielded in place of its spans, so that ``span_row``
    rejects it as one bad span and the rest is kept.
    """
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    for rs in _resource_spans(doc):
        if not isinstance(rs, dict):
            yield None, rs
            continue
        try:
            service = _service(rs.get("resource"))
        except (ValueError, RecursionError) as exc:  # a service.name no row can hold
            bad = exc if isinstance(exc, BadSpan) else BadSpan("service.name nested too deep")
            yield None, bad
            continue
        scopes = rs.get("scopeSpans")
        if scopes is None:
            scopes = rs.get("instrumentationLibrarySpans")
        for ss in _list(scopes):
            if not isinstance(ss, dict):
                yield service, ss
                continue
            for span in _list(ss.get("spans")):
                yield service, span
