"""Jaeger's query API → the event table: ``--traces jaeger://host:port``.

Spec: ``jaeger://HOST[:PORT][/PREFIX][?OPTIONS]`` (port 16686 by default; PREFIX
when Jaeger's UI sits under a base path). Options, all optional:

``service=web,worker``  services to search (default: every service Jaeger knows,
                        from ``/api/services``)
``lookback=2d``         search window when the command gives no ``--since``
                        (``s``, ``m``, ``h``, ``d``, ``w``)
``limit=200``           traces per service and search (Jaeger's ``limit``)
``timeout=30``          seconds for the whole read, every request together
``tls=1``               https instead of http

A conversation lookup asks, per service,
``GET /api/traces?service=S&tags={"ws.conversation_id":"ID"}&start=&end=&limit=``
(Jaeger's "internal" JSON API, times in Unix microseconds) and keeps every span
of the traces it returns (a wstrace trace is one WebSocket connection, so that is
the connection with all of its messages, across web and worker). Without a
conversation every trace of the window is read. (The internal API, not api/v3:
api/v3's HTTP ``/api/v3/traces`` search takes no attribute filter.)

The internal JSON is what Jaeger's OTLP→Jaeger translation produced, so it is
mapped back to OTLP before the shared normalizer (``_otlp.rows.span_row``) turns it
into rows: the first ``CHILD_OF`` reference is the parent (other references are
links), the ``span.kind`` tag is the kind, ``otel.status_code`` /
``otel.status_description`` (or ``error=true``) the status, logs are span events
(their ``event`` field is the name), and array attributes, which Jaeger stores as
JSON strings, are decoded again for the keys wstrace writes as lists.

Errors: an unreachable Jaeger, an HTTP error, a reply that is not JSON or is
larger than ``_http.MAX_REPLY_BYTES``, or a read that outlasts ``timeout`` raises
``SourceError`` with one line naming the URL. A span that cannot be a row (a
timestamp out of range, an id of the wrong length) is skipped with a problem line.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from wstrace import conventions as C

from wsanalyze.sources._http import HttpJson, RemoteSpec, one_line, truthy, window_end
from wsanalyze.sources._otlp.frame import rows_to_frame
from wsanalyze.sources._otlp.rows import ROW_COLUMNS, BadSpan, span_row
from wsanalyze.sources.base import Query, ReadResult, SourceError, register_scheme

DEFAULT_PORT = 16686

# Tags the OTLP→Jaeger translation adds; they become kind/status again, not attributes.
_KIND_TAG = "span.kind"
_STATUS_TAG = "otel.status_code"
_STATUS_MESSAGE_TAG = "otel.status_description"
_ERROR_TAG = "error"
_DROPPED_TAGS = frozenset(
    {
        "otel.scope.name",
        "otel.scope.version",
        "otel.library.name",
        "otel.library.version",
        "w3c.tracestate",
        "internal.span.format",
    }
)
_KINDS = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
_STATUS = {"ERROR": 2, "OK": 1}
# Attributes wstrace writes as arrays; Jaeger keeps arrays as their JSON text.
LIST_ATTRIBUTES = frozenset({C.QUEUES})
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_TRACE_ID = ROW_COLUMNS.index("trace_id")
_SPAN_ID = ROW_COLUMNS.index("span_id")


# --- Jaeger internal JSON → OTLP span objects ---------------------------------------------


def _hex_id(value: object, size: int) -> str | None:
    """A Jaeger id (hex, possibly without leading zeros) as ``2*size`` lowercase hex."""
    if not value or not isinstance(value, str):
        return None
    if _HEX.match(value) and len(value) <= 2 * size:
        padded = value.lower().rjust(2 * size, "0")
        return None if set(padded) == {"0"} else padded
    return value  # not hex: let the shared normalizer try (base64)


def _any_value(key: str, tag: dict) -> dict:
    """A Jaeger tag's value as an OTLP AnyValue."""
    kind = str(tag.get("type") or "").lower()
    value = tag.get("value")
    if kind == "bool" or isinstance(value, bool):
        return {"boolValue": value if isinstance(value, bool) else truthy(value)}
    if kind == "int64" or (not kind and isinstance(value, int)):
        return {"intValue": str(value)}
    if kind == "float64" or (not kind and isinstance(value, float)):
        return {"doubleValue": value}
    if kind == "binary":
        return {"bytesValue": value}
    if isinstance(value, str) and key in LIST_ATTRIBUTES and value.startswith("["):
        try:
            items = json.loads(value)
        except ValueError:
            items = None
        if isinstance(items, list):
            return {"arrayValue": {"values": [_scalar(item) for item in items]}}
    return {"stringValue": value if isinstance(value, str) else json.dumps(value)}


