"""A conversation as wstrace records it (docs/evidence.md), in every backend's format.

The spans are made by the OpenTelemetry SDK (two processes: ``web`` and ``worker``)
with the names, kinds, parents and ``ws.*`` attributes of docs/evidence.md, then
encoded the way each consumer sees them:

* ``otlp_hex()``      OTLP/JSON with hex ids, one request per service: what the
                      embedded store writes (the ground truth, read by OtlpFilesReader);
* ``jaeger_traces()`` Jaeger's internal JSON (``/api/traces`` ``data[]``), produced by
                      the OTLP→Jaeger mapping of the collector/Jaeger translator
                      (pkg/translator/jaeger: parent = first CHILD_OF, links FOLLOWS_FROM,
                      ``span.kind``/``otel.status_code``/``otel.status_description``/
                      ``error`` tags, events → logs with an ``event`` field, arrays as
                      JSON strings, trace ids printed as 16 hex digits when the high
                      half is zero);
* ``tempo_v2(tid)`` / ``tempo_v1(tid)`` Tempo's trace-by-id bodies: protobuf JSON
                      (base64 ids, enum names, int64 as strings) under ``trace`` /
                      ``batches``.

Times are whole microseconds (Jaeger's unit) so every format carries the same instants.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import time
from dataclasses import dataclass, field

from google.protobuf.json_format import MessageToDict
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode
from wstrace import conventions as C

CONV = "conv-7f3a"
OTHER = "conv-other"
CONNECTION = "k-1"
GROUP = f"chat_{CONV}"
CHANNEL = "specific.a1b2!c3d4"
# The connection's trace id has a zero high half: Jaeger prints it as 16 hex digits
# and Tempo's search drops its leading zeros. The worker_ready trace starts with 00.
CONNECTION_TRACE = 0x0000000000000000_1F2E3D4C5B6A7988
WORKER_TRACE = 0x00AB34CD56EF78901234567890ABCDEF
OTHER_TRACE = 0x7D1E2F3A4B5C6D7E8F90A1B2C3D4E5F6


class _Ids(IdGenerator):
    """Trace ids from a list (then random), span ids from a seeded generator."""

    def __init__(self, trace_ids: list[int], seed: int):
        self.trace_ids = list(trace_ids)
        self.random = random.Random(seed)

    def generate_span_id(self) -> int:
        return self.random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        return self.trace_ids.pop(0) if self.trace_ids else self.random.getrandbits(128)


@dataclass
class Conversation:
    """The finished SDK spans of one scenario, per service, and the encoders."""

    spans: dict[str, list] = field(default_factory=dict)
    base_ns: int = 0

    # --- encodings -------------------------------------------------------------------

    def otlp(self, service: str) -> dict:
        """protobuf JSON (base64 ids, enum names), as Tempo serves it."""
        return MessageToDict(encode_spans(self.spans[service]))

    def requests(self) -> list[dict]:
        """Every service's request in protobuf JSON (what Tempo stores and serves)."""
        return [self.otlp(s) for s in self.spans]

    def otlp_hex(self) -> list[dict]:
        """One ExportTraceServiceRequest per service, hex ids and int enums (the file store)."""
        docs = []
        for service in self.spans:
            doc = MessageToDict(encode_spans(self.spans[service]), use_integers_for_enums=True)
            docs.append(_hex_ids(doc))
        return docs

    def trace_ids(self) -> list[str]:
        ids = []
        for spans in self.spans.values():
            for span in spans:
                tid = f"{span.context.trace_id:032x}"
                if tid not in ids:
                    ids.append(tid)
        return ids

    def tempo_v2(self, trace_id: str) -> dict:
        """``GET /api/v2/traces/<id>`` of Tempo."""
        return tempo_v2(self.requests(), trace_id)

    def tempo_v1(self, trace_id: str) -> dict:
        """``GET /api/traces/<id>`` of Tempo (v1: ``batches``)."""
        return tempo_v1(self.requests(), trace_id)

    def jaeger_traces(self) -> list[dict]:
        """Every trace as an element of Jaeger's ``/api/traces`` ``data`` list."""
        return jaeger_traces(self.otlp_hex())


# --- OTLP requests -> what the backends serve ------------------------------------------------


def tempo_resource_spans(requests: list[dict], trace_id: str) -> list[dict]:
    """The resourceSpans of one trace out of protobuf-JSON requests (base64 ids)."""
    out = []
    for doc in requests:
        for rs in doc.get("resourceSpans", []):
            rs = copy.deepcopy(rs)
            for ss in rs.get("scopeSpans", []):
                ss["spans"] = [
                    s
                    for s in ss.get("spans", [])
                    if base64.b64decode(s["traceId"]).hex() == trace_id
                ]
            rs["scopeSpans"] = [ss for ss in rs.get("scopeSpans", []) if ss["spans"]]
            if rs["scopeSpans"]:
                out.append(rs)
    return out


