"""Read the spans wstrace wrote (OTLP/JSON lines) back into plain objects, for assertions.

::

    spans = wait_for(trace_dir, lambda spans: any(s.name == "ws.send" for s in spans))
    by_name(spans, "ws.publish")[0].attributes["ws.seq"]      # ints come back as int

Every ``*.jsonl`` file under the directory is read; a final line still being
written (no newline yet) is skipped, any other unreadable line raises.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Span", "by_name", "read_spans", "wait_for"]

KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


@dataclass
class Span:
    """One span as written to the store."""

    name: str
    service: str
    trace_id: str
    span_id: str
    parent_id: str | None
    kind: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: str  # "UNSET" | "OK" | "ERROR"
    status_message: str
    events: list[dict[str, Any]] = field(default_factory=list)  # {"name", "time_ns", "attributes"}
    links: list[dict[str, Any]] = field(default_factory=list)  # {"trace_id", "span_id", ...}
    resource: dict[str, Any] = field(default_factory=dict)
    scope: str = ""
    file: str = ""

    @property
    def hop(self) -> str | None:
        return self.attributes.get("ws.hop")

    @property
    def is_error(self) -> bool:
        return self.status_code == "ERROR"


def value_of(any_value: dict[str, Any]) -> Any:
    """Decode an OTLP/JSON AnyValue (``intValue`` strings become int)."""
    if "stringValue" in any_value:
        return any_value["stringValue"]
    if "intValue" in any_value:
        return int(any_value["intValue"])
    if "boolValue" in any_value:
        return bool(any_value["boolValue"])
    if "doubleValue" in any_value:
        return float(any_value["doubleValue"])
    if "arrayValue" in any_value:
        return [value_of(v) for v in any_value["arrayValue"].get("values", [])]
    if "kvlistValue" in any_value:
        return attributes_of(any_value["kvlistValue"].get("values", []))
    if "bytesValue" in any_value:
        return any_value["bytesValue"]
    return None


def attributes_of(key_values: Iterable[dict[str, Any]] | None) -> dict[str, Any]:
    """Decode an OTLP KeyValue list into a dict."""
    return {kv["key"]: value_of(kv.get("value", {})) for kv in key_values or ()}


def spans_of_request(request: dict[str, Any], file: str = "") -> list[Span]:
    """The spans of one ``ExportTraceServiceRequest`` object."""
    out = []
    for resource_spans in request.get("resourceSpans", []):
        resource = attributes_of(resource_spans.get("resource", {}).get("attributes"))
        service = str(resource.get("service.name", ""))
        for scope_spans in resource_spans.get("scopeSpans", []):
            scope = scope_spans.get("scope", {}).get("name", "")
            for raw in scope_spans.get("spans", []):
                status = raw.get("status", {})
                out.append(
                    Span(
                        name=raw["name"],
                        service=service,
                        trace_id=raw["traceId"],
                        span_id=raw["spanId"],
                        parent_id=raw.get("parentSpanId") or None,
                        kind=KINDS.get(int(raw.get("kind", 0)), str(raw.get("kind"))),
                        start_ns=int(raw.get("startTimeUnixNano", 0)),
                        end_ns=int(raw.get("endTimeUnixNano", 0)),
                        attributes=attributes_of(raw.get("attributes")),
                        status_code=STATUS.get(int(status.get("code", 0)), str(status)),
                        status_message=status.get("message", ""),
                        events=[
                            {
                                "name": e.get("name", ""),
                                "time_ns": int(e.get("timeUnixNano", 0)),
                                "attributes": attributes_of(e.get("attributes")),
                            }
                            for e in raw.get("events", [])
                        ],
                        links=[
                            {
                                "trace_id": link["traceId"],
                                "span_id": link["spanId"],
                                "attributes": attributes_of(link.get("attributes")),
                            }
                            for link in raw.get("links", [])
                        ],
                        resource=resource,
                        scope=scope,
                        file=file,
                    )
                )
    return out


def read_spans(directory: Path | str) -> list[Span]:
    """Every span in every ``*.jsonl`` file under ``directory``, ordered by start time."""
    spans: list[Span] = []
    for path in sorted(Path(directory).rglob("*.jsonl")):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:  # rotated away between listing and reading
            continue
        lines = text.split("\n")
        complete = lines[:-1]  # the last element is "" or a line still being written
        for number, line in enumerate(complete, 1):
            if not line.strip():
                continue
            try:
                request = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not a JSON line: {exc}") from None
            spans.extend(spans_of_request(request, str(path)))
    spans.sort(key=lambda s: s.start_ns)
    return spans


def by_name(spans: Iterable[Span], name: str) -> list[Span]:
    """The spans called ``name``."""
    return [s for s in spans if s.name == name]


def wait_for(
    directory: Path | str,
    predicate: Callable[[list[Span]], Any],
    timeout: float = 10.0,
    interval: float = 0.1,
) -> list[Span]:
    """Poll ``read_spans`` until ``predicate(spans)`` is truthy; return the spans.

    Raises ``TimeoutError`` naming what was there when time ran out.
    """
    deadline = time.monotonic() + timeout
    while True:
        spans = read_spans(directory)
        if predicate(spans):
            return spans
        if time.monotonic() >= deadline:
            names: dict[str, int] = {}
            for span in spans:
                names[span.name] = names.get(span.name, 0) + 1
            raise TimeoutError(
                f"spans in {directory} did not satisfy the predicate within {timeout}s; "
                f"found {len(spans)}: {names}"
            )
        time.sleep(interval)
