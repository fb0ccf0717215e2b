"""Tracer provider set-up: reuse the app's provider or install ours, add exporters.

An app that already configured an SDK ``TracerProvider`` keeps it; wstrace
only adds its span processors to it. Otherwise wstrace installs one with
``service.name`` from the config. Exporters run behind ``BatchSpanProcessor``
(bounded queue, background thread, re-created after ``fork`` by the SDK), so a
slow or dead exporter never blocks a request. Export failures are logged once.

The OTLP exporter is also wrapped in ``GuardedExporter`` (``wstrace.export_guard``),
so an endpoint that is down or never answers costs no time when a process starts
or stops either: ``flush`` runs the export on a background thread and waits at
most its timeout (0: not at all); at exit (``atexit``, before the SDK's own
shutdown of the provider, and ``flush_before_exit`` for a prefork child) exports
give up after ``SHUTDOWN_TIMEOUT_MS`` in all, at once when the endpoint is known
to be down or has not answered. File and console exporters come first, so their
spans are written before a network exporter is waited for.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import baggage, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Status

import wstrace
from wstrace import conventions as c
from wstrace import redact
from wstrace.config import Config
from wstrace.export_guard import GuardedExporter
from wstrace.file_exporter import FileSpanExporter

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_installed: dict[str, Any] = {}

# Loggers that would otherwise repeat the same failure for every batch.
_NOISY_LOGGERS = (
    "opentelemetry.sdk.trace.export",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http",
)


class IdsFromBaggage(SpanProcessor):
    """Copy the conversation/connection/message ids from baggage onto every span.

    This is how spans of other instrumentations (Django, Celery, redis contrib)
    running inside a wstrace context become part of the conversation, and how
    the Celery contrib spans get a ``ws.hop`` when they replace ours.
    """

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        entries = baggage.get_all(parent_context)
        attributes = span.attributes or {}
        for key in c.BAGGAGE_KEYS:
            value = entries.get(key)
            if value and key not in attributes:
                span.set_attribute(key, str(value))
        if c.HOP not in attributes:
            name = span.name
            if name.startswith("apply_async/"):
                span.set_attribute(c.HOP, c.HOP_ENQUEUE)
                span.set_attribute(c.EVENT, c.EV_ENQUEUE)
            elif name.startswith("run/"):
                span.set_attribute(c.HOP, c.HOP_TASK)
                span.set_attribute(c.EVENT, c.EV_TASK)

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class RedactingExporter(SpanExporter):
    """Hand an exporter copies of spans with secrets removed (for exporters we do not encode)."""

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._inner.export([_redacted(span) for span in spans])

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


def _redacted(span: ReadableSpan) -> ReadableSpan:
    original = span.attributes  # a new read-only view on each access: read it once
    attributes = _clean(original)
    description = span.status.description
    clean_description = redact.redact_text(description) if description else description
    events = [
        type(event)(event.name, _clean(event.attributes), event.timestamp)
        if _dirty(event.attributes)
        else event
        for event in span.events
    ]
    if (
        attributes is original
        and clean_description == description
        and all(a is b for a, b in zip(events, span.events, strict=True))
    ):
        return span
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=events,
        links=span.links,
        kind=span.kind,
        status=Status(span.status.status_code, clean_description),
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _dirty(attributes: Any) -> bool:
    if not attributes:
        return False
    return any(
        redact.is_secret_key(k) or (isinstance(v, str) and redact.redact_text(v) != v)
        for k, v in attributes.items()
    )


def _clean(attributes: Any) -> Any:
    if not _dirty(attributes):
        return attributes
    return {
        k: redact.REDACTED
        if redact.is_secret_key(k)
        else (redact.redact_text(v) if isinstance(v, str) else v)
        for k, v in attributes.items()
    }


class _OnceFilter(logging.Filter):
    """Let each distinct failure message through once per process."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, str(record.msg)[:80])
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


def install(config: Config) -> TracerProvider | None:
    """Make sure spans are recorded and exported as configured; idempotent."""
    with _lock:
        if "provider" in _installed:
            return _installed["provider"]
        current = trace.get_tracer_provider()
        if isinstance(current, TracerProvider):
            provider, owned = current, False
        else:
            provider, owned = TracerProvider(resource=_resource(config)), True
        provider.add_span_processor(IdsFromBaggage())
        exporters = _exporters(config)
        # Local exporters first: a flush or a shutdown writes their spans before it waits
        # for a network exporter (the SDK goes through the processors one after another).
        exporters.sort(key=lambda exporter: isinstance(exporter, GuardedExporter))
        for exporter in exporters:
            provider.add_span_processor(
                BatchSpanProcessor(
                    exporter,
                    max_queue_size=config.queue_size,
                    schedule_delay_millis=config.flush_interval_ms,
                    max_export_batch_size=min(512, config.queue_size),
                )
            )
        if owned:
            trace.set_tracer_provider(provider)
        once = _OnceFilter()
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).addFilter(once)
        _installed.update(
            provider=provider,
            owned=owned,
            guards=tuple(e for e in exporters if isinstance(e, GuardedExporter)),
            exit_limit_s=config.shutdown_timeout_ms / 1000,
        )
        # Registered after the provider's own atexit shutdown, so it runs before it.
        atexit.register(_bound_exit)
        return provider


