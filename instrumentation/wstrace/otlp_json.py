"""Encode SDK spans as one OTLP/JSON ``ExportTraceServiceRequest``.

The same layout the OpenTelemetry Collector's ``file`` exporter writes: hex
ids, int64 as decimal strings, enums as integers. Written by hand rather than
through protobuf's ``MessageToDict`` because that yields base64 ids and costs
several times more per span. Every string value passes through redaction.

Two ways to the same bytes: ``encode_span``/``encode_attributes`` build the
dicts (spans with events or links, and anything that is not a plain span);
``encode_request`` writes the usual span straight as text, its KeyValues from
cached JSON texts. A test holds the two to byte equality.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Status, StatusCode

from wstrace import redact

try:  # several times faster when present (the analyzer extra ships it); never required
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    orjson = None


def _dumps(obj: Any) -> str:
    if orjson is not None:
        try:
            return orjson.dumps(obj, default=str).decode("utf-8")
        except TypeError:  # e.g. an int beyond 64 bits: let json decide
            pass
    return json.dumps(obj, separators=(",", ":"), default=str)


def encode_request(spans: Sequence[ReadableSpan]) -> str:
    """One JSON line (no newline) holding all spans, grouped by resource and scope.

    The text is assembled from pieces (``_write_span``) joined once, rather than
    one nested dict handed to the JSON library: nearly every attribute is a
    KeyValue seen before, whose JSON is reused as it is, and no span's text is
    copied into an intermediate string on its way into the line.
    """
    by_resource: dict[int, tuple[Any, dict[tuple[str, str], list[str]]]] = {}
    last_resource = last_scope = bucket = None
    for span in spans:
        try:  # the fields behind the ReadableSpan properties, as in _write_span
            resource = span._resource
            scope = span._instrumentation_scope
        except AttributeError:
            resource = span.resource
            scope = span.instrumentation_scope
        if bucket is None or resource is not last_resource or scope is not last_scope:
            # Spans of one tracer share both objects: look the bucket up once per run of them.
            entry = by_resource.setdefault(id(resource), (resource, {}))
            key = (scope.name, scope.version or "") if scope else ("", "")
            bucket = entry[1].setdefault(key, [])
            last_resource, last_scope = resource, scope
        if bucket:
            bucket.append(",")
        _write_span(span, bucket)
    out = ['{"resourceSpans":[']
    for index, (resource, scopes) in enumerate(by_resource.values()):
        attributes = _attributes_text(resource.attributes if resource else {})
        out.append(
            f'{"," if index else ""}{{"resource":{{"attributes":{attributes}}},"scopeSpans":['
        )
        for number, ((name, version), pieces) in enumerate(scopes.items()):
            scope_text = _dumps({"name": name, "version": version})
            out.append(f'{"," if number else ""}{{"scope":{scope_text},"spans":[')
            out.extend(pieces)
            out.append("]}")
        out.append("]}")
    out.append("]}")
    return "".join(out)


def _write_span(span: ReadableSpan, out: list[str]) -> None:
    """Append the pieces of ``encode_span(span)``'s JSON, made without the dict when it can be."""
    # _fields(span), inlined: this runs for every span, and the call and its tuple cost
    # ~16 bytecodes per span (measured +0.5 % instructions per message in process).
    try:
        trace_id, span_id = span._context[:2]
        start = span._start_time or 0
        end, status, parent = span._end_time, span._status, span._parent
        name, kind, raw = span._name, span._kind, span._attributes
        plain = not (span._events or span._links)
    except (AttributeError, TypeError):  # not a span the SDK or wstrace made
        plain = False
    if not plain:  # rare: events, links, or a foreign span
        out.append(_dumps(encode_span(span)))
        return
    named = _NAMES.get(name)
    if named is None:
        named = _dumps(name)
        if type(name) is str and len(_NAMES) < _NAMES_MAX:
            _NAMES[name] = named
    global _last_trace
    last = _last_trace  # a connection's spans share a trace: its 32 hex digits are made once
    if last[0] != trace_id:
        last = _last_trace = (trace_id, f"{trace_id:032x}")
    # Field order as encode_span's dict, so both ways write the same bytes.
    out.append(
        f'{{"traceId":"{last[1]}","spanId":"{span_id:016x}","name":{named},'
        f'"kind":{kind._value_ + 1},"startTimeUnixNano":"{start}",'
        f'"endTimeUnixNano":"{end or start}","attributes":['
    )
    out.append(_attributes_joined(raw if type(raw) is dict else _raw_attributes(span)))
    if status is _UNSET or (status.status_code is StatusCode.UNSET and not status.description):
        if parent is not None:  # every SDK span has its own Status object until one is set
            out.append(f'],"status":{{"code":0}},"parentSpanId":"{parent[1]:016x}"}}')
        else:
            out.append('],"status":{"code":0}}')
        return
    tail = f'],"status":{_dumps(_status(status))}'
    if parent is not None:
        tail += f',"parentSpanId":"{parent[1]:016x}"'
    out.append(tail + "}")