def tempo_v2(requests: list[dict], trace_id: str) -> dict:
    return {"trace": {"resourceSpans": tempo_resource_spans(requests, trace_id)}}


def tempo_v1(requests: list[dict], trace_id: str) -> dict:
    return {"batches": tempo_resource_spans(requests, trace_id)}


def jaeger_traces(hex_requests: list[dict]) -> list[dict]:
    """Jaeger's ``/api/traces`` ``data`` list for OTLP requests with hex ids and int enums."""
    traces: dict[str, dict] = {}
    for doc in hex_requests:
        for rs in doc["resourceSpans"]:
            resource = {kv["key"]: kv["value"] for kv in rs["resource"]["attributes"]}
            service = resource["service.name"]["stringValue"]
            process_tags = [_jaeger_tag(k, v) for k, v in resource.items() if k != "service.name"]
            for ss in rs["scopeSpans"]:
                scope = ss.get("scope") or {}
                for span in ss["spans"]:
                    entry = traces.setdefault(span["traceId"], {"spans": [], "procs": {}})
                    pid = entry["procs"].setdefault(service, f"p{len(entry['procs']) + 1}")
                    entry.setdefault("process_tags", {})[pid] = (service, process_tags)
                    entry["spans"].append(_jaeger_span(span, scope, pid))
    return [
        {
            "traceID": _jaeger_trace_id(tid),
            "spans": entry["spans"],
            "processes": {
                pid: {"serviceName": svc, "tags": tags}
                for pid, (svc, tags) in entry["process_tags"].items()
            },
            "warnings": None,
        }
        for tid, entry in traces.items()
    ]


def hex_ids(doc: dict) -> dict:
    """A protobuf-JSON request with its base64 ids rewritten as hex (as the file store has them)."""
    return _hex_ids(copy.deepcopy(doc))


# --- OTLP (hex) -> Jaeger internal JSON, as the translator maps it ---------------------------


def _jaeger_trace_id(hex32: str) -> str:
    high, low = hex32[:16], hex32[16:]
    return low if int(high, 16) == 0 else hex32


def _jaeger_tag(key: str, value: dict) -> dict:
    if "stringValue" in value:
        return {"key": key, "type": "string", "value": value["stringValue"]}
    if "boolValue" in value:
        return {"key": key, "type": "bool", "value": value["boolValue"]}
    if "intValue" in value:
        return {"key": key, "type": "int64", "value": int(value["intValue"])}
    if "doubleValue" in value:
        return {"key": key, "type": "float64", "value": value["doubleValue"]}
    if "arrayValue" in value:  # pcommon Value.AsString(): JSON text
        items = [next(iter(v.values())) for v in value["arrayValue"].get("values", [])]
        return {"key": key, "type": "string", "value": json.dumps(items, separators=(",", ":"))}
    raise AssertionError(f"unexpected value {value}")


_KIND_TAGS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}


