"""The one seam for the lean tracer: ``ChildSpans`` and when ``can_replace`` allows the lean tracer.

The per-message wrappers start their spans through ``runtime.spans().start_child``
whichever tracer is in use; these tests show both tracers record the same spans
through it, that the SDK's tracer sees the parent context as for any span, and
that the lean tracer stands aside whenever the SDK's would record differently
(span limits, ``OTEL_SDK_DISABLED``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from wstrace import conventions as c
from wstrace import provider as providers
from wstrace import runtime
from wstrace.provider import IdsFromBaggage
from wstrace.tracer import LeanSpan, LeanTracer
from wstrace.tracer_fit import _LIMIT_VARIABLES, ChildSpans, can_replace

from .spans import Span, by_name, read_spans

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "instrumentation" / "wstrace"


@pytest.fixture
def clean_env() -> Any:
    """No span-limit or SDK-disabled variables, whatever the shell running the tests has."""
    names = set(_LIMIT_VARIABLES) | {"OTEL_SDK_DISABLED"}
    kept = {name: value for name, value in os.environ.items() if name not in names}
    with mock.patch.dict(os.environ, kept, clear=True):
        yield


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(IdsFromBaggage())
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def _handler_context(tracer: trace.Tracer) -> tuple[trace.Span, context.Context]:
    """A ws.deliver of ``tracer`` current in a context carrying the conversation's ids."""
    ctx = baggage.set_baggage(c.CONVERSATION_ID, "conv1")
    ctx = baggage.set_baggage(c.MESSAGE_ID, "m1", ctx)
    deliver = tracer.start_span(c.SPAN_DELIVER, ctx, SpanKind.CONSUMER, {c.HOP: c.HOP_DELIVER})
    return deliver, trace.set_span_in_context(deliver, ctx)


def _shape(span: Any) -> tuple[str, Any, dict[str, Any]]:
    return span.name, span.kind, dict(span.attributes)


def test_both_tracers_make_the_same_child_through_the_seam() -> None:
    attributes = {c.CONVERSATION_ID: "conv1", c.MESSAGE_ID: "m1", c.HOP: c.HOP_SEND, c.SEQ: 2}
    shapes = []
    for make in (lambda p: p.get_tracer("wstrace"), lambda p: LeanTracer(p, "wstrace", "0")):
        provider, memory = _provider()
        tracer = make(provider)
        deliver, ctx = _handler_context(tracer)
        send = ChildSpans(tracer).start_child(c.SPAN_SEND, ctx, SpanKind.INTERNAL, dict(attributes))
        send.end()
        deliver.end()
        assert send.parent == deliver.get_span_context()
        assert send.get_span_context().trace_id == deliver.get_span_context().trace_id
        shapes.append([_shape(span) for span in memory.get_finished_spans()])
    assert shapes[0] == shapes[1]


def test_the_lean_seam_takes_its_own_span_as_it_is_and_any_other_by_its_context() -> None:
    provider, memory = _provider()
    tracer = LeanTracer(provider, "wstrace", "0")
    seam = ChildSpans(tracer)
    deliver, ctx = _handler_context(tracer)
    own = seam.start_child(c.SPAN_SEND, ctx, SpanKind.INTERNAL, {})
    remote = trace.SpanContext(0x1234, 0x42, is_remote=True, trace_flags=trace.TraceFlags(1))
    under_remote = seam.start_child(
        c.SPAN_DELIVER,
        trace.set_span_in_context(trace.NonRecordingSpan(remote)),
        SpanKind.CONSUMER,
        {},
    )
    root = seam.start_child(c.SPAN_SEND, context.Context(), SpanKind.INTERNAL, {})
    unsampled = trace.SpanContext(0x1234, 0x43, is_remote=True, trace_flags=trace.TraceFlags(0))
    dropped = seam.start_child(
        c.SPAN_DELIVER,
        trace.set_span_in_context(trace.NonRecordingSpan(unsampled)),
        SpanKind.CONSUMER,
        {},
    )
    assert isinstance(own, LeanSpan) and own.parent == deliver.get_span_context()
    assert under_remote.parent == remote and under_remote.get_span_context().trace_id == 0x1234
    assert root.parent is None and root.get_span_context().is_valid
    assert not dropped.is_recording()  # ParentBased, as the SDK's default sampler
    for span in (own, under_remote, root, dropped, deliver):
        span.end()
    assert len(memory.get_finished_spans()) == 4


