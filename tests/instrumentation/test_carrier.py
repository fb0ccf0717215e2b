"""The carrier's and the current context's fast paths say exactly what the OpenTelemetry API says.

Each fast path (task-header inject/extract without the propagators, the current
context read from its ContextVar, the ids cached per baggage dict, the parent
of a channel-layer carrier) is compared with the public API on the same input,
including the inputs that must fall back to it.
"""

from __future__ import annotations

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from wstrace import carrier, current

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331


def _context(entries: dict[str, str], *, state: TraceState | None = None, flags: int = 1):
    ctx = context.Context()
    if entries is not None:
        for key, value in entries.items():
            ctx = baggage.set_baggage(key, value, ctx)
    span_context = SpanContext(TRACE_ID, SPAN_ID, True, TraceFlags(flags), state)
    return trace.set_span_in_context(NonRecordingSpan(span_context), ctx)


def _sdk_inject(ctx: context.Context) -> dict[str, str]:
    headers: dict[str, str] = {}
    carrier.PROPAGATOR.inject(headers, context=ctx)
    return headers


def _seen(ctx: context.Context) -> tuple[object, dict[str, object]]:
    return trace.get_current_span(ctx).get_span_context(), dict(baggage.get_all(ctx))


CASES = {
    "ids": {"ws.conversation_id": "c-1", "ws.connection_id": "f" * 32, "ws.message_id": "m.1~x"},
    "none": {},
    "space and comma": {"ws.conversation_id": "a b,c", "ws.message_id": "m-1"},
    "unicode": {"ws.conversation_id": "café"},
    "equals sign": {"user": "a=b"},
    "many members": {f"k{i}": "v" for i in range(100)},
}


@pytest.mark.parametrize("entries", CASES.values(), ids=CASES.keys())
def test_task_headers_are_written_and_read_back_exactly_as_the_w3c_propagators_do(
    entries: dict[str, str],
) -> None:
    ctx = _context(entries)
    headers = carrier.inject(ctx)
    assert headers == _sdk_inject(ctx)
    assert _seen(carrier.extract(headers)) == _seen(
        carrier.PROPAGATOR.extract(headers, context=context.Context())
    )
    assert _seen(carrier.extract(headers))[1] == entries


def test_a_tracestate_or_an_unsampled_parent_goes_through_the_propagators_unchanged() -> None:
    ctx = _context({"ws.message_id": "m1"}, state=TraceState([("vendor", "x")]), flags=0)
    headers = carrier.inject(ctx)
    assert headers == _sdk_inject(ctx)
    assert headers["tracestate"] == "vendor=x"
    read = carrier.extract(headers)
    assert _seen(read) == _seen(carrier.PROPAGATOR.extract(headers, context=context.Context()))
    assert trace.get_current_span(read).get_span_context().trace_state.get("vendor") == "x"


BAD_HEADERS = {
    "zero trace id": {"traceparent": f"00-{'0' * 32}-{SPAN_ID:016x}-01", "baggage": "a=b"},
    "upper-case hex": {"traceparent": f"00-{TRACE_ID:032X}-{SPAN_ID:016x}-01", "baggage": "a=b"},
    "version ff": {"traceparent": f"ff-{TRACE_ID:032x}-{SPAN_ID:016x}-01", "baggage": "a=b"},
    "future version": {"traceparent": f"01-{TRACE_ID:032x}-{SPAN_ID:016x}-01-x", "baggage": "a=b"},
    "quoted baggage": {"traceparent": f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01", "baggage": "a=%20b"},
    "baggage properties": {"baggage": "a=b;p=1,c=d"},
    "no baggage value": {"baggage": "a=,c=d"},
    "not a string": {"traceparent": 7, "baggage": "a=b"},
}


@pytest.mark.parametrize("headers", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_unusual_task_headers_are_read_as_the_propagators_read_them(headers: dict) -> None:
    clean = {k: v for k, v in headers.items() if isinstance(v, str)}
    expected = carrier.PROPAGATOR.extract(clean, context=context.Context())
    assert _seen(carrier.extract(headers)) == _seen(expected)


def test_the_current_context_span_and_ids_match_the_api_inside_and_outside_an_attach() -> None:
    assert current.get() is context.get_current()
    assert current.ids() == {}
    ctx = _context(CASES["ids"] | {"other": "x"})
    token = current.attach(ctx)
    try:
        assert context.get_current() is ctx
        assert current.span_context() == trace.get_current_span().get_span_context()
        assert current.ids() == CASES["ids"]
        first = current.ids()
        first["ws.message_id"] = "changed by a caller"
        assert current.ids() == CASES["ids"]  # each call gets its own dict
    finally:
        current.detach(token)
    assert context.get_current() is not ctx
    assert current.span_context() == trace.INVALID_SPAN_CONTEXT
    other = baggage.set_baggage("ws.message_id", "m2", ctx)
    assert current.ids(other)["ws.message_id"] == "m2"  # a new baggage dict, new ids


def test_a_channel_layer_traceparent_gives_the_span_context_the_api_would_build() -> None:
    parent = carrier.parent_of({"traceparent": f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01"})
    assert parent == SpanContext(TRACE_ID, SPAN_ID, True, TraceFlags(1))
    assert parent.is_valid and parent.trace_flags.sampled
    for bad in ("00-" + "0" * 32 + f"-{SPAN_ID:016x}-01", f"00-{TRACE_ID:032x}-{SPAN_ID:016x}--1"):
        assert carrier.parent_of({"traceparent": bad}) is None