_last_trace: tuple[int, str] = (-1, "")
_NAMES: dict[str, str] = {}  # span name -> its JSON string
_NAMES_MAX = 1024


def _fields(span: ReadableSpan) -> tuple[Any, ...]:
    """(trace id, span id, start, end, status, parent, events, links, name, kind, raw attributes).

    Every ReadableSpan accessor is a Python-level property, and the SpanContext ones
    too: the fields ReadableSpan.__init__ sets (SDK spans and wstrace's alike) are
    read directly, the properties only for a ReadableSpan made some other way (its
    raw attributes are then None).
    """
    try:
        trace_id, span_id = span._context[:2]
        return (
            trace_id,
            span_id,
            span._start_time or 0,
            span._end_time,
            span._status,
            span._parent,
            span._events,
            span._links,
            span._name,
            span._kind,
            span._attributes,
        )
    except (AttributeError, TypeError):
        context = span.context
        return (
            context.trace_id,
            context.span_id,
            span.start_time or 0,
            span.end_time,
            span.status,
            span.parent,
            span.events,
            span.links,
            span.name,
            span.kind,
            None,
        )


def encode_span(span: ReadableSpan) -> dict[str, Any]:
    """A single span as an OTLP/JSON object."""
    trace_id, span_id, start, end, status, parent, events, links, name, kind, _ = _fields(span)
    out: dict[str, Any] = {
        "traceId": f"{trace_id:032x}",
        "spanId": f"{span_id:016x}",
        "name": name,
        "kind": kind._value_ + 1,  # SDK INTERNAL=0 … OTLP INTERNAL=1 (no enum hash)
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end or start),
        "attributes": encode_attributes(_raw_attributes(span)),
        "status": _UNSET_STATUS if status is _UNSET else _status(status),
    }
    if parent is not None:
        out["parentSpanId"] = f"{parent[1]:016x}"
    if events:
        out["events"] = [
            {
                "timeUnixNano": str(event.timestamp),
                "name": event.name,
                "attributes": encode_attributes(event.attributes or {}),
            }
            for event in events
        ]
    if links:
        out["links"] = [
            {
                "traceId": f"{link.context.trace_id:032x}",
                "spanId": f"{link.context.span_id:016x}",
                "attributes": encode_attributes(link.attributes or {}),
            }
            for link in links
        ]
    return out


_UNSET = Status(StatusCode.UNSET)
_UNSET_STATUS: dict[str, Any] = {"code": 0}


def _raw_attributes(span: ReadableSpan) -> Mapping[str, Any]:
    # ``span.attributes`` is a read-only view whose iteration runs in Python for every key;
    # the SDK's BoundedAttributes keeps a plain dict underneath. Fall back to the view.
    raw = getattr(span, "_attributes", None)
    if type(raw) is dict:  # wstrace's LeanSpan
        return raw
    inner = getattr(raw, "_dict", None)
    if isinstance(inner, dict):
        return inner
    return span.attributes or {}


