"""Putting the trace context and the conversation ids into messages, and taking them out.

Two carriers: Celery task headers (standard ``traceparent``/``baggage`` keys,
so the Celery contrib instrumentation understands them too) and channel-layer
messages, where everything lives under the one reserved key
``conventions.CARRIER_KEY`` that is stripped before any handler runs.
"""

from __future__ import annotations

import contextlib
import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from opentelemetry import baggage, context, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from wstrace import conventions as c
from wstrace import current

# Our own propagator, independent of OTEL_PROPAGATORS: the reserved key is ours.
PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
SEQ_FIELD = "seq"


def inject(ctx: context.Context | None = None) -> dict[str, str]:
    """The current (or given) context as W3C ``traceparent``/``baggage`` strings (task headers)."""
    ctx = current.get() if ctx is None else ctx
    carrier: dict[str, str] = {}
    span_context = current.span_context(ctx)
    entries = ctx.get(_BAGGAGE_KEY) if _BAGGAGE_KEY is not None else None
    header = _plain_baggage(entries) if isinstance(entries, dict) else None
    if span_context.trace_state or header is None:
        PROPAGATOR.inject(carrier, context=ctx)  # anything but the usual case: the SDK's way
        return carrier
    # The usual case (ids as baggage, no tracestate), written as the propagators write it.
    if span_context != trace.INVALID_SPAN_CONTEXT:
        trace_id, span_id, _, flags, _, _ = span_context
        carrier["traceparent"] = f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"
    if header:
        carrier["baggage"] = header
    return carrier


def extract(carrier: Mapping[str, Any] | None) -> context.Context:
    """A context (parent span + baggage) from a carrier; empty context if unusable."""
    if not isinstance(carrier, Mapping):
        return context.Context()
    if "baggage" not in carrier and "traceparent" in carrier:
        return extract_message(carrier)
    fast = _extract_plain(carrier)
    if fast is not None:
        return fast
    clean = {k: v for k, v in carrier.items() if isinstance(k, str) and isinstance(v, str)}
    return _capped(PROPAGATOR.extract(clean, context=context.Context()))


def extract_trace(carrier: Mapping[str, Any] | None) -> context.Context:
    """Only the parent span of a carrier (``traceparent``/``tracestate``), never its baggage.

    For what a client sends (``TRUST_CLIENT_CONTEXT``): its trace may be continued,
    but the conversation, connection and message ids are never taken from it.
    """
    if not isinstance(carrier, Mapping):
        return context.Context()
    headers = {k: carrier[k] for k in _TRACE_HEADERS if isinstance(carrier.get(k), str)}
    return _TRACE_PROPAGATOR.extract(headers, context=context.Context())


_TRACE_HEADERS = ("traceparent", "tracestate")
_TRACE_PROPAGATOR = TraceContextTextMapPropagator()


def _capped(ctx: context.Context) -> context.Context:
    """``ctx`` with any over-long ws id of its baggage in its ``current.capped_id`` form."""
    entries = baggage_of(ctx)
    long = {
        key: current.capped_id(value)
        for key in c.BAGGAGE_KEYS
        if type(value := entries.get(key)) is str and len(value) > current.ID_LIMIT
    }
    return _with_baggage(ctx, long) if long else ctx


# What quote_plus leaves as it is; baggage made only of these needs no (un)quoting. The
# limits keep the fast paths far inside the W3C propagator's (180 members, 8192 bytes).
_PLAIN = re.compile(r"[A-Za-z0-9._~-]+")
_PLAIN_BAGGAGE = re.compile(
    r"[A-Za-z0-9._~-]+=[A-Za-z0-9._~-]+(?:,[A-Za-z0-9._~-]+=[A-Za-z0-9._~-]+)*"
)
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_PLAIN_LIMIT = 4096
_PLAIN_MEMBERS = 64


def _plain_baggage(entries: dict[str, Any]) -> str | None:
    """The W3C baggage header of ``entries`` if every key and value is plain, else None."""
    if len(entries) > _PLAIN_MEMBERS:
        return None
    pairs = []
    for key, value in entries.items():
        if type(key) is not str or type(value) is not str:
            return None
        if _PLAIN.fullmatch(key) is None or _PLAIN.fullmatch(value) is None:
            return None
        pairs.append(f"{key}={value}")
    header = ",".join(pairs)
    return header if len(header) <= _PLAIN_LIMIT else None


def _extract_plain(carrier: Mapping[str, Any]) -> context.Context | None:
    """``PROPAGATOR.extract`` for the headers ``inject`` writes; None for anything else."""
    if _SPAN_KEY is None or _BAGGAGE_KEY is None or carrier.get("tracestate"):
        return None
    header = carrier.get("baggage")
    parent = carrier.get("traceparent")
    if type(header) is not str or len(header) > _PLAIN_LIMIT:
        return None
    if _PLAIN_BAGGAGE.fullmatch(header) is None or header.count(",") >= _PLAIN_MEMBERS:
        return None
    values: dict[str, Any] = {}
    if parent is not None:
        match = _TRACEPARENT.fullmatch(parent) if type(parent) is str else None
        if match is None:
            return None
        trace_id, span_id = int(match[1], 16), int(match[2], 16)
        if not (trace_id and span_id):
            return None
        span_context = _tuple_new(
            trace.SpanContext,
            (trace_id, span_id, True, _FLAGS[int(match[3], 16)], _NO_STATE, True),
        )
        values[_SPAN_KEY] = trace.NonRecordingSpan(span_context)
    values[_BAGGAGE_KEY] = dict(pair.split("=", 1) for pair in header.split(","))
    return _capped(context.Context(values))


_last_trace: tuple[int, str] = (0, "")


