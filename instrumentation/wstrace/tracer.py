"""wstrace's own span factory, used when wstrace owns the tracing pipeline.

The SDK's ``Tracer.start_span`` costs 25-40 µs per span (sampler call, span
limits, attribute cleaning under a lock, tracer metrics, every processor's
``on_start``). A streamed answer makes about fifteen spans in the web process
alone, so that cost is most of what the instrumentation adds to a message.

When the provider is the one wstrace installed (no app provider, default
parent-based always-on sampler), nothing else needs those steps: the spans
made here are plain ``ReadableSpan`` objects (so every exporter, processor and
encoder takes them as SDK spans) that copy the conversation ids from baggage
themselves, as ``IdsFromBaggage`` does for SDK spans, and go to the provider's
processors when they end. Anywhere else wstrace uses the SDK tracer unchanged.

``tracer_fit.can_replace`` decides which: the lean tracer only stands in for a
provider whose SDK tracer would record the same spans (the default sampler, the
SDK's default span limits, the SDK not disabled by ``OTEL_SDK_DISABLED``).

The per-message wrappers (deliver, send) start their spans through one seam,
``tracer_fit.ChildSpans(tracer).start_child(name, parent, kind, attributes)``: the SDK's
way is ``start_span`` with that parent context; the lean way skips the
look-ups the wrappers have done already. The wrappers never ask which tracer
they have.
"""

from __future__ import annotations

import random
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from time import time_ns
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import (
    Event,
    ReadableSpan,
    SpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from wstrace import conventions as c
from wstrace.current import SPAN_KEY
from wstrace.otlp_json import _UNSET
from wstrace.provider import IdsFromBaggage

_RANDOM = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)
_SAMPLED = TraceFlags.SAMPLED
_ROOT_FLAGS = TraceFlags(TraceFlags.SAMPLED | _RANDOM)
_CHILD_FLAGS = {  # by the parent's flags: keep the random-trace-id bit, always sampled
    flags: TraceFlags(TraceFlags.SAMPLED | (flags & _RANDOM)) for flags in range(256)
}
_getrandbits = random.getrandbits
_tuple_new = tuple.__new__
_NO_STATE = SpanContext(1, 1, False).trace_state  # the API's shared empty TraceState