def _scalar(item: object) -> dict:
    if isinstance(item, bool):
        return {"boolValue": item}
    if isinstance(item, int):
        return {"intValue": str(item)}
    if isinstance(item, float):
        return {"doubleValue": item}
    return {"stringValue": item if isinstance(item, str) else json.dumps(item)}


def _micros_to_nanos(value: object) -> int | None:
    try:
        return int(value) * 1000
    except (TypeError, ValueError):
        return None


def otlp_span(span: dict) -> dict:
    """One span of Jaeger's internal JSON as an OTLP/JSON span object."""
    attributes: list[dict] = []
    kind = None
    status_code = None
    status_message = None
    error = False
    for tag in span.get("tags") or ():
        key = tag.get("key")
        if key is None:
            continue
        value = tag.get("value")
        if key == _KIND_TAG:
            kind = _KINDS.get(str(value).lower())
        elif key == _STATUS_TAG:
            status_code = _STATUS.get(str(value).upper())
        elif key == _STATUS_MESSAGE_TAG:
            status_message = str(value)
        elif key == _ERROR_TAG and str(tag.get("type") or "bool").lower() == "bool":
            error = truthy(value)
        elif key not in _DROPPED_TAGS:
            attributes.append({"key": key, "value": _any_value(key, tag)})
    if status_code is None and error:
        status_code = 2
    parent = _hex_id(span.get("parentSpanID"), 8)
    links = []
    for ref in span.get("references") or ():
        ref_span = _hex_id(ref.get("spanID"), 8)
        if not ref_span:
            continue
        if parent is None and str(ref.get("refType") or "CHILD_OF").upper() == "CHILD_OF":
            parent = ref_span
        elif ref_span != parent:
            links.append({"traceId": _hex_id(ref.get("traceID"), 16), "spanId": ref_span})
    events = []
    for log in span.get("logs") or ():
        name = None
        event_attributes = []
        for field in log.get("fields") or ():
            key = field.get("key")
            if key == "event" and name is None and isinstance(field.get("value"), str):
                name = field["value"]
            elif key is not None:
                event_attributes.append({"key": key, "value": _any_value(key, field)})
        events.append(
            {
                "timeUnixNano": _micros_to_nanos(log.get("timestamp")),
                "name": name or "log",
                "attributes": event_attributes,
            }
        )
    start = _micros_to_nanos(span.get("startTime"))
    duration = _micros_to_nanos(span.get("duration")) or 0
    out: dict = {
        "traceId": _hex_id(span.get("traceID"), 16),
        "spanId": _hex_id(span.get("spanID"), 8),
        "name": span.get("operationName"),
        "startTimeUnixNano": start,
        "endTimeUnixNano": start + duration if start is not None else None,
        "attributes": attributes,
        "status": {"code": status_code or 0, "message": status_message},
    }
    if parent:
        out["parentSpanId"] = parent
    if kind is not None:
        out["kind"] = kind
    if links:
        out["links"] = links
    if events:
        out["events"] = events
    return out


def trace_rows(trace: dict, origin_base: str) -> tuple[list[tuple], list[str]]:
    """Rows of one trace of ``/api/traces`` (``{"traceID","spans","processes"}``)."""
    processes = trace.get("processes") or {}
    rows: list[tuple] = []
    bad = 0
    reason = None
    for span in trace.get("spans") or ():
        try:
            process = span.get("process") or processes.get(span.get("processID")) or {}
            converted = otlp_span(span)
            origin = f"{origin_base}/trace/{converted['traceId']}"
            rows.append(span_row(converted, process.get("serviceName"), origin))
        except BadSpan as exc:
            bad += 1
            reason = reason or str(exc)
        except Exception:
            bad += 1
    problems = []
    if bad:
        tid = one_line(str(trace.get("traceID")), 40)
        why = f" ({reason})" if reason else ""
        problems.append(f"{origin_base}/trace/{tid}: {bad} span(s) could not be decoded{why}")
    return rows, problems


