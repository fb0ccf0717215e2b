"""wstrace next to a user's own OpenTelemetry set-up (issue 2, point 3).

The user configured, before Django starts (a ``sitecustomize`` on PYTHONPATH,
as one would in a container image): an SDK ``TracerProvider`` exporting with
OTLP/HTTP to their collector, plus ``opentelemetry-instrumentation-celery``
and ``-redis``. The collector here is a real OTLP/HTTP endpoint in the test
process decoding the protobuf requests. With wstrace also installed:

* the user's provider stays the global one, and their exporter receives
  spans (their own and wstrace's);
* there is one enqueue and one task span per message, the contrib
  ``apply_async/…`` and ``run/…`` spans, carrying ``ws.hop`` and the ws ids —
  no ``ws.enqueue``/``ws.task`` duplicates;
* the message chain stays connected and every parent id in the
  conversation's trace exists.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from wsanalyze.demo.example_apps import example_app_dir
from wsanalyze.demo.stack import Stack
from wstrace import conventions as c

from .spans import Span, read_spans, wait_for

pytestmark = pytest.mark.stack

TASK = "core.agents.tasks.run_agent"
CHUNKS = 5

USER_SITECUSTOMIZE = """
# The user's own tracing set-up, done before anything else is imported.
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

provider = TracerProvider()  # service.name from OTEL_SERVICE_NAME
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
trace.set_tracer_provider(provider)
CeleryInstrumentor().instrument()
RedisInstrumentor().instrument()
"""


class Collector:
    """A minimal OTLP/HTTP trace receiver: decodes each request, keeps (service, span) rows."""

    def __init__(self) -> None:
        self.spans: list[dict[str, str]] = []
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                collector.receive(ExportTraceServiceRequest.FromString(body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def receive(self, request: ExportTraceServiceRequest) -> None:
        rows = []
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    rows.append(
                        {
                            "service": attributes.get("service.name", ""),
                            "scope": scope_spans.scope.name,
                            "name": span.name,
                            "span_id": span.span_id.hex(),
                            "trace_id": span.trace_id.hex(),
                        }
                    )
        with self._lock:
            self.spans.extend(rows)

    def snapshot(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self.spans)


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    receiver = Collector()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="module")
def user_stack(shared_stack, collector, tmp_path_factory) -> Stack:
    site = tmp_path_factory.mktemp("user-otel")
    (site / "sitecustomize.py").write_text(USER_SITECUSTOMIZE)
    return shared_stack(
        env={
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
            "PYTHONPATH": os.pathsep.join([str(example_app_dir()), str(site)]),
        },
        web_env={"OTEL_SERVICE_NAME": "users-web"},
        worker_env={"OTEL_SERVICE_NAME": "users-worker"},
    )


@pytest.fixture(scope="module")
def conversation(user_stack) -> tuple[str, list[str], list[Span]]:
    """One healthy two-message conversation; its id, message ids and the spans of its traces."""
    conversation_id = uuid.uuid4().hex[:12]
    transcript = user_stack.talk(["hello", "and again"], conversation_id=conversation_id)
    assert transcript.all_done, user_stack.log_tails()
    assert [transcript.seqs(m) for m in transcript.message_ids] == [[1, 2, 3, 4, 5]] * 2

    def complete(spans: list[Span]) -> bool:
        # Both processes flushed: every frame sent (web), every task span ended (worker).
        mine = [s for s in spans if s.attributes.get(c.CONVERSATION_ID) == conversation_id]
        sends = sum(s.name == c.SPAN_SEND for s in mine)
        tasks = sum(s.name == f"run/{TASK}" for s in mine)
        return sends >= 2 * (CHUNKS + 2) and tasks >= 2  # ack, chunks, done per message

    try:
        spans = wait_for(user_stack.trace_dir, complete, timeout=30)
    except TimeoutError:  # let the tests below say what is missing
        spans = read_spans(user_stack.trace_dir)
    traces = {s.trace_id for s in spans if s.attributes.get(c.CONVERSATION_ID) == conversation_id}
    return conversation_id, transcript.message_ids, [s for s in spans if s.trace_id in traces]


def test_the_users_exporter_still_receives_their_spans_and_ours(
    user_stack, collector, conversation
):
    _, _, spans = conversation
    ours = {s.span_id for s in spans if s.name == c.SPAN_RECEIVE}

    def arrived() -> bool:
        received = {row["span_id"] for row in collector.snapshot()}
        return ours <= received

    wait_for(user_stack.trace_dir, lambda _: arrived(), timeout=15)
    received = collector.snapshot()
    scopes = {row["scope"] for row in received}
    assert "opentelemetry.instrumentation.celery" in scopes
    assert "opentelemetry.instrumentation.redis" in scopes
    assert c.SCOPE_NAME in scopes
    assert {row["service"] for row in received} >= {"users-web", "users-worker"}


def test_wstrace_writes_with_the_users_provider_and_resource(conversation):
    _, _, spans = conversation

    assert {s.service for s in spans} == {"users-web", "users-worker"}
    assert all("wstrace.version" not in s.resource for s in spans)  # not a provider of ours


def test_one_enqueue_and_one_task_span_per_message_the_contrib_ones_enriched(conversation):
    conversation_id, message_ids, spans = conversation

    assert [s for s in spans if s.name in (c.SPAN_ENQUEUE, c.SPAN_TASK)] == []
    for message_id in message_ids:
        mine = [s for s in spans if s.attributes.get(c.MESSAGE_ID) == message_id]
        enqueue = [s for s in mine if s.name == f"apply_async/{TASK}"]
        task = [s for s in mine if s.name == f"run/{TASK}"]
        assert len(enqueue) == 1 and len(task) == 1, [s.name for s in mine]
        for span, hop in ((enqueue[0], c.HOP_ENQUEUE), (task[0], c.HOP_TASK)):
            assert span.attributes[c.HOP] == hop
            assert span.attributes[c.CONVERSATION_ID] == conversation_id
            assert span.attributes[c.CONNECTION_ID]
            assert span.attributes[c.TASK_ID] == task[0].attributes[c.TASK_ID]
        assert enqueue[0].attributes[c.QUEUE] == "celery"
        assert task[0].parent_id == enqueue[0].span_id


def test_the_chain_stays_connected_through_the_contrib_spans(conversation):
    _, message_ids, spans = conversation
    by_id = {s.span_id: s for s in spans}

    for message_id in message_ids:
        mine = [s for s in spans if s.attributes.get(c.MESSAGE_ID) == message_id]
        publishes = [s for s in mine if s.name == c.SPAN_PUBLISH]
        assert sorted(s.attributes[c.SEQ] for s in publishes) == list(range(1, CHUNKS + 2))
        for publish in publishes:
            assert by_id[publish.parent_id].name == f"run/{TASK}"
        delivers = [s for s in mine if s.name == c.SPAN_DELIVER]
        assert {by_id[d.parent_id].span_id for d in delivers} == {p.span_id for p in publishes}


def test_every_parent_in_the_conversations_traces_exists(conversation):
    _, _, spans = conversation
    ids = {s.span_id for s in spans}

    orphans = [(s.service, s.name) for s in spans if s.parent_id and s.parent_id not in ids]

    assert orphans == []
    assert len({s.trace_id for s in spans}) == 1  # one connection: one trace
    # The check covers the contrib spans too: redis commands made inside the chain.
    assert any(s.scope == "opentelemetry.instrumentation.redis" for s in spans)


def test_no_span_is_written_twice(conversation, user_stack):
    _, _, spans = conversation
    everything = read_spans(user_stack.trace_dir)

    keys = [(s.trace_id, s.span_id) for s in everything]
    assert len(keys) == len(set(keys))
    assert spans
