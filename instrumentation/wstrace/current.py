"""The current OpenTelemetry context, its span and its ws ids, read at the cost of one lookup.

Every wrapper asks "what is current?" at least once per message and chunk. The
API answers through three Python calls (``get_current`` → runtime context →
ContextVar) and ``baggage.get_all`` copies the baggage each time; here the
ContextVar is read directly when the runtime context is the SDK's default
(``contextvars``), and the ws ids derived from a baggage dict are remembered
for as long as that same dict is current (contexts are immutable, so a task's
six publishes read its ids once). Any other runtime context goes through the API.

An id longer than ``ID_LIMIT`` (a 9,000-character client message id) is carried
and recorded as ``capped_id(id)``, its first 48 characters, ``~`` and 16 hex
digits of its SHA-256, so it fits the baggage and Celery header limits and every
process writes the same id for the same message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import Any

from opentelemetry import baggage, context, trace
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace import propagation as trace_propagation

from wstrace import conventions as c

# The SDK's own context keys and variable; the public API is the fallback should a
# future API rename them or the app select another runtime context.
BAGGAGE_KEY: str | None = getattr(baggage, "_BAGGAGE_KEY", None)
SPAN_KEY: str | None = getattr(trace_propagation, "_SPAN_KEY", None)


def _runtime_var() -> ContextVar[context.Context] | None:
    runtime = getattr(context, "_RUNTIME_CONTEXT", None)
    if type(runtime) is not ContextVarsRuntimeContext:
        return None
    var = getattr(runtime, "_current_context", None)
    return var if isinstance(var, ContextVar) else None


ID_LIMIT = 128
"""Longest ws id carried as it is; a longer one is carried as ``capped_id`` of it."""
_ID_HEAD = 48  # characters of a long id kept before its hash


def capped_id(value: str) -> str:
    """``value`` when at most ``ID_LIMIT`` characters, else a stable short form of it.

    The short form is the first 48 characters, ``~`` and 16 hex digits of the
    SHA-256 of the whole id: the same id always gives the same form (in every
    process), distinct ids distinct forms, and it is itself left as it is. A
    9,000-character client message id would otherwise be dropped by the W3C
    baggage and Celery header limits on its way to the worker.
    """
    if len(value) <= ID_LIMIT:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{value[:_ID_HEAD]}~{digest[:16]}"


_VAR = _runtime_var()
_NO_IDS: dict[str, str] = {}
_last: tuple[Any, dict[str, str]] = (None, _NO_IDS)  # (baggage dict, its ids)


def get() -> context.Context:
    """The current context (``opentelemetry.context.get_current()``)."""
    return _VAR.get() if _VAR is not None else context.get_current()


def attach(ctx: context.Context) -> Token[context.Context]:
    """Make ``ctx`` current; pass the token to ``detach``."""
    return _VAR.set(ctx) if _VAR is not None else context.attach(ctx)


def detach(token: Token[context.Context]) -> None:
    """Restore the context before ``attach``; never raises (as the API's ``detach``)."""
    if _VAR is None:
        context.detach(token)
        return
    try:
        _VAR.reset(token)
    except Exception:  # a token of another context: the API logs and carries on too
        context.detach(token)


def span_context(ctx: context.Context | None = None) -> trace.SpanContext:
    """The SpanContext of the current span of ``ctx`` (default: the current context)."""
    if SPAN_KEY is None:
        return trace.get_current_span(ctx).get_span_context()
    span = (get() if ctx is None else ctx).get(SPAN_KEY)
    if span is None:
        return trace.INVALID_SPAN_CONTEXT
    return span.get_span_context()


def with_span(
    span: trace.Span, ctx: context.Context | None = None, values: Mapping[str, Any] | None = None
) -> context.Context:
    """``trace.set_span_in_context(span, ctx)`` in one copy, with ``values`` set too."""
    base = get() if ctx is None else ctx
    if SPAN_KEY is None:
        made = trace.set_span_in_context(span, base)
        for key, value in (values or {}).items():
            made = context.set_value(key, value, made)
        return made
    if values:
        return context.Context({**base, SPAN_KEY: span, **values})
    return context.Context({**base, SPAN_KEY: span})


def ids(ctx: context.Context | None = None) -> dict[str, str]:
    """The ws ids in the baggage of ``ctx`` (default: the current context); a fresh dict."""
    global _last
    if BAGGAGE_KEY is None:
        entries: Any = baggage.get_all(ctx)
        return {key: capped_id(str(entries[key])) for key in c.BAGGAGE_KEYS if key in entries}
    entries = (get() if ctx is None else ctx).get(BAGGAGE_KEY)
    if not entries or not isinstance(entries, dict):
        return {}
    last = _last  # one read: another thread may replace it meanwhile
    if last[0] is entries:
        return last[1].copy()
    # Baggage wstrace wrote holds capped ids already; another writer's may not.
    found = {key: capped_id(str(entries[key])) for key in c.BAGGAGE_KEYS if key in entries}
    _last = (entries, found)  # holds the dict, so its id cannot be reused while cached
    return found.copy()