def test_the_sdk_seam_hands_processors_the_parent_context_with_its_baggage() -> None:
    seen: list[dict[str, Any]] = []

    class Watch(SpanProcessor):
        def on_start(self, span: Any, parent_context: context.Context | None = None) -> None:
            seen.append(dict(baggage.get_all(parent_context)))

    provider, _ = _provider()
    provider.add_span_processor(Watch())
    tracer = provider.get_tracer("wstrace")
    _, ctx = _handler_context(tracer)
    ChildSpans(tracer).start_child(c.SPAN_SEND, ctx, SpanKind.INTERNAL, {c.HOP: c.HOP_SEND}).end()
    assert seen[-1] == {c.CONVERSATION_ID: "conv1", c.MESSAGE_ID: "m1"}


def test_runtime_spans_follows_whatever_tracer_runtime_holds(monkeypatch, clean_env) -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    monkeypatch.setitem(runtime._state, "tracer", None)
    monkeypatch.setitem(runtime._state, "spans", None)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    monkeypatch.setattr(providers, "_installed", {"provider": provider, "owned": True})
    lean = runtime.spans()
    assert lean.start_child.__self__ is runtime.tracer()
    assert runtime.spans() is lean  # cached
    # What the cost benchmark does: hold the SDK's tracer instead; the seam follows.
    sdk = provider.get_tracer(c.SCOPE_NAME)
    monkeypatch.setitem(runtime._state, "tracer", (provider, sdk))
    assert runtime.spans().start_child.__self__ is sdk


@pytest.mark.parametrize("name", sorted(_LIMIT_VARIABLES))
def test_a_span_limit_variable_keeps_the_sdk_tracer(name: str, clean_env) -> None:
    assert can_replace(TracerProvider(shutdown_on_exit=False))
    with mock.patch.dict(os.environ, {name: "64"}):
        assert not can_replace(TracerProvider(shutdown_on_exit=False))


def test_span_limits_given_in_code_keep_the_sdk_tracer(clean_env) -> None:
    limited = TracerProvider(
        span_limits=SpanLimits(max_attribute_length=16), shutdown_on_exit=False
    )
    unlimited = TracerProvider(
        span_limits=SpanLimits(max_events=SpanLimits.UNSET), shutdown_on_exit=False
    )
    assert not can_replace(limited)
    assert not can_replace(unlimited)
    assert can_replace(TracerProvider(span_limits=SpanLimits(), shutdown_on_exit=False))


def test_otel_sdk_disabled_gives_the_sdks_no_op_tracer(monkeypatch, clean_env) -> None:
    with mock.patch.dict(os.environ, {"OTEL_SDK_DISABLED": "True "}):  # parsed as the SDK does
        provider = TracerProvider(shutdown_on_exit=False)
        assert not can_replace(provider)
    assert not can_replace(provider)  # the SDK decided when the provider was made
    monkeypatch.setitem(runtime._state, "tracer", None)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    monkeypatch.setattr(providers, "_installed", {"provider": provider, "owned": True})
    assert isinstance(runtime.tracer(), trace.NoOpTracer)
    span = runtime.spans().start_child(c.SPAN_SEND, context.Context(), SpanKind.INTERNAL, {})
    assert not span.is_recording()


def test_the_wrappers_never_ask_which_tracer_they_have() -> None:
    """Only the tracer, the seam choosing it (tracer_fit) and the runtime name the lean tracer."""
    naming = {
        path.relative_to(SOURCES).as_posix()
        for path in SOURCES.rglob("*.py")
        if re.search(r"\bLeanTracer\b", path.read_text(encoding="utf-8"))
    }
    assert naming <= {"tracer.py", "tracer_fit.py", "runtime.py"}


