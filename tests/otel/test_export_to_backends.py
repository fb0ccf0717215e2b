"""The documented setup end to end, on the real example stack (Daphne + Celery + Redis).

``WSTRACE_EXPORTERS=file,otlp`` and ``OTEL_EXPORTER_OTLP_ENDPOINT`` point both
processes at a local OTLP/HTTP receiver standing in for the collector (POST
/v1/traces, protobuf). What it receives is served back as Jaeger's and Tempo's
query APIs would serve it, and ``wsanalyze conversation`` must say the same from
``jaeger://`` and ``tempo://`` as from the embedded file store.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from typer.testing import CliRunner
from wsanalyze.cli import app
from wstrace import conventions as C

from .backends import FakeJaeger, FakeTempo
from .conversation import hex_ids, jaeger_traces

pytestmark = pytest.mark.stack


class OtlpReceiver:
    """POST /v1/traces (OTLP/HTTP protobuf), like the collector's otlp receiver on :4318."""

    def __init__(self):
        self.requests: list[ExportTraceServiceRequest] = []
        self.paths: set[str] = set()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = ExportTraceServiceRequest.FromString(body)
                with receiver.lock:
                    receiver.requests.append(request)
                    receiver.paths.add(self.path)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def docs(self) -> list[dict]:
        """The received requests in protobuf JSON (base64 ids, enum names), as Tempo serves."""
        with self.lock:
            return [MessageToDict(r) for r in self.requests]

    def sends(self, conversation_id: str) -> int:
        count = 0
        for doc in self.docs():
            for rs in doc.get("resourceSpans", []):
                for ss in rs.get("scopeSpans", []):
                    for span in ss.get("spans", []):
                        attrs = {a["key"]: a["value"] for a in span.get("attributes", [])}
                        conv = attrs.get(C.CONVERSATION_ID, {}).get("stringValue")
                        if span["name"] == C.SPAN_SEND and conv == conversation_id:
                            count += 1
        return count


@pytest.fixture(scope="module")
def receiver():
    otlp = OtlpReceiver()
    otlp.thread.start()
    yield otlp
    otlp.server.shutdown()
    otlp.server.server_close()


@pytest.fixture(scope="module")
def exporting_stack(shared_stack, receiver):
    return shared_stack(
        env={
            "WSTRACE_EXPORTERS": "file,otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        }
    )


def test_what_the_stack_exports_reads_back_the_same_from_jaeger_and_tempo(
    exporting_stack, receiver
):
    conversation_id = f"otel-{uuid.uuid4().hex[:8]}"
    transcript = exporting_stack.talk(["hello", "and again"], conversation_id=conversation_id)
    assert transcript.all_done, exporting_stack.log_tails()
    runner = CliRunner()

    def analyze(source: str) -> dict:
        result = runner.invoke(app, ["conversation", conversation_id, "--traces", source, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    # both exporters batch: wait until the file store has the whole conversation, then
    # until the OTLP receiver has as many ws.send spans
    deadline = time.monotonic() + 20
    local = analyze(str(exporting_stack.trace_dir))
    while local["verdict"]["outcome"] != "delivered" and time.monotonic() < deadline:
        time.sleep(0.3)
        local = analyze(str(exporting_stack.trace_dir))
    assert local["verdict"]["outcome"] == "delivered", local["verdict"]
    sends = sum(1 for e in local["timeline"] if e["hop"] == C.HOP_SEND)
    assert sends >= sum(len(transcript.chunks[m]) for m in transcript.message_ids)
    while receiver.sends(conversation_id) < sends and time.monotonic() < deadline:
        time.sleep(0.2)
    assert receiver.sends(conversation_id) == sends, "the OTLP export did not arrive"
    assert receiver.paths == {"/v1/traces"}  # OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces

    docs = receiver.docs()
    with FakeJaeger(jaeger_traces([hex_ids(d) for d in docs])) as jaeger, FakeTempo(docs) as tempo:
        for source in (f"jaeger://{jaeger.address}", f"tempo://{tempo.address}"):
            remote = analyze(source)
            assert remote["verdict"] == local["verdict"], source
            assert [
                (m["message_id"], m["outcome"], m["hop"], m["cause"], m["chunks"])
                for m in remote["messages"]
            ] == [
                (m["message_id"], m["outcome"], m["hop"], m["cause"], m["chunks"])
                for m in local["messages"]
            ], source
            assert [m["message_id"] for m in remote["messages"]] == transcript.message_ids
            spans = {(e["trace_id"], e["hop"], e["seq"]) for e in remote["timeline"]}
            assert spans == {(e["trace_id"], e["hop"], e["seq"]) for e in local["timeline"]}
