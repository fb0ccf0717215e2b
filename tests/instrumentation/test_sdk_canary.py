"""Canary: every private OpenTelemetry name wstrace reads is still where wstrace reads it.

wstrace stays cheap per message by reading a few private names of
opentelemetry-api and opentelemetry-sdk (the context keys, the span
processors' list, the batch processor's queue, ``ReadableSpan``'s fields) and
two of the contrib instrumentations. Each is listed in ``PRIVATES`` with the
files that read it and a check of what those files rely on. When an upgrade
moves or changes one, its test fails naming the name, the package version and
the files to adapt; the bounds on opentelemetry-api/-sdk in ``pyproject.toml``
are the versions these tests pass on (widen them only after they do).
``test_every_private_name_read_is_listed`` keeps the list complete.
"""

from __future__ import annotations

import os
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module, metadata
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from wstrace import tracer as lean
from wstrace import tracer_fit as fit

SOURCES = Path(__file__).resolve().parents[2] / "instrumentation" / "wstrace"


@dataclass(frozen=True)
class Private:
    """One private name, the distribution that owns it, who reads it, and what they rely on."""

    name: str  # where it lives, dotted: "opentelemetry.sdk.trace.TracerProvider._disabled"
    package: str  # the distribution: its version goes into the failure message
    readers: tuple[str, ...]  # paths under instrumentation/wstrace (a prefix: "doctor")
    check: Callable[[], None]  # raises (or asserts) when the name moved or changed

    @property
    def attribute(self) -> str:
        """The private part itself (what the readers' source text holds)."""
        return self.name.rsplit(".", 1)[-1]


