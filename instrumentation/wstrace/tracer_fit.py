"""Which tracer wstrace's spans go through, and the one seam the wrappers use.

The lean tracer stands in for the SDK's only where the SDK's tracer would record
exactly the same spans (the default sampler, the default span limits, the SDK
enabled); anything else keeps the SDK's tracer, which applies them. Whichever it is,
the per-message wrappers start their spans through ``ChildSpans``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.environment_variables import (
    OTEL_ATTRIBUTE_COUNT_LIMIT,
    OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT,
    OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT,
    OTEL_LINK_ATTRIBUTE_COUNT_LIMIT,
    OTEL_SDK_DISABLED,
    OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT,
    OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT,
    OTEL_SPAN_EVENT_COUNT_LIMIT,
    OTEL_SPAN_LINK_COUNT_LIMIT,
)
from opentelemetry.sdk.trace import SpanLimits, TracerProvider, sampling
from opentelemetry.trace import SpanKind

from wstrace.tracer import LeanTracer

# Every variable the SDK's SpanLimits reads. Set at all (even empty, which the SDK takes
# as "no limit"), the SDK's spans are cut differently from lean ones, which enforce none.
_LIMIT_VARIABLES = (
    OTEL_ATTRIBUTE_COUNT_LIMIT,
    OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT,
    OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT,
    OTEL_LINK_ATTRIBUTE_COUNT_LIMIT,
    OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT,
    OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT,
    OTEL_SPAN_EVENT_COUNT_LIMIT,
    OTEL_SPAN_LINK_COUNT_LIMIT,
)
# The spec's defaults, written out rather than read from the SDK's private constants:
# should the SDK change them, lean spans are no longer known to match and are refused.
# At these, a wstrace span (a dozen attributes, rarely an event) is never cut.
_DEFAULT_LIMITS: dict[str, int | None] = {
    "max_attributes": 128,
    "max_events": 128,
    "max_links": 128,
    "max_span_attributes": 128,
    "max_event_attributes": 128,
    "max_link_attributes": 128,
    "max_attribute_length": None,
    "max_span_attribute_length": None,
}
_MISSING = object()


def can_replace(provider: Any) -> bool:
    """Whether spans can skip the SDK tracer of ``provider`` without changing what is recorded.

    Only for an SDK provider with the default sampler, the default span limits and
    the SDK enabled; anything else keeps the SDK's tracer, which applies them.
    """
    return (
        isinstance(provider, TracerProvider)
        and provider.sampler is sampling.DEFAULT_ON
        and not _sdk_disabled(provider)
        and _default_limits(provider)
    )


def _sdk_disabled(provider: TracerProvider) -> bool:
    """``OTEL_SDK_DISABLED`` as the SDK reads it, or the provider's own verdict.

    The SDK reads the variable once, in ``TracerProvider.__init__``, and then hands
    out no-op tracers: refusing here sends ``runtime.tracer()`` to ``get_tracer``,
    which does exactly that. Set after the provider was made, the SDK still records,
    and so does its tracer. A provider without the attribute counts as disabled: the
    SDK's tracer is right either way.
    """
    if os.environ.get(OTEL_SDK_DISABLED, "").lower().strip() == "true":
        return True
    return getattr(provider, "_disabled", True) is not False


def _default_limits(provider: TracerProvider) -> bool:
    """Whether the provider's span limits are the SDK's defaults, untouched by env or code."""
    if any(name in os.environ for name in _LIMIT_VARIABLES):
        return False
    limits = getattr(provider, "_span_limits", None)
    if type(limits) is not SpanLimits:  # unknown (a subclass, or the SDK moved it)
        return False
    return all(getattr(limits, key, _MISSING) == value for key, value in _DEFAULT_LIMITS.items())


class ChildSpans:
    """The seam the per-message wrappers start spans through, whichever tracer is in use.

    ``start_child(name, parent, kind, attributes)`` starts a span under the current
    span of the context ``parent``. ``attributes`` must be complete (the ws ids of
    ``parent``'s baggage included) and clean (no None); it is taken over, not copied.

    For the SDK's tracer (or any other) it is that tracer's ``start_span`` with
    ``parent`` as the context: the sampler and every processor see that context,
    baggage included, as for any span, and ``IdsFromBaggage`` finds the ids set
    already. For a ``LeanTracer`` it is ``LeanTracer.start_child_in``, which skips
    the baggage merge. Either is stored as is, not wrapped: this runs per frame.
    """

    __slots__ = ("start_child",)
    start_child: Callable[[str, Context, SpanKind, dict[str, Any]], trace.Span]

    def __init__(self, tracer: trace.Tracer) -> None:
        # The one place that tells a lean tracer from any other.
        self.start_child = (
            tracer.start_child_in if type(tracer) is LeanTracer else tracer.start_span
        )