# --- the reader --------------------------------------------------------------------------


class JaegerReader:
    """Spans from Jaeger's query API (``jaeger://host:port``)."""

    def __init__(self, spec: str):
        self.spec = RemoteSpec(spec, "jaeger", DEFAULT_PORT, ("service",))
        self.http = HttpJson(self.spec.base, "jaeger", self.spec.timeout)
        self.services = self.spec.values("service")
        self.description = f"Jaeger query API at {self.spec.base}"

    def list_services(self) -> list[str]:
        """Every service Jaeger knows (``GET /api/services``)."""
        doc = self.http.get("/api/services")
        data = doc.get("data") if isinstance(doc, dict) else None
        if data is None:
            return []
        if not isinstance(data, list):
            raise SourceError(
                f"jaeger at {self.spec.base}: GET {self.http.url('/api/services')} "
                f"did not return a service list"
            )
        return sorted(str(s) for s in data if s)

    def search(
        self, service: str, query: Query, start: datetime, end: datetime
    ) -> tuple[str, list[dict], list[str]]:
        """(url, traces, problems) of one ``/api/traces`` search."""
        params = {
            "service": service,
            "start": int(start.timestamp() * 1_000_000),
            "end": int(end.timestamp() * 1_000_000),
            "limit": self.spec.limit,
        }
        if query.conversation_id is not None:
            params["tags"] = json.dumps(
                {C.CONVERSATION_ID: query.conversation_id}, separators=(",", ":")
            )
        url = self.http.url("/api/traces", params)
        doc = self.http.get("/api/traces", params)
        if not isinstance(doc, dict) or not isinstance(doc.get("data") or [], list):
            raise SourceError(
                f"jaeger at {self.spec.base}: GET {url} did not return Jaeger's "
                f'{{"data": [traces]}} reply'
            )
        problems = [
            f"{url}: {one_line(e.get('msg') or str(e), 160)}"
            for e in doc.get("errors") or ()
            if isinstance(e, dict)
        ]
        traces = [t for t in doc.get("data") or () if isinstance(t, dict)]
        if len(traces) >= self.spec.limit:
            problems.append(
                f"{url}: {len(traces)} traces, the limit; older ones may be missing "
                f"(raise ?limit= or narrow the window)"
            )
        return url, traces, problems

    def _search_rows(
        self, service: str, query: Query, start: datetime, end: datetime
    ) -> tuple[str, list[tuple], list[str]]:
        """(url, rows, problems) of one search: the reply is let go as soon as it is rows."""
        url, traces, problems = self.search(service, query, start, end)
        rows: list[tuple] = []
        for trace in traces:
            found, bad = trace_rows(trace, self.spec.base)
            rows.extend(found)
            problems.extend(bad)
        return url, rows, problems

    def read(self, query: Query) -> ReadResult:
        """The spans of every trace matching the query, one row each."""
        if query.conversation_id is None and query.by_message:
            # No search by message id here (load_events does not ask); without a
            # conversation the search would fetch every trace of the lookback instead.
            return ReadResult(events=rows_to_frame([]).lazy())
        with self.http.budget():  # ?timeout= bounds this whole read
            return self._read(query)

    def _read(self, query: Query) -> ReadResult:
        start, end = self.spec.window(query)
        services = self.services or self.list_services()
        problems: list[str] = []
        if not services:
            problems.append(f"{self.spec.base}/api/services: Jaeger knows no services yet")
        rows: list[tuple] = []
        seen: set[tuple[str | None, str | None]] = set()
        sources: list[str] = []
        workers = max(1, min(8, len(services)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            answers = list(pool.map(lambda s: self._search_rows(s, query, start, end), services))
        for url, found_rows, found in answers:
            sources.append(url)
            problems.extend(found)
            for row in found_rows:
                key = (row[_TRACE_ID], row[_SPAN_ID])
                if key in seen:
                    continue
                seen.add(key)
                rows.append(row)
        return ReadResult(
            events=rows_to_frame(rows, problems).lazy(),
            problems=problems,
            sources=sources,
            window_end=window_end(rows, end),
        )


register_scheme("jaeger", JaegerReader)