class _Discard(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


# --- opentelemetry-api -------------------------------------------------------------------
def _baggage_key() -> None:
    # current.ids reads the baggage as the plain dict stored under this key.
    ctx = baggage.set_baggage("ws.message_id", "m1")
    assert ctx.get(baggage._BAGGAGE_KEY) == {"ws.message_id": "m1"}
    assert type(ctx.get(baggage._BAGGAGE_KEY)) is dict


def _span_key() -> None:
    from opentelemetry.trace import propagation

    span = NonRecordingSpan(SpanContext(1, 2, False))
    assert trace.set_span_in_context(span).get(propagation._SPAN_KEY) is span


def _runtime_context() -> None:
    assert type(context._RUNTIME_CONTEXT) is ContextVarsRuntimeContext


def _current_context_var() -> None:
    var = context._RUNTIME_CONTEXT._current_context
    ctx = context.set_value("wstrace.canary", 1)
    token = context.attach(ctx)
    try:
        assert var.get() is ctx  # current.get() reads the variable instead of get_current()
    finally:
        context.detach(token)


def _tracer_provider_global() -> None:
    before = trace._TRACER_PROVIDER
    provider = TracerProvider(shutdown_on_exit=False)
    trace._TRACER_PROVIDER = provider
    try:
        assert trace.get_tracer_provider() is provider  # runtime.tracer() skips this call
    finally:
        trace._TRACER_PROVIDER = before


def _span_context_layout() -> None:
    # tracer.py and carrier.py build SpanContext with tuple.__new__, skipping its checks.
    state = TraceState()
    made = SpanContext(3, 4, True, TraceFlags(1), state)
    assert tuple(made) == (3, 4, True, TraceFlags(1), state, True)
    built = tuple.__new__(SpanContext, (3, 4, False, TraceFlags(1), state, True))
    assert (built.trace_id, built.span_id, built.is_remote) == (3, 4, False)
    assert built.trace_flags.sampled and built.trace_state is state and built.is_valid


def _bounded_attributes_dict() -> None:
    span = (
        TracerProvider(shutdown_on_exit=False)
        .get_tracer("canary")
        .start_span("x", attributes={"ws.hop": "send"})
    )
    span.end()
    assert span._attributes._dict == {"ws.hop": "send"}  # otlp_json reads it, not the view


# --- opentelemetry-sdk -------------------------------------------------------------------
def _active_span_processor() -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    processor = SimpleSpanProcessor(_Discard())
    provider.add_span_processor(processor)
    assert processor in provider._active_span_processor._span_processors


def _span_processors() -> None:
    # LeanTracer re-reads its processors only when this tuple is a new object.
    provider = TracerProvider(shutdown_on_exit=False)
    before = provider._active_span_processor._span_processors
    processor = SimpleSpanProcessor(_Discard())
    provider.add_span_processor(processor)
    after = provider._active_span_processor._span_processors
    assert type(after) is tuple and after is not before and after[-1] is processor


def _with_batch(check: Callable[[Any], None]) -> None:
    processor = BatchSpanProcessor(_Discard(), max_queue_size=7, max_export_batch_size=3)
    try:
        check(processor._batch_processor)
    finally:
        processor.shutdown()


def _batch_processor() -> None:
    _with_batch(lambda batch: None)


def _batch_module() -> None:
    # provider.py silences the repeated export failures this module logs, by its name.
    _with_batch(
        lambda batch: _assert_equal(type(batch).__module__, "opentelemetry.sdk._shared_internal")
    )


def _batch_queue() -> None:
    _with_batch(lambda batch: _assert(type(batch._queue) is deque and batch._queue.maxlen == 7))


def _batch_size() -> None:
    _with_batch(lambda batch: _assert_equal(batch._max_export_batch_size, 3))


def _batch_awaken() -> None:
    _with_batch(lambda batch: _assert(isinstance(batch._worker_awaken, threading.Event)))


def _batch_exporter() -> None:
    _with_batch(lambda batch: _assert(isinstance(batch._exporter, _Discard)))


def _readable_span_fields() -> None:
    # LeanSpan skips ReadableSpan.__init__ and provides these fields itself; otlp_json
    # reads them directly. A field added or renamed there is one a LeanSpan lacks.
    fields = {name for name in vars(ReadableSpan(name="x")) if name.startswith("_")}
    span = lean.LeanTracer(TracerProvider(shutdown_on_exit=False), "canary", "0").start_span("x")
    provided = set(vars(span)) | {name for name in dir(span) if name.startswith("_")}
    assert fields <= provided, f"LeanSpan lacks {sorted(fields - provided)}"
    assert set(LEAN_SPAN_FIELDS) <= fields, f"gone: {sorted(set(LEAN_SPAN_FIELDS) - fields)}"


def _span_limits() -> None:
    limits = SpanLimits(max_events=5)
    assert TracerProvider(span_limits=limits, shutdown_on_exit=False)._span_limits is limits


def _disabled() -> None:
    with mock.patch.dict(os.environ, {"OTEL_SDK_DISABLED": "true"}):
        disabled = TracerProvider(shutdown_on_exit=False)
    with mock.patch.dict(os.environ, {"OTEL_SDK_DISABLED": "false"}):
        enabled = TracerProvider(shutdown_on_exit=False)
    assert disabled._disabled is True and enabled._disabled is False


# --- contrib instrumentations ------------------------------------------------------------
def _instrumentor_instance() -> None:
    from opentelemetry.instrumentation import instrumentor

    class Probe(instrumentor.BaseInstrumentor):  # a singleton of its own: nothing patched
        def instrumentation_dependencies(self) -> list[str]:
            return []

        def _instrument(self, **kwargs: Any) -> None:
            return None

        def _uninstrument(self, **kwargs: Any) -> None:
            return None

    probe = Probe()
    assert Probe._instance is probe  # celery.contrib_active() reads it off the class


def _instrumented_flag() -> None:
    from opentelemetry.instrumentation import instrumentor

    class Probe(instrumentor.BaseInstrumentor):
        def instrumentation_dependencies(self) -> list[str]:
            return []

        def _instrument(self, **kwargs: Any) -> None:
            return None

        def _uninstrument(self, **kwargs: Any) -> None:
            return None

    probe = Probe()
    assert probe._is_instrumented_by_opentelemetry is False
    probe.instrument(skip_dep_check=True)
    try:
        assert probe._is_instrumented_by_opentelemetry is True
    finally:
        probe.uninstrument()


def _django_middleware() -> None:
    from wstrace import http

    module, _, name = http._MIDDLEWARE.rpartition(".")
    middleware = getattr(import_module(module), name)
    # What DjangoInstrumentor inserts into MIDDLEWARE, compared as text by http.py.
    assert f"{middleware.__module__}.{middleware.__qualname__}" == http._MIDDLEWARE


def _environ_activation_key() -> None:
    from opentelemetry.instrumentation.django.middleware.otel_middleware import (
        _DjangoMiddleware,
    )

    # http.py swaps the span activation the middleware keeps under this request.META key.
    assert isinstance(_DjangoMiddleware._environ_activation_key, str)


def _assert(condition: bool) -> None:
    assert condition


def _assert_equal(found: Any, expected: Any) -> None:
    assert found == expected, f"{found!r} != {expected!r}"


API, SDK = "opentelemetry-api", "opentelemetry-sdk"
INSTRUMENTATION = "opentelemetry-instrumentation"
# The fields ReadableSpan.__init__ sets, which LeanSpan sets itself and otlp_json reads.
LEAN_SPAN_FIELDS = (
    "_name",
    "_context",
    "_parent",
    "_kind",
    "_attributes",
    "_start_time",
    "_end_time",
    "_status",
    "_events",
    "_links",
    "_resource",
    "_instrumentation_scope",
    "_instrumentation_info",
)
_BATCH = "opentelemetry.sdk._shared_internal.BatchProcessor"
PRIVATES = (
    Private("opentelemetry.baggage._BAGGAGE_KEY", API, ("current.py",), _baggage_key),
    Private("opentelemetry.trace.propagation._SPAN_KEY", API, ("current.py",), _span_key),
    Private("opentelemetry.context._RUNTIME_CONTEXT", API, ("current.py",), _runtime_context),
    Private(
        "opentelemetry.context.contextvars_context.ContextVarsRuntimeContext._current_context",
        API,
        ("current.py",),
        _current_context_var,
    ),
    Private("opentelemetry.trace._TRACER_PROVIDER", API, ("runtime.py",), _tracer_provider_global),
    Private(
        "opentelemetry.trace.SpanContext.tuple_layout",
        API,
        ("tracer.py", "carrier.py"),
        _span_context_layout,
    ),
    Private(
        "opentelemetry.attributes.BoundedAttributes._dict",
        API,
        ("otlp_json.py",),
        _bounded_attributes_dict,
    ),
    Private(
        "opentelemetry.sdk.trace.TracerProvider._active_span_processor",
        SDK,
        ("tracer.py", "doctor"),
        _active_span_processor,
    ),
    Private(
        "opentelemetry.sdk.trace.SynchronousMultiSpanProcessor._span_processors",
        SDK,
        ("tracer.py", "doctor"),
        _span_processors,
    ),
    Private(
        "opentelemetry.sdk.trace.export.BatchSpanProcessor._batch_processor",
        SDK,
        ("tracer.py", "doctor"),
        _batch_processor,
    ),
    Private("opentelemetry.sdk._shared_internal", SDK, ("provider.py",), _batch_module),
    Private(f"{_BATCH}._queue", SDK, ("tracer.py",), _batch_queue),
    Private(f"{_BATCH}._max_export_batch_size", SDK, ("tracer.py",), _batch_size),
    Private(f"{_BATCH}._worker_awaken", SDK, ("tracer.py",), _batch_awaken),
    Private(f"{_BATCH}._exporter", SDK, ("doctor",), _batch_exporter),
    Private(
        "opentelemetry.sdk.trace.ReadableSpan._fields",
        SDK,
        ("tracer.py", "otlp_json.py"),
        _readable_span_fields,
    ),
    Private(
        "opentelemetry.sdk.trace.TracerProvider._span_limits", SDK, ("tracer_fit.py",), _span_limits
    ),
    Private("opentelemetry.sdk.trace.TracerProvider._disabled", SDK, ("tracer_fit.py",), _disabled),
    Private(
        "opentelemetry.instrumentation.instrumentor.BaseInstrumentor._instance",
        INSTRUMENTATION,
        ("celery.py",),
        _instrumentor_instance,
    ),
    Private(
        "opentelemetry.instrumentation.instrumentor.BaseInstrumentor._is_instrumented_by_opentelemetry",
        INSTRUMENTATION,
        ("celery.py",),
        _instrumented_flag,
    ),
    Private(
        "opentelemetry.instrumentation.django.middleware.otel_middleware._DjangoMiddleware",
        "opentelemetry-instrumentation-django",
        ("http.py",),
        _django_middleware,
    ),
    Private(
        "opentelemetry.instrumentation.django.middleware.otel_middleware._DjangoMiddleware"
        "._environ_activation_key",
        "opentelemetry-instrumentation-django",
        ("http.py",),
        _environ_activation_key,
    ),
)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "(not installed)"


@pytest.mark.parametrize("private", PRIVATES, ids=[p.name for p in PRIVATES])
def test_private_name_is_where_wstrace_reads_it(private: Private) -> None:
    """Each private name still exists and behaves as the files reading it assume."""
    try:
        private.check()
    except Exception as exc:  # an AttributeError, ImportError or failed assert alike
        found = f"{type(exc).__name__}: {exc}"
    else:
        return
    readers = ", ".join(f"instrumentation/wstrace/{path}" for path in private.readers)
    pytest.fail(  # outside the except: the message alone, no chained traceback
        f"{private.package} {_version(private.package)} moved or changed {private.name}, "
        f"read by {readers} ({found}). Adapt the reader(s), then set the opentelemetry "
        "bounds in pyproject.toml to the versions this passes on.",
        pytrace=False,
    )


def test_the_sdk_defaults_are_the_limits_can_replace_knows() -> None:
    """A clean environment gives the limits ``can_replace`` takes for defaults, so it allows."""
    clean = {name: value for name, value in os.environ.items() if name not in _LIMIT_VARIABLES}
    with mock.patch.dict(os.environ, clean, clear=True):
        limits = SpanLimits()
        provider = TracerProvider(shutdown_on_exit=False)
    found = {key: getattr(limits, key, None) for key in fit._DEFAULT_LIMITS}
    assert found == fit._DEFAULT_LIMITS, (
        f"opentelemetry-sdk {_version(SDK)} changed its default span limits: the lean "
        "tracer (instrumentation/wstrace/tracer.py) would never be used"
    )
    with mock.patch.dict(os.environ, clean, clear=True):
        assert fit.can_replace(provider)


_LIMIT_VARIABLES = frozenset(fit._LIMIT_VARIABLES) | {"OTEL_SDK_DISABLED"}


# Private names in instrumentation/wstrace that are not OpenTelemetry's: why each is fine.
NOT_OPENTELEMETRY = {
    "_asgi": "wstrace.doctor's own module",
    "_settings": "wstrace.doctor's own module",
    "_wstrace_identity": "wstrace's own attribute on a channel layer",
    "_queue": "also asyncio.Queue's deque (channels/layers.py)",
    "_value_": "the standard library's Enum",
    "_replace": "namedtuple's public method (urllib.parse.SplitResult)",
    "_get_current_object": "Celery's Proxy (the doctor)",
    "_parsers": "redis-py, in a docstring",
    "_regex": "Django's URL pattern (the doctor)",
    "_read_started": "Django's HttpRequest",
    "_path_routing": "channels' URLRouter",
    "_shards": "channels_redis' RedisChannelLayer",
    "_do_receiving": "channels_redis' RedisSingleShardConnection",
    "_map_channel_keys_to_connection": "channels_redis' RedisChannelLayer",
}
# ``x._name``, ``getattr(x, "_name"`` (that string may be on the next line), ``import _name``.
_READ = re.compile(
    r"(?<![\w.])(?!self\.|cls\.)\w+(?:\.\w+)*\.(_[A-Za-z]\w*)\b"
    r'|getattr\(\s*[^,]+,\s*"(_[A-Za-z]\w*)"'
    r"|\bimport\s+[^\n]*?\b(_[A-Za-z]\w*)"
)
# What wstrace defines itself: ``def _x``, ``class _X``, ``_x = ``, ``self._x = ``, ``"_x":``.
_DEFINED = re.compile(
    r"(?:def|class)\s+(_\w+)|^\s*(_\w+)\s*[:=]|(?:self|cls)\.(_\w+)\s*(?::[^=\n]*)?=(?!=)"
    r'|"(_\w+)":',
    re.MULTILINE,
)


def _sources() -> dict[str, str]:
    return {
        path.relative_to(SOURCES).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(SOURCES.rglob("*.py"))
    }


def test_every_private_name_read_is_listed() -> None:
    """A private name read in instrumentation/wstrace is in ``PRIVATES``, or is not OpenTelemetry's."""
    sources = _sources()
    defined = {
        name
        for text in sources.values()
        for match in _DEFINED.finditer(text)
        for name in match.groups()
        if name
    }
    listed = {private.attribute for private in PRIVATES} | set(LEAN_SPAN_FIELDS)
    unlisted: dict[str, set[str]] = {}
    for path, text in sources.items():
        for match in _READ.finditer(text):
            name = next(group for group in match.groups() if group)
            if name.startswith("__") or name in defined or name in listed:
                continue
            if name in NOT_OPENTELEMETRY:
                continue
            unlisted.setdefault(name, set()).add(path)
    assert not unlisted, (
        "private names read in instrumentation/wstrace and not checked by this canary: "
        + "; ".join(
            f"{name} ({', '.join(sorted(paths))})" for name, paths in sorted(unlisted.items())
        )
        + ". If OpenTelemetry's, add them to PRIVATES; else to NOT_OPENTELEMETRY, saying whose."
    )


@pytest.mark.parametrize("private", PRIVATES, ids=[p.name for p in PRIVATES])
def test_the_listed_readers_still_read_the_name(private: Private) -> None:
    """The readers named in a failure message are the files that hold the name."""
    sources = _sources()
    if private.attribute == "tuple_layout":
        needle = "tuple.__new__"
    elif private.attribute == "_fields":
        needle = "_attributes"
    else:
        needle = private.attribute
    for reader in private.readers:
        holding = [
            path for path, text in sources.items() if path.startswith(reader) and needle in text
        ]
        assert holding, f"{private.name}: instrumentation/wstrace/{reader} no longer reads {needle}"
