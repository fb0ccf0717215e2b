"""Putting the trace context and the conversation ids into messages, and taking them out.

Two carriers: Celery task headers (standard ``traceparent``/``baggage`` keys,
so the Celery contrib instrumentation understands them too) and channel-layer
messages, where everything lives under the one reserved key
``conventions.CARRIER_KEY`` that is stripped before any handler runs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from opentelemetry import baggage, context, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import propagation as trace_propagation
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from wstrace import conventions as c

# Our own propagator, independent of OTEL_PROPAGATORS: the reserved key is ours.
PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
SEQ_FIELD = "seq"


def inject(ctx: context.Context | None = None) -> dict[str, str]:
    """The current (or given) context as W3C ``traceparent``/``baggage`` strings (task headers)."""
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=ctx)
    return carrier


def extract(carrier: Mapping[str, Any] | None) -> context.Context:
    """A context (parent span + baggage) from a carrier; empty context if unusable."""
    if not isinstance(carrier, Mapping):
        return context.Context()
    if "baggage" not in carrier and "traceparent" in carrier:
        return extract_message(carrier)
    clean = {k: v for k, v in carrier.items() if isinstance(k, str) and isinstance(v, str)}
    return PROPAGATOR.extract(clean, context=context.Context())


def message_carrier(span_context: trace.SpanContext, ids: Mapping[str, str]) -> dict[str, str]:
    """The carrier for a channel-layer message: ``traceparent`` plus the ws ids as plain keys.

    Cheaper than W3C baggage on both sides (it runs for every streamed chunk) and
    still readable: ``{"traceparent": "00-…-…-01", "ws.message_id": "…", …}``.
    """
    carried: dict[str, str] = {}
    if span_context.is_valid:
        carried["traceparent"] = (
            f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}"
            f"-{int(span_context.trace_flags):02x}"
        )
    for key in c.BAGGAGE_KEYS:
        value = ids.get(key)
        if value:
            carried[key] = str(value)
    return carried


def parent_of(carrier: Mapping[str, Any]) -> trace.SpanContext | None:
    """The remote parent span context ``message_carrier`` wrote, if readable."""
    parts = str(carrier.get("traceparent", "")).split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        span_context = trace.SpanContext(
            trace_id=int(parts[1], 16),
            span_id=int(parts[2], 16),
            is_remote=True,
            trace_flags=trace.TraceFlags(int(parts[3], 16) & 0xFF),
        )
    except ValueError:
        return None
    return span_context if span_context.is_valid else None


def context_for(
    span: trace.Span, entries: Mapping[str, str], values: Mapping[str, Any] | None = None
) -> context.Context:
    """A fresh context holding ``span`` as current, ``entries`` as baggage and ``values``.

    One dict instead of a copy per key: the consumer builds one per delivered chunk.
    """
    if _SPAN_KEY is not None and _BAGGAGE_KEY is not None:
        return context.Context({_SPAN_KEY: span, _BAGGAGE_KEY: dict(entries), **(values or {})})
    ctx = trace.set_span_in_context(span, _with_baggage(context.Context(), entries))
    for key, value in (values or {}).items():
        ctx = context.set_value(key, value, ctx)
    return ctx


def baggage_of(ctx: context.Context) -> Mapping[str, Any]:
    """The baggage entries of ``ctx`` (read-only)."""
    if _BAGGAGE_KEY is not None:
        entries = ctx.get(_BAGGAGE_KEY)
        return entries if isinstance(entries, dict) else {}
    return baggage.get_all(ctx)


def extract_message(
    carrier: Mapping[str, Any],
    defaults: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> context.Context:
    """The context ``message_carrier`` wrote: parent span and ws ids as baggage.

    ``defaults`` fill ids the carrier lacks, ``overrides`` replace what it says.
    The context is built with as few copies as possible: this runs for every
    chunk a consumer receives.
    """
    ctx = context.Context()
    span_context = parent_of(carrier)
    if span_context is not None:
        ctx = trace.set_span_in_context(trace.NonRecordingSpan(span_context), ctx)
    entries = dict(defaults) if defaults else {}
    for key in c.BAGGAGE_KEYS:
        value = carrier.get(key)
        if isinstance(value, str) and value:
            entries[key] = value
    if overrides:
        entries.update(overrides)
    return _with_baggage(ctx, entries)


def with_ids(ctx: context.Context | None = None, **ids: str | None) -> context.Context:
    """Return ``ctx`` with the given ws ids set as baggage (``conversation_id=...``)."""
    ctx = ctx if ctx is not None else context.get_current()
    return _with_baggage(ctx, {f"ws.{name}": str(value) for name, value in ids.items() if value})


def _with_baggage(ctx: context.Context, entries: Mapping[str, str]) -> context.Context:
    if not entries:
        return ctx
    if _BAGGAGE_KEY is None:  # an API without the private key: one copy per entry
        for key, value in entries.items():
            ctx = baggage.set_baggage(key, value, context=ctx)
        return ctx
    # What set_baggage does for one entry, for all of them in one context copy.
    current = context.get_value(_BAGGAGE_KEY, ctx)
    merged = {**current, **entries} if isinstance(current, dict) else dict(entries)
    return context.set_value(_BAGGAGE_KEY, merged, ctx)


# The SDK's own context keys, for building a context in one step; the public API
# (one copy per value) is the fallback should a future API rename them.
_BAGGAGE_KEY = getattr(baggage, "_BAGGAGE_KEY", None)
_SPAN_KEY = getattr(trace_propagation, "_SPAN_KEY", None)


def ids_of(ctx: context.Context | None = None) -> dict[str, str]:
    """The ws ids present in the baggage of ``ctx`` (or the current context)."""
    entries = baggage.get_all(ctx)
    return {key: str(entries[key]) for key in c.BAGGAGE_KEYS if key in entries}


def take_from_message(message: Mapping[str, Any]) -> tuple[Mapping[str, Any], Any]:
    """Split a channel-layer message into (message without the reserved key, carrier)."""
    # type() first: channel-layer messages are dicts, and the ABC check costs ~1 µs.
    if (type(message) is not dict and not isinstance(message, Mapping)) or (
        c.CARRIER_KEY not in message
    ):
        return message, None
    clean = {k: v for k, v in message.items() if k != c.CARRIER_KEY}
    return clean, message[c.CARRIER_KEY]


class ParkedCarriers:
    """Carriers taken off messages as the layer returns them, until the dispatcher claims them.

    Stripping at ``receive()`` means even code that reads the layer directly
    (not through a consumer) never sees the reserved key. Keyed by the message
    object's id; the message is held so the id cannot be reused; bounded so
    messages nobody dispatches cannot pile up.
    """

    def __init__(self, limit: int = 2048) -> None:
        self._parked: OrderedDict[int, tuple[dict[str, Any], Any]] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def park(self, message: Mapping[str, Any]) -> Mapping[str, Any]:
        """Return ``message`` without the reserved key, remembering its carrier."""
        clean, carried = take_from_message(message)
        if carried is not None:
            with self._lock:
                self._parked[id(clean)] = (clean, carried)  # type: ignore[assignment]
                if len(self._parked) > self._limit:
                    self._parked.popitem(last=False)
        return clean

    def claim(self, message: Any) -> Any:
        """The carrier parked for this exact message object, if any."""
        with self._lock:
            entry = self._parked.pop(id(message), None)
        return entry[1] if entry is not None and entry[0] is message else None


PARKED = ParkedCarriers()