def message_carrier(span_context: trace.SpanContext, ids: Mapping[str, str]) -> dict[str, str]:
    """The carrier for a channel-layer message: ``traceparent`` plus the ws ids as plain keys.

    Cheaper than W3C baggage on both sides (it runs for every streamed chunk) and
    still readable: ``{"traceparent": "00-…-…-01", "ws.message_id": "…", …}``.
    """
    global _last_trace
    carried: dict[str, str] = {}
    trace_id, span_id, _, flags, _, valid = span_context
    if valid:
        # The chunks of one answer share their trace: its 32 hex digits are made once.
        last = _last_trace
        if last[0] != trace_id:
            last = _last_trace = (trace_id, f"00-{trace_id:032x}-")
        carried["traceparent"] = f"{last[1]}{span_id:016x}-{flags:02x}"
    if (
        type(ids) is dict
        and ids.keys() <= _BAGGAGE_KEYS
        and _STR_ONLY.issuperset(map(type, ids.values()))
        and "" not in ids.values()
    ):
        carried.update(ids)  # what current.ids() gives: these keys, as text; once per chunk
        return carried
    for key in c.BAGGAGE_KEYS:
        value = ids.get(key)
        if value:
            carried[key] = str(value)
    return carried


_BAGGAGE_KEYS = frozenset(c.BAGGAGE_KEYS)
_STR_ONLY = frozenset({str})


def parent_of(carrier: Mapping[str, Any]) -> trace.SpanContext | None:
    """The remote parent span context ``message_carrier`` wrote, if readable."""
    text = carrier.get("traceparent")
    # "00-<32 hex>-<16 hex>-<2 hex>", read by position: this runs for every delivered chunk.
    if type(text) is not str or len(text) != 55 or text[2] != "-" or text[35] != "-":
        return None
    if text[52] != "-" or not _HEX.issuperset(text[3:35] + text[36:52] + text[53:]):
        return None
    trace_id, span_id, flags = int(text[3:35], 16), int(text[36:52], 16), int(text[53:], 16)
    if not (trace_id and span_id):
        return None
    # SpanContext is a tuple (trace_id, span_id, is_remote, flags, state, is_valid); its
    # constructor re-checks what was just checked, once per delivered chunk.
    return _tuple_new(trace.SpanContext, (trace_id, span_id, True, _FLAGS[flags], _NO_STATE, True))


_tuple_new = tuple.__new__
_HEX = frozenset("0123456789abcdef")
_FLAGS = tuple(trace.TraceFlags(flags) for flags in range(256))
_NO_STATE = trace.SpanContext(1, 1, False).trace_state  # the API's shared empty TraceState


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
    """Return ``ctx`` with the given ws ids set as baggage (``conversation_id=...``).

    An id longer than ``current.ID_LIMIT`` is set as its ``current.capped_id`` form.
    """
    ctx = ctx if ctx is not None else current.get()
    return _with_baggage(ctx, {f"ws.{name}": str(value) for name, value in ids.items() if value})


def _with_baggage(ctx: context.Context, entries: Mapping[str, str]) -> context.Context:
    if not entries:
        return ctx
    if any(len(value) > current.ID_LIMIT for value in entries.values()):
        entries = {key: current.capped_id(value) for key, value in entries.items()}
    if _BAGGAGE_KEY is None:  # an API without the private key: one copy per entry
        for key, value in entries.items():
            ctx = baggage.set_baggage(key, value, context=ctx)
        return ctx
    # What set_baggage does for one entry, for all of them in one context copy.
    present = context.get_value(_BAGGAGE_KEY, ctx)
    merged = {**present, **entries} if isinstance(present, dict) else dict(entries)
    return context.set_value(_BAGGAGE_KEY, merged, ctx)


# The SDK's own context keys, for building a context in one step; the public API
# (one copy per value) is the fallback should a future API rename them.
_BAGGAGE_KEY = current.BAGGAGE_KEY
_SPAN_KEY = current.SPAN_KEY


def take_from_message(message: Mapping[str, Any]) -> tuple[Mapping[str, Any], Any]:
    """Split a channel-layer message into (message without the reserved key, carrier)."""
    # type() first: channel-layer messages are dicts, and the ABC check costs ~1 µs.
    if (type(message) is not dict and not isinstance(message, Mapping)) or (
        c.CARRIER_KEY not in message
    ):
        return message, None
    clean = dict(message)
    return clean, clean.pop(c.CARRIER_KEY)


class ParkedCarriers:
    """Carriers taken off messages as the layer returns them, until the dispatcher claims them.

    Stripping at ``receive()`` means even code that reads the layer directly
    (not through a consumer) never sees the reserved key. Keyed by the message
    object's id; the message is held so the id cannot be reused; bounded so
    messages nobody dispatches cannot pile up. No lock: each step is one
    OrderedDict operation, atomic in CPython, and this runs once per chunk.
    """

    def __init__(self, limit: int = 2048) -> None:
        self._parked: OrderedDict[int, tuple[dict[str, Any], Any]] = OrderedDict()
        self._limit = limit

    def park(self, message: Mapping[str, Any]) -> Mapping[str, Any]:
        """Return ``message`` without the reserved key, remembering its carrier."""
        clean, carried = take_from_message(message)
        if carried is not None:
            parked = self._parked
            parked[id(clean)] = (clean, carried)  # type: ignore[assignment]
            if len(parked) > self._limit:
                with contextlib.suppress(KeyError):  # another thread trimmed it first
                    parked.popitem(last=False)
        return clean

    def claim(self, message: Any) -> Any:
        """The carrier parked for this exact message object, if any."""
        entry = self._parked.pop(id(message), None)
        return entry[1] if entry is not None and entry[0] is message else None


PARKED = ParkedCarriers()
