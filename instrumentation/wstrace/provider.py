"""Tracer provider set-up: reuse the app's provider or install ours, add exporters.

An app that already configured an SDK ``TracerProvider`` keeps it; wstrace
only adds its span processors to it. Otherwise wstrace installs one with
``service.name`` from the config. Exporters run behind ``BatchSpanProcessor``
(bounded queue, background thread, re-created after ``fork`` by the SDK), so a
slow or dead exporter never blocks a request. Export failures are logged once.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Sequence
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
from wstrace.store import FileSpanExporter

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
        for exporter in _exporters(config):
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
        _installed.update(provider=provider, owned=owned)
        return provider


def owned() -> TracerProvider | None:
    """The provider wstrace installed itself, if it did (None when the app brought one)."""
    return _installed.get("provider") if _installed.get("owned") else None


def flush(timeout_millis: int = 5000) -> None:
    """Push buffered spans out now (a prefork child about to exit, a test)."""
    provider = _installed.get("provider")
    if provider is not None:
        provider.force_flush(timeout_millis)


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
            otlp = _otlp_exporter()
            if otlp is not None:
                exporters.append(RedactingExporter(otlp))
    return exporters


def _otlp_exporter() -> SpanExporter | None:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        logger.error(
            "wstrace: EXPORTERS has 'otlp' but opentelemetry-exporter-otlp-proto-http is not "
            "installed (pip install 'wstrace[otlp]'); OTLP export is off"
        )
        return None
    return OTLPSpanExporter()