def _jaeger_span(span: dict, scope: dict, pid: str) -> dict:
    start_ns, end_ns = int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"])
    tags = []
    if scope.get("name"):
        tags.append({"key": "otel.scope.name", "type": "string", "value": scope["name"]})
    if scope.get("version"):
        tags.append({"key": "otel.scope.version", "type": "string", "value": scope["version"]})
    tags += [_jaeger_tag(kv["key"], kv["value"]) for kv in span.get("attributes", [])]
    if span.get("kind") in _KIND_TAGS:
        tags.append({"key": "span.kind", "type": "string", "value": _KIND_TAGS[span["kind"]]})
    status = span.get("status") or {}
    if status.get("code") == 2:
        tags.append({"key": "otel.status_code", "type": "string", "value": "ERROR"})
        tags.append({"key": "error", "type": "bool", "value": True})
    elif status.get("code") == 1:
        tags.append({"key": "otel.status_code", "type": "string", "value": "OK"})
    if status.get("message"):
        tags.append(
            {"key": "otel.status_description", "type": "string", "value": status["message"]}
        )
    tid = _jaeger_trace_id(span["traceId"])
    refs = []
    if span.get("parentSpanId"):
        refs.append({"refType": "CHILD_OF", "traceID": tid, "spanID": span["parentSpanId"]})
    for link in span.get("links", []):
        refs.append(
            {
                "refType": "FOLLOWS_FROM",
                "traceID": _jaeger_trace_id(link["traceId"]),
                "spanID": link["spanId"],
            }
        )
    logs = []
    for event in span.get("events", []):
        fields = [{"key": "event", "type": "string", "value": event["name"]}]
        fields += [_jaeger_tag(kv["key"], kv["value"]) for kv in event.get("attributes", [])]
        logs.append({"timestamp": int(event["timeUnixNano"]) // 1000, "fields": fields})
    return {
        "traceID": tid,
        "spanID": span["spanId"],
        "operationName": span["name"],
        "references": refs,
        "startTime": start_ns // 1000,
        "duration": (end_ns - start_ns) // 1000,
        "tags": tags,
        "logs": logs,
        "processID": pid,
        "warnings": None,
        "flags": 1,
    }


def _hex_ids(doc: dict) -> dict:
    for rs in doc["resourceSpans"]:
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = base64.b64decode(span[key]).hex()
                for link in span.get("links", []):
                    for key in ("traceId", "spanId"):
                        link[key] = base64.b64decode(link[key]).hex()
    return doc


# --- the scenario ------------------------------------------------------------------------------


def build(base_ns: int | None = None) -> Conversation:
    """Connect, three messages (delivered / group empty / handler crash), the 1011 close.

    Also a worker_ready span (worker, no conversation) and another conversation's
    connection, which a conversation lookup must leave out.
    """
    if base_ns is None:  # ten minutes ago, whole milliseconds: inside any default window
        base_ns = (time.time_ns() - 600 * 10**9) // 10**6 * 10**6
    exporters = {"web": InMemorySpanExporter(), "worker": InMemorySpanExporter()}
    ids = {
        "web": _Ids([CONNECTION_TRACE, OTHER_TRACE], seed=1),
        "worker": _Ids([WORKER_TRACE], seed=2),
    }
    tracers = {}
    for service, exporter in exporters.items():
        provider = TracerProvider(
            resource=Resource.create(
                {
                    "service.name": service,
                    "process.pid": 4242 if service == "web" else 4343,
                    "host.name": f"{service}-1",
                    "wstrace.version": "0.1.0",
                }
            ),
            id_generator=ids[service],
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracers[service] = provider.get_tracer("wstrace", "0.1.0")

    def at(ms: float) -> int:
        return base_ns + int(ms * 1000) * 1000  # whole microseconds

    def span(service, name, start, end, parent=None, kind=SpanKind.INTERNAL, attrs=None, **kw):
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        s = tracers[service].start_span(
            name, context=ctx, kind=kind, attributes=attrs or {}, start_time=at(start)
        )
        if kw.get("error"):
            exc = kw["error"]
            s.record_exception(exc, timestamp=at(end))
            s.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        s.end(end_time=at(end))
        return s

    def ids_(message=None, conversation=CONV, connection=CONNECTION):
        out = {C.CONVERSATION_ID: conversation, C.CONNECTION_ID: connection}
        if message:
            out[C.MESSAGE_ID] = message
        return out

    layer = {C.LAYER: "L1", C.LAYER_DESC: "RedisChannelLayer(redis:6379/0)"}
    # the worker announces itself (no conversation)
    span(
        "worker",
        C.SPAN_WORKER_READY,
        -5000,
        -5000,
        attrs={
            C.EVENT: C.EV_WORKER_READY,
            C.WORKER: "celery@worker-1",
            C.QUEUES: ["celery"],
            **layer,
        },
    )
    # the connection: connect (root) -> auth, accept, group_add
    connect = tracers["web"].start_span(
        C.SPAN_CONNECT,
        kind=SpanKind.SERVER,
        start_time=at(0),
        attributes={
            **ids_(),
            C.HOP: C.HOP_CONNECT,
            C.EVENT: C.EV_CONNECT,
            C.PATH: f"/ws/chat/{CONV}/",
            C.ORIGIN: "http://localhost:8000",
            C.ORIGIN_ALLOWED: True,
            C.CONSUMER: "chat.consumers.ChatConsumer",
        },
    )
    span(
        "web",
        C.SPAN_AUTH,
        1,
        3,
        connect,
        attrs={
            **ids_(),
            C.HOP: C.HOP_AUTH,
            C.EVENT: C.EV_AUTH,
            C.USER_AUTHENTICATED: True,
            C.USER_ID: "7",
        },
    )
    span(
        "web",
        C.SPAN_ACCEPT,
        10,
        11,
        connect,
        attrs={**ids_(), C.HOP: C.HOP_ACCEPT, C.EVENT: C.EV_ACCEPT},
    )
    span(
        "web",
        C.SPAN_GROUP_ADD,
        11,
        12,
        connect,
        attrs={
            **ids_(),
            C.HOP: C.HOP_CONNECT,
            C.EVENT: "group_add",
            C.GROUP: GROUP,
            C.CHANNEL: CHANNEL,
            **layer,
        },
    )

    def message(mid: str, t0: float, chunks: int, members: int, deliver_error=None):
        receive = span(
            "web",
            C.SPAN_RECEIVE,
            t0,
            t0 + 6,
            connect,
            SpanKind.SERVER,
            {
                **ids_(mid),
                C.HOP: C.HOP_RECEIVE,
                C.EVENT: C.EV_RECEIVE,
                C.FRAME_BYTES: 48,
                C.HANDLER: "receive_json",
            },
        )
        task_attrs = {
            C.TASK_NAME: "agents.tasks.run_agent",
            C.TASK_ID: f"task-{mid}",
            C.QUEUE: "celery",
        }
        enqueue = span(
            "web",
            C.SPAN_ENQUEUE,
            t0 + 2,
            t0 + 4,
            receive,
            SpanKind.PRODUCER,
            {**ids_(mid), C.HOP: C.HOP_ENQUEUE, C.EVENT: C.EV_ENQUEUE, **task_attrs},
        )
        task = tracers["worker"].start_span(
            C.SPAN_TASK,
            context=trace.set_span_in_context(enqueue),
            kind=SpanKind.CONSUMER,
            start_time=at(t0 + 20),
            attributes={
                **ids_(mid),
                C.HOP: C.HOP_TASK,
                C.EVENT: C.EV_TASK,
                **task_attrs,
                C.WORKER: "celery@worker-1",
                C.RETRIES: 0,
            },
        )
        for seq in range(1, chunks + 1):
            t = t0 + 50 * seq
            publish = span(
                "worker",
                C.SPAN_PUBLISH,
                t,
                t + 2,
                task,
                SpanKind.PRODUCER,
                {
                    **ids_(mid),
                    C.HOP: C.HOP_PUBLISH,
                    C.EVENT: C.EV_GROUP_SEND,
                    C.GROUP: GROUP,
                    C.SEQ: seq,
                    C.MEMBERS: members,
                    C.CAPACITY: 100,
                    C.MESSAGE_TYPE: "chat.stream",
                    **layer,
                },
            )
            if members == 0:
                continue
            deliver = span(
                "web",
                C.SPAN_DELIVER,
                t + 4,
                t + 8,
                publish,
                SpanKind.CONSUMER,
                {
                    **ids_(mid),
                    C.HOP: C.HOP_DELIVER,
                    C.EVENT: C.EV_DELIVER,
                    C.SEQ: seq,
                    C.MESSAGE_TYPE: "chat.stream",
                    C.HANDLER: "chat_stream",
                    C.CHANNEL: CHANNEL,
                },
                error=deliver_error,
            )
            if deliver_error is None:
                span(
                    "web",
                    C.SPAN_SEND,
                    t + 5,
                    t + 6,
                    deliver,
                    attrs={
                        **ids_(mid),
                        C.HOP: C.HOP_SEND,
                        C.EVENT: C.EV_SEND,
                        C.SEQ: seq,
                        C.FRAME_BYTES: 120,
                    },
                )
        task.set_attribute(C.TASK_STATE, "SUCCESS")
        task.end(end_time=at(t0 + 50 * chunks + 10))

    message("m1", 100, chunks=3, members=1)
    message("m2", 1000, chunks=2, members=0)
    message("m3", 2000, chunks=1, members=1, deliver_error=ValueError("bad chunk"))
    span(
        "web",
        C.SPAN_DISCONNECT,
        2060,
        2061,
        connect,
        attrs={
            **ids_(),
            C.HOP: C.HOP_DISCONNECT,
            C.EVENT: C.EV_DISCONNECT,
            C.CLOSE_CODE: 1011,
            C.CLOSED_BY: "server",
            C.CAUSE: "consumer_error",
        },
        error=ValueError("bad chunk"),
    )
    connect.end(end_time=at(15))
    # another conversation on another connection
    other = tracers["web"].start_span(
        C.SPAN_CONNECT,
        kind=SpanKind.SERVER,
        start_time=at(500),
        attributes={
            **ids_(conversation=OTHER, connection="k-9"),
            C.HOP: C.HOP_CONNECT,
            C.EVENT: C.EV_CONNECT,
        },
    )
    other.end(end_time=at(505))
    return Conversation(
        spans={s: list(e.get_finished_spans()) for s, e in exporters.items()}, base_ns=base_ns
    )