def _status(status: Status) -> dict[str, Any]:
    out: dict[str, Any] = {"code": status.status_code.value}
    if status.description:
        out["message"] = redact.redact_text(status.description)
    return out


# A bool or float item equals an int one (``True == 1``, ``2.0 == 2``): a span holding
# either skips the shared look-up of KeyValue texts.
_TWINS = frozenset({bool, float})
_KEY_VALUES_MAX = 8192


def encode_attributes(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    """OTLP KeyValue list; secret-bearing keys are dropped to a marker."""
    return [_encode_key_value(key, value) for key, value in attributes.items()]


def _attributes_text(attributes: Mapping[str, Any]) -> str:
    """``encode_attributes(attributes)`` as JSON text."""
    return f"[{_attributes_joined(attributes)}]"


def _attributes_joined(attributes: Mapping[str, Any]) -> str:
    """The JSON of each KeyValue of ``attributes``, comma-separated (the list without brackets)."""
    # The look-ups run as one C-level map over the items: this is the encoder's inner
    # loop, ~9 attributes for each of ~15 spans per streamed answer.
    parts: list[Any]
    if _TWINS.isdisjoint(map(type, attributes.values())):
        try:
            parts = list(map(_KEY_VALUE_TEXTS.get, attributes.items()))
        except TypeError:  # an unhashable value (a list): each item below
            parts = [None] * len(attributes)
    else:
        parts = [None] * len(attributes)
    # all(): a KeyValue text is never empty, so only the cache's misses (None) are false;
    # cheaper than "None in parts", which compares every str with None.
    if not all(parts):
        items = list(attributes.items())
        for index, part in enumerate(parts):
            if part is None:  # an item the cache lacks (often one: a new message id)
                parts[index] = _key_value_text(items[index])
    return ",".join(parts)


def _key_value_text(item: tuple[str, Any]) -> str:
    """One KeyValue's JSON, kept for the next span when it is a clean str or an int."""
    key, value = item
    kind = type(value)
    if kind is not int and kind is not str:
        return _dumps(_encode_key_value(key, value))
    text = _KEY_VALUE_TEXTS.get(item)
    if text is not None:
        return text
    named = _KEY_TEXTS.get(key) if kind is int else None
    if named is not None:  # sizes, counts: no dict, no JSON library
        text = f'{{"key":{named},"value":{{"intValue":"{value}"}}}}'
    else:
        pair = _encode_key_value(key, value)
        text = _dumps(pair)
        if redact.is_secret_key(key):
            return text  # a redacted marker, never kept
        if kind is int:
            if len(_KEY_TEXTS) >= _NAMES_MAX:
                _KEY_TEXTS.clear()
            _KEY_TEXTS[key] = _dumps(key)
        elif pair["value"].get("stringValue") != value:
            return text  # redacted inside: made again each time, never kept
    if len(_KEY_VALUE_TEXTS) >= _KEY_VALUES_MAX:
        _KEY_VALUE_TEXTS.clear()
    _KEY_VALUE_TEXTS[item] = text
    return text


_KEY_VALUE_TEXTS: dict[tuple[str, Any], str] = {}
# The JSON of the non-secret keys of int attributes.
_KEY_TEXTS: dict[str, str] = {}


def _encode_key_value(key: str, value: Any) -> dict[str, Any]:
    if redact.is_secret_key(key):
        value = redact.REDACTED
    return {"key": key, "value": encode_value(value)}


def encode_value(value: Any) -> dict[str, Any]:
    """OTLP AnyValue for a Python attribute value."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": redact.redact_text(value)}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Sequence):
        return {"arrayValue": {"values": [encode_value(v) for v in value]}}
    return {"stringValue": redact.redact_text(str(value))}