def owned() -> TracerProvider | None:
    """The provider wstrace installed itself, if it did (None when the app brought one)."""
    return _installed.get("provider") if _installed.get("owned") else None


def flush(timeout_millis: int = 5000) -> bool:
    """Push buffered spans out now, waiting at most ``timeout_millis`` (0: not at all).

    The export runs on a background thread (``_Flusher``), so the caller waits no
    longer than asked even when the endpoint is slow or down (the SDK's
    ``force_flush`` ignores its timeout); spans go out when it answers. True when
    the flush finished in time.
    """
    provider = _installed.get("provider")
    if provider is None:
        return True
    return _FLUSHER.wait(_FLUSHER.request(provider), max(0, timeout_millis) / 1000)


def flush_before_exit(timeout_millis: int | None = None) -> bool:
    """Flush a process about to exit, in ``SHUTDOWN_TIMEOUT_MS`` at most (a prefork child).

    Exports give up at that deadline, and at once when their endpoint is down or
    silent (``GuardedExporter.expire_in``), so the batch processors' own shutdown
    does not wait for them either.
    """
    provider = _installed.get("provider")
    if provider is None:
        return True
    seconds = _exit_limit_s(timeout_millis)
    for guard in _installed.get("guards", ()):
        guard.expire_in(seconds)
    return _FLUSHER.wait(_FLUSHER.request(provider), seconds)


def _bound_exit() -> None:
    """At exit, before the SDK shuts the provider down: bound what its exports may take."""
    seconds = _exit_limit_s(None)
    for guard in _installed.get("guards", ()):
        guard.expire_in(seconds)


def _exit_limit_s(timeout_millis: int | None) -> float:
    if timeout_millis is not None:
        return max(0, timeout_millis) / 1000
    return float(_installed.get("exit_limit_s", 2.0))


class _Flusher:
    """``force_flush`` of the provider on a daemon thread of this process, on request.

    Requests made while a flush runs are served by the next one (it covers every
    span ended before it started); ``wait`` gives up at its timeout and the flush
    goes on in the background. A forked child starts its own thread on first use.
    """

    def __init__(self) -> None:
        self._reset()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        """No flush asked, no thread yet (a forked child: the parent's thread is not here)."""
        self._cond = threading.Condition()
        self._asked = self._done = 0
        self._provider: TracerProvider | None = None
        self._thread: threading.Thread | None = None

    def request(self, provider: TracerProvider) -> int:
        """Ask for a flush of ``provider``; return the ticket ``wait`` takes."""
        with self._cond:
            self._asked += 1
            self._provider = provider
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="wstrace-flush", daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return self._asked

    def wait(self, ticket: int, seconds: float) -> bool:
        """Wait until the flush of ``ticket`` is done, ``seconds`` at most; True when it is."""
        with self._cond:
            return self._cond.wait_for(lambda: self._done >= ticket, seconds)

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                cond.wait_for(lambda: self._asked > self._done)
                ticket, provider = self._asked, self._provider
            try:
                if provider is not None:
                    provider.force_flush()
            except Exception as exc:  # a background thread: nobody else would see it
                logger.warning("wstrace: flushing spans failed (%s: %s)", type(exc).__name__, exc)
            with cond:
                self._done = ticket
                cond.notify_all()


_FLUSHER = _Flusher()


def _resource(config: Config) -> Resource:
    return Resource.create(
        {
            "service.name": config.service_name,
            "host.name": socket.gethostname(),
            "wstrace.version": wstrace.__version__,
        }
    )


def _exporters(config: Config) -> list[SpanExporter]:
    exporters: list[SpanExporter] = []
    for name in config.exporters:
        if name == "file":
            exporters.append(
                FileSpanExporter(config.file_dir, config.service_name, config.file_max_bytes)
            )
        elif name == "console":
            exporters.append(RedactingExporter(ConsoleSpanExporter()))
        elif name == "otlp":
            endpoint = otlp_endpoint(os.environ)
            otlp = _otlp_exporter(endpoint)
            if otlp is not None:
                exporters.append(GuardedExporter(RedactingExporter(otlp), endpoint))
    return exporters


def otlp_endpoint(environ: Mapping[str, str]) -> str:
    """The traces URL the OTLP/HTTP exporter posts to, resolved as it does from the environment."""
    traces = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if traces:
        return traces
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318/"
    return f"{base.removesuffix('/')}/v1/traces"


def _otlp_exporter(endpoint: str) -> SpanExporter | None:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        logger.error(
            "wstrace: EXPORTERS has 'otlp' but opentelemetry-exporter-otlp-proto-http is not "
            "installed (pip install 'wstrace[otlp]'); OTLP export is off"
        )
        return None
    return OTLPSpanExporter(endpoint=endpoint)
