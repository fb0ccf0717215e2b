"""The lean tracer: the spans wstrace makes itself are the spans the SDK would have made."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider, sampling
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from wstrace.otlp_json import encode_request
from wstrace.provider import IdsFromBaggage
from wstrace.tracer import LeanSpan, LeanTracer
from wstrace.tracer_fit import can_replace


def _provider(sampler: sampling.Sampler | None = None) -> tuple[TracerProvider, Any]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "web"}),
        **({"sampler": sampler} if sampler else {}),
    )
    provider.add_span_processor(IdsFromBaggage())
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def _conversation_context() -> context.Context:
    ctx = baggage.set_baggage("ws.conversation_id", "conv1")
    ctx = baggage.set_baggage("ws.connection_id", "c0ffee", ctx)
    return baggage.set_baggage("ws.message_id", "m1", ctx)


def _scenario(tracer: trace.Tracer) -> None:
    """What the wrappers do: a parent, a child with baggage ids, events, status, an exception."""
    parent = tracer.start_span("ws.receive", kind=SpanKind.SERVER, attributes={"ws.hop": "receive"})
    ctx = trace.set_span_in_context(parent, _conversation_context())
    child = tracer.start_span(
        "ws.publish",
        context=ctx,
        kind=SpanKind.PRODUCER,
        attributes={"ws.hop": "publish", "ws.seq": 3, "ws.queues": ["a", "b"]},
    )
    child.set_attribute("ws.group_members", 0)
    child.set_attributes({"ws.over_capacity": 1, "ws.cause": "channel_full"})
    child.add_event("ws.channel_full", {"ws.over_capacity": 1})
    child.set_status(Status(StatusCode.ERROR, "1 channel(s) over capacity: dropped"))
    try:
        raise KeyError("content")
    except KeyError as exc:
        child.record_exception(exc)
    child.end()
    parent.end()


def _normalized(spans: list[ReadableSpan]) -> list[dict[str, Any]]:
    """The OTLP/JSON wstrace writes, without what differs run to run (ids, times, stack text)."""
    request = json.loads(encode_request(spans))
    out = []
    for scope in request["resourceSpans"][0]["scopeSpans"]:
        for span in scope["spans"]:
            events = [
                {
                    "name": e["name"],
                    "attributes": sorted(
                        a["key"] for a in e["attributes"] if a["key"] != "exception.stacktrace"
                    ),
                }
                for e in span.get("events", [])
            ]
            out.append(
                {
                    "name": span["name"],
                    "kind": span["kind"],
                    "has_parent": "parentSpanId" in span,
                    "attributes": sorted(
                        (a["key"], json.dumps(a["value"])) for a in span["attributes"]
                    ),
                    "status": span["status"],
                    "events": events,
                }
            )
    return out


def test_lean_spans_encode_exactly_like_sdk_spans_with_the_baggage_ids_copied() -> None:
    provider, memory = _provider()
    _scenario(provider.get_tracer("wstrace", "0.1.0"))
    sdk = _normalized(list(memory.get_finished_spans()))
    memory.clear()
    _scenario(LeanTracer(provider, "wstrace", "0.1.0"))
    lean_spans = list(memory.get_finished_spans())
    assert all(isinstance(span, LeanSpan) for span in lean_spans)
    lean = _normalized(lean_spans)
    assert lean == sdk
    publish = dict(lean[0]["attributes"])
    assert json.loads(publish["ws.message_id"]) == {"stringValue": "m1"}
    assert lean[0]["status"] == {"code": 2, "message": "1 channel(s) over capacity: dropped"}


def test_a_lean_child_continues_its_parents_trace_and_a_root_starts_a_new_one() -> None:
    provider, memory = _provider()
    tracer = LeanTracer(provider, "wstrace", "0.1.0")
    root = tracer.start_span("ws.connect")
    child = tracer.start_span("ws.auth", context=trace.set_span_in_context(root))
    other = tracer.start_span("ws.connect")
    for span in (child, root, other):
        span.end()
    assert child.get_span_context().trace_id == root.get_span_context().trace_id
    assert child.parent == root.get_span_context()
    assert root.parent is None
    assert other.get_span_context().trace_id != root.get_span_context().trace_id
    assert child.get_span_context().span_id != root.get_span_context().span_id
    assert [s.name for s in memory.get_finished_spans()] == ["ws.auth", "ws.connect", "ws.connect"]


def test_none_attribute_values_are_dropped_not_written_as_text() -> None:
    provider, memory = _provider()
    span = LeanTracer(provider, "wstrace", "0.1.0").start_span(
        "ws.send", attributes={"ws.hop": "send", "ws.seq": None}
    )
    span.set_attribute("ws.close_code", None)
    span.end()
    (exported,) = memory.get_finished_spans()
    assert dict(exported.attributes) == {"ws.hop": "send"}


def test_a_lean_span_is_exported_once_and_frozen_after_end() -> None:
    provider, memory = _provider()
    span = LeanTracer(provider, "wstrace", "0.1.0").start_span("ws.send")
    span.end()
    span.set_attribute("ws.seq", 9)
    span.set_status(Status(StatusCode.ERROR, "late"))
    span.end()
    (exported,) = memory.get_finished_spans()
    assert "ws.seq" not in exported.attributes
    assert exported.status.status_code is StatusCode.UNSET
    assert not span.is_recording()


def test_ok_status_is_final_and_unset_is_ignored_as_in_the_sdk() -> None:
    provider, _ = _provider()
    span = LeanTracer(provider, "wstrace", "0.1.0").start_span("ws.task")
    span.set_status(StatusCode.UNSET)
    assert span.status.status_code is StatusCode.UNSET
    span.set_status(StatusCode.OK)
    span.set_status(Status(StatusCode.ERROR, "after ok"))
    assert span.status.status_code is StatusCode.OK


def test_an_unsampled_remote_parent_gives_a_non_recording_span_as_parent_based_sampling_does() -> (
    None
):
    provider, memory = _provider()
    remote = trace.SpanContext(
        trace_id=0x1234, span_id=0x42, is_remote=True, trace_flags=trace.TraceFlags(0)
    )
    ctx = trace.set_span_in_context(trace.NonRecordingSpan(remote))
    span = LeanTracer(provider, "wstrace", "0.1.0").start_span("ws.deliver", context=ctx)
    span.end()
    assert not span.is_recording()
    assert span.get_span_context().trace_id == 0x1234
    assert memory.get_finished_spans() == ()


def test_start_as_current_span_makes_the_span_current_and_records_an_escaping_error() -> None:
    provider, memory = _provider()
    tracer = LeanTracer(provider, "wstrace", "0.1.0")
    with pytest.raises(ValueError), tracer.start_as_current_span("wstrace.doctor") as span:
        assert trace.get_current_span() is span
        raise ValueError("boom")
    (exported,) = memory.get_finished_spans()
    assert exported.status.status_code is StatusCode.ERROR
    assert [e.name for e in exported.events] == ["exception"]
    assert trace.get_current_span() is not span


def test_links_given_at_start_are_kept() -> None:
    provider, memory = _provider()
    target = trace.SpanContext(trace_id=7, span_id=8, is_remote=True)
    span = LeanTracer(provider, "wstrace", "0.1.0").start_span("ws.task", links=[Link(target)])
    span.end()
    (exported,) = memory.get_finished_spans()
    assert [link.context.span_id for link in exported.links] == [8]


def test_only_a_default_sampled_sdk_provider_can_be_replaced() -> None:
    assert can_replace(TracerProvider())
    assert not can_replace(TracerProvider(sampler=sampling.TraceIdRatioBased(0.5)))
    assert not can_replace(trace.NoOpTracerProvider())


def test_runtime_uses_the_lean_tracer_only_for_the_provider_wstrace_installed(monkeypatch) -> None:
    from opentelemetry.sdk.trace import Tracer as SdkTracer
    from wstrace import provider as providers
    from wstrace import runtime

    ours, theirs = TracerProvider(), TracerProvider()
    monkeypatch.setitem(runtime._state, "tracer", None)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", ours)
    monkeypatch.setattr(providers, "_installed", {"provider": ours, "owned": True})
    assert isinstance(runtime.tracer(), LeanTracer)
    # The app brought its provider: its sampler and processors see SDK spans.
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", theirs)
    monkeypatch.setattr(providers, "_installed", {"provider": theirs, "owned": False})
    assert isinstance(runtime.tracer(), SdkTracer)
    # Ours, but with a sampler the user chose (OTEL_TRACES_SAMPLER): the SDK decides.
    sampled = TracerProvider(sampler=sampling.TraceIdRatioBased(0.5))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", sampled)
    monkeypatch.setattr(providers, "_installed", {"provider": sampled, "owned": True})
    assert isinstance(runtime.tracer(), SdkTracer)


class _Collect(SpanExporter):
    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def export(self, spans: Any) -> SpanExportResult:
        self.batches.append([span.name for span in spans])
        return SpanExportResult.SUCCESS


def test_lean_spans_reach_a_batch_processor_whose_full_batch_wakes_its_exporter() -> None:
    exported = _Collect()
    provider = TracerProvider()
    # An hour's delay: only a full batch (the wake-up emit() would give) exports early.
    provider.add_span_processor(
        BatchSpanProcessor(exported, schedule_delay_millis=3_600_000, max_export_batch_size=4)
    )
    tracer = LeanTracer(provider, "wstrace", "0.1.0")
    for index in range(4):
        tracer.start_span(f"ws.send.{index}").end()
    deadline = time.monotonic() + 5
    while not exported.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert exported.batches == [["ws.send.0", "ws.send.1", "ws.send.2", "ws.send.3"]]
    provider.shutdown()


def test_a_full_batch_queue_drops_the_oldest_span_as_the_sdk_does() -> None:
    exported = _Collect()
    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(
            exported, schedule_delay_millis=3_600_000, max_queue_size=3, max_export_batch_size=3
        )
    )
    processor = provider._active_span_processor._span_processors[0]
    processor._batch_processor._worker_awaken.set = lambda: None  # keep the queue as it fills
    tracer = LeanTracer(provider, "wstrace", "0.1.0")
    for index in range(5):
        tracer.start_span(f"ws.send.{index}").end()
    queued = [span.name for span in processor._batch_processor._queue]
    assert queued == ["ws.send.4", "ws.send.3", "ws.send.2"]  # newest first, 0 and 1 dropped
    provider.shutdown()


def test_a_child_of_a_lean_span_matches_start_child_and_an_unsampled_parent_stays_unsampled() -> (
    None
):
    provider, memory = _provider()
    tracer = LeanTracer(provider, "wstrace", "0.1.0")
    deliver = tracer.start_span("ws.deliver")
    send = tracer.start_child_of_own("ws.send", deliver, SpanKind.INTERNAL, {"ws.hop": "send"})
    send.end()
    deliver.end()
    own, parent = deliver.get_span_context(), send.get_span_context()
    assert send.parent == own
    assert (parent.trace_id, parent.trace_flags, parent.is_valid) == (
        own.trace_id,
        own.trace_flags,
        True,
    )
    assert parent.span_id != own.span_id
    unsampled = trace.NonRecordingSpan(
        trace.SpanContext(0x1234, 0x42, is_remote=True, trace_flags=trace.TraceFlags(0))
    )
    child = tracer.start_child_of_own("ws.send", unsampled, SpanKind.INTERNAL, {})
    assert not child.is_recording()
    assert [s.name for s in memory.get_finished_spans()] == ["ws.send", "ws.deliver"]