# --- end to end: an in-process Channels stack, each tracer ---------------------------------
SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys
    import django
    from django.conf import settings

    trace_dir, kind = sys.argv[1:3]
    if kind == "sdk":  # the app brought its provider: wstrace uses the SDK's tracer
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        trace.set_tracer_provider(TracerProvider())
    settings.configure(
        INSTALLED_APPS=["channels", "wstrace"],
        CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
        WSTRACE={"FILE_DIR": trace_dir, "SERVICE_NAME": "web"},
    )
    django.setup()

    from channels.generic.websocket import AsyncJsonWebsocketConsumer
    from channels.routing import ProtocolTypeRouter, URLRouter
    from channels.testing import WebsocketCommunicator
    from django.urls import path
    from wstrace import provider, runtime
    from wstrace.tracer import LeanTracer


    class Chat(AsyncJsonWebsocketConsumer):
        async def connect(self):
            self.group = "chat_" + self.scope["url_route"]["kwargs"]["conversation_id"]
            await self.channel_layer.group_add(self.group, self.channel_name)
            await self.accept()

        async def receive_json(self, content, **kwargs):
            await self.send_json({"type": "ack", "id": content["id"]})
            for seq in (1, 2):
                await self.channel_layer.group_send(
                    self.group, {"type": "chat.chunk", "id": content["id"], "seq": seq}
                )

        async def chat_chunk(self, event):
            await self.send_json({"type": "chunk", "id": event["id"], "seq": event["seq"]})


    app = ProtocolTypeRouter(
        {"websocket": URLRouter([path("ws/chat/<conversation_id>/", Chat.as_asgi())])}
    )


    async def main():
        client = WebsocketCommunicator(app, "/ws/chat/conv1/")
        assert (await client.connect())[0]
        await client.send_to(text_data=json.dumps({"type": "message", "id": "m1"}))
        for _ in range(3):
            await client.receive_from(timeout=5)
        await client.disconnect()


    asyncio.run(main())
    provider.flush()
    print(type(runtime.tracer()).__name__)
    """
)


def _run(tmp_path: Path, kind: str, **env: str) -> tuple[str, list[Span]]:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), kind],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "instrumentation"), **env},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip(), read_spans(tmp_path) if any(tmp_path.rglob("*.jsonl")) else []


_RANDOM = frozenset({c.CONNECTION_ID, c.CHANNEL})  # a uuid, the layer's channel name


def _chunk_hops(spans: list[Span]) -> list[tuple[str, str, dict[str, Any]]]:
    """Each chunk's deliver and send: name, parent's name, attributes (random names left out)."""
    by_id = {span.span_id: span for span in spans}
    out = []
    for span in sorted(
        by_name(spans, c.SPAN_DELIVER) + by_name(spans, c.SPAN_SEND), key=lambda s: s.start_ns
    ):
        parent = by_id.get(span.parent_id or "")
        attributes = {k: v for k, v in span.attributes.items() if k not in _RANDOM}
        out.append((span.name, parent.name if parent else "", attributes))
    return out


def test_the_lean_and_the_sdk_tracer_record_the_same_deliveries_and_sends(tmp_path: Path) -> None:
    lean_name, lean = _run(tmp_path / "lean", "lean")
    sdk_name, sdk = _run(tmp_path / "sdk", "sdk")
    assert (lean_name, sdk_name) == ("LeanTracer", "Tracer")
    hops = _chunk_hops(lean)
    assert hops == _chunk_hops(sdk)
    assert [(name, parent) for name, parent, _ in hops] == [
        (c.SPAN_SEND, c.SPAN_RECEIVE),  # the ack
        (c.SPAN_DELIVER, c.SPAN_PUBLISH),
        (c.SPAN_SEND, c.SPAN_DELIVER),
        (c.SPAN_DELIVER, c.SPAN_PUBLISH),
        (c.SPAN_SEND, c.SPAN_DELIVER),
    ]
    for _, _, attributes in hops:
        assert attributes[c.CONVERSATION_ID] == "conv1" and attributes[c.MESSAGE_ID] == "m1"
    assert [a.get(c.SEQ) for n, _, a in hops if n == c.SPAN_SEND] == [None, 1, 2]


def test_span_limits_from_the_environment_are_applied_as_the_sdk_applies_them(
    tmp_path: Path,
) -> None:
    name, spans = _run(tmp_path, "lean", OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT="3")
    assert name == "Tracer"  # wstrace's own provider, but the SDK's tracer
    assert spans and all(len(span.attributes) <= 3 for span in spans)


def test_otel_sdk_disabled_records_nothing(tmp_path: Path) -> None:
    name, spans = _run(tmp_path, "lean", OTEL_SDK_DISABLED="true")
    assert name == "NoOpTracer"
    assert spans == []