class LeanSpan(trace.Span, ReadableSpan):
    """A recording span that is also the ``ReadableSpan`` its processors receive.

    Each ``LeanTracer`` makes a subclass that holds its resource, scope and
    tracer as class attributes; what nearly every span leaves at its default
    (no events, no links, unset status) is a class attribute too, until a span
    sets its own. ``ReadableSpan.__init__`` is skipped on purpose: it would
    build a ``Resource`` per span.
    """

    _resource: Resource
    _instrumentation_scope: InstrumentationScope
    _tracer: LeanTracer
    _events: list[Event] | tuple[()] = ()
    _links: list[Link] | tuple[()] = ()
    _status = _UNSET  # shared: the encoder knows this one without reading it
    _end_time: int | None = None
    _instrumentation_info = None

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        start_time: int,
    ) -> None:
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes = attributes
        self._start_time = start_time

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self._end_time is None:
            for key, value in attributes.items():
                _put(self._attributes, key, value)

    def set_attribute(self, key: str, value: Any) -> None:
        if self._end_time is None:
            if type(value) is int or type(value) is str:  # what the wrappers set: stored as is
                if key:
                    self._attributes[key] = value
            else:
                _put(self._attributes, key, value)

    def add_event(
        self, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None
    ) -> None:
        if self._end_time is None:
            self._events = [*self._events, Event(name, attributes, timestamp or time_ns())]

    def add_link(self, context: SpanContext, attributes: Mapping[str, Any] | None = None) -> None:
        if self._end_time is None and context.is_valid:
            self._links = [*self._links, Link(context, attributes)]

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # The SDK's rules: OK is final, UNSET is ignored.
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, Any] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        kind = type(exception)
        module = kind.__module__
        event: dict[str, Any] = {
            "exception.type": f"{module}.{kind.__qualname__}"
            if module and module != "builtins"
            else kind.__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            event.update(attributes)
        self.add_event("exception", event, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return
        self._end_time = end_time or time_ns()
        tracer = self._tracer
        if tracer._processors._span_processors is not tracer._seen:
            tracer._refresh()
        for on_end in tracer._targets:
            on_end(self)

    def __repr__(self) -> str:
        return f'LeanSpan(name="{self._name}", context={self._context})'


def _put(attributes: dict[str, Any], key: str, value: Any) -> None:
    # As the SDK's set_attribute: None is dropped, sequences are stored as tuples.
    if value is None or not key:
        return
    if isinstance(value, list):
        value = tuple(value)
    attributes[key] = value


def _on_end_of(processor: SpanProcessor) -> Callable[[ReadableSpan], None]:
    # BatchSpanProcessor.on_end is a sampled check (a lean span is always sampled), then
    # its queue's emit(): a shutdown check, os.getpid() (a system call) for fork safety,
    # the queue-full warning. Where the SDK's queue looks as expected, a span goes
    # straight onto it instead (see _enqueue); else to emit(), else to on_end().
    if type(processor) is BatchSpanProcessor:
        batch = getattr(processor, "_batch_processor", None)
        enqueue = _enqueue(batch)
        if enqueue is not None:
            return enqueue
        emit = getattr(batch, "emit", None)
        if callable(emit):
            return emit
    return processor.on_end


def _enqueue(batch: Any) -> Callable[[ReadableSpan], None] | None:
    """``batch.emit`` without its per-span checks, for the SDK's ``BatchProcessor``.

    What emit() checks per span is handled otherwise: at fork the SDK's own
    at-fork hook resets the processor (the same deque, cleared, and a new wake-up
    event, read here at each use); after shutdown nothing drains the queue, which
    stays bounded; a full queue goes to emit() itself, which drops the oldest and
    counts it as the SDK does.
    """
    queue = getattr(batch, "_queue", None)
    threshold = getattr(batch, "_max_export_batch_size", None)
    emit = getattr(batch, "emit", None)
    if (
        type(queue) is not deque
        or not queue.maxlen
        or type(threshold) is not int
        or not callable(emit)
        or not isinstance(getattr(batch, "_worker_awaken", None), threading.Event)
    ):
        return None
    full = queue.maxlen
    appendleft = queue.appendleft

    def enqueue(span: ReadableSpan) -> None:
        size = len(queue)
        if size >= full:
            emit(span)
            return
        appendleft(span)
        if size + 1 >= threshold:  # wake the exporter as emit() does: a batch is ready
            awaken = batch._worker_awaken
            if not awaken.is_set():
                awaken.set()

    return enqueue


class LeanTracer(trace.Tracer):
    """Makes ``LeanSpan`` objects for one provider (see the module docstring)."""

    def __init__(self, provider: TracerProvider, scope_name: str, version: str) -> None:
        self._processors = provider._active_span_processor
        self._seen: tuple[Any, ...] = ()
        self._targets: tuple[Callable[[ReadableSpan], None], ...] = ()
        self._span = type(
            "LeanSpan",
            (LeanSpan,),
            {
                "_resource": provider.resource,
                "_instrumentation_scope": InstrumentationScope(scope_name, version),
                "_tracer": self,
            },
        )

    def _refresh(self) -> None:
        # What a span's end() calls: the provider's processors minus IdsFromBaggage
        # (whose work start_span did), re-read only when the provider's list changes.
        processors = self._processors._span_processors
        self._targets = tuple(
            _on_end_of(p) for p in processors if not isinstance(p, IdsFromBaggage)
        )
        self._seen = processors

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        parent = trace.get_current_span(context).get_span_context()
        values = dict(attributes) if attributes else {}
        if None in values.values():  # not a valid attribute value (SDK set_attribute drops it)
            values = {k: v for k, v in values.items() if v is not None}
        entries = baggage.get_all(context)
        if entries:
            for key in c.BAGGAGE_KEYS:
                if key not in values:
                    value = entries.get(key)
                    if value:
                        values[key] = str(value)
        span = self.start_child(name, parent, kind, values, start_time)
        for link in links or ():
            span.add_link(link.context, link.attributes)
        return span

    def start_child(
        self,
        name: str,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        start_time: int | None = None,
    ) -> trace.Span:
        """``start_span`` for wrappers that already hold the parent and every attribute.

        ``attributes`` is taken over, not copied, and must be clean (no None, ids
        included): the hot paths (deliver, send, publish) skip the context and
        baggage look-ups that way.
        """
        span_id = _getrandbits(64) or 1
        if parent is not None and parent.is_valid:
            # SpanContext is a tuple: (trace_id, span_id, is_remote, flags, state, is_valid).
            # Built directly: the ids here are valid by construction, so its checks can go.
            trace_id, _, _, flags, state, _ = parent
            if not flags & _SAMPLED:  # ParentBased: an unsampled parent stays so
                return trace.NonRecordingSpan(
                    SpanContext(trace_id, span_id, False, TraceFlags(TraceFlags.DEFAULT))
                )
            span_context = _tuple_new(
                SpanContext, (trace_id, span_id, False, _CHILD_FLAGS[flags], state, True)
            )
        else:
            parent = None
            span_context = _tuple_new(
                SpanContext,
                (_getrandbits(128) or 1, span_id, False, _ROOT_FLAGS, _NO_STATE, True),
            )
        return self._span(name, span_context, parent, kind, attributes, start_time or time_ns())

    def start_child_of_own(
        self, name: str, parent: trace.Span, kind: SpanKind, attributes: dict[str, Any]
    ) -> trace.Span:
        """``start_child`` under ``parent``; when it is a span of this tracer, without checks.

        Such a parent's context is valid and sampled by construction, and its flags
        are already a child's: each frame a ``ws.deliver`` handler writes starts here.
        """
        if type(parent) is not self._span:
            return self.start_child(name, parent.get_span_context(), kind, attributes)
        context = parent._context
        trace_id, _, _, flags, state, _ = context
        span_context = _tuple_new(
            SpanContext, (trace_id, _getrandbits(64) or 1, False, flags, state, True)
        )
        return self._span(name, span_context, context, kind, attributes, time_ns())

    def start_child_in(
        self, name: str, parent: Context, kind: SpanKind, attributes: dict[str, Any]
    ) -> trace.Span:
        """``ChildSpans.start_child`` for this tracer: the parent span read once, no baggage merge.

        A parent made by this tracer is taken as ``start_child_of_own`` takes it,
        inlined: each frame a ``ws.deliver`` handler writes starts here.
        """
        span = parent.get(SPAN_KEY) if SPAN_KEY is not None else trace.get_current_span(parent)
        if type(span) is not self._span:
            context = span.get_span_context() if span is not None else None
            return self.start_child(name, context, kind, attributes)
        context = span._context
        trace_id, _, _, flags, state, _ = context
        span_context = _tuple_new(
            SpanContext, (trace_id, _getrandbits(64) or 1, False, flags, state, True)
        )
        return self._span(name, span_context, context, kind, attributes, time_ns())

    @contextmanager
    def start_as_current_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span = self.start_span(name, context, kind, attributes, links, start_time)
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current
