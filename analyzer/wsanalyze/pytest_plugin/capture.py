"""The in-process half of the ``wstrace`` fixture: wstrace switched on, its spans kept in memory.

``instrumented()`` makes sure wstrace records in this process for the duration of
a test: when the app already set it up (Django's ``ready()`` with ``"wstrace"`` in
``INSTALLED_APPS``) it is left exactly as configured; otherwise it is set up here
from ``settings.WSTRACE`` (when Django is configured) with no exporters, and
turned off again afterwards (wrappers pass-through, instrumentors removed; the
tracer provider stays, OpenTelemetry allows one per process).

``SpanCapture`` is a span processor that keeps every span ending while it is
attached to the provider wstrace records with; ``detach()`` takes it off again.
Nothing is written anywhere.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

__all__ = ["SpanCapture", "instrumented"]


class SpanCapture(SpanProcessor):
    """Keeps the spans that end while attached, in the order they ended (thread-safe)."""

    def __init__(self) -> None:
        self._spans: list[ReadableSpan] = []
        self._lock = threading.Lock()
        self._open = True
        self._provider: TracerProvider | None = None

    # --- SpanProcessor ----------------------------------------------------------------
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if self._open:
            with self._lock:
                self._spans.append(span)

    def shutdown(self) -> None:
        self._open = False

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # --- what the fixture uses -----------------------------------------------------------
    def spans(self, start: int = 0) -> list[ReadableSpan]:
        """The spans kept so far (from index ``start``), a copy."""
        with self._lock:
            return self._spans[start:]

    def __len__(self) -> int:
        return len(self._spans)

    def attach(self) -> None:
        """Start receiving the spans of the provider wstrace records with."""
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            raise RuntimeError(
                "wstrace fixture: no OpenTelemetry SDK TracerProvider is installed, "
                f"found {type(provider).__name__}"
            )
        provider.add_span_processor(self)
        self._provider = provider

    def detach(self) -> None:
        """Stop receiving spans and take this processor off the provider's list."""
        self._open = False
        provider, self._provider = self._provider, None
        # The SDK has no public remove: its multi-processor keeps a tuple under a lock
        # (wstrace's lean tracer re-reads it when the tuple changes). Where that shape
        # is missing the processor stays on the list, closed: it keeps nothing.
        multi = getattr(provider, "_active_span_processor", None)
        lock = getattr(multi, "_lock", None)
        held = getattr(multi, "_span_processors", None)
        if lock is None or not isinstance(held, tuple):
            return
        with lock:
            multi._span_processors = tuple(p for p in multi._span_processors if p is not self)


def _user_settings() -> Any:
    """``settings.WSTRACE`` when Django is loaded and configured, else None."""
    conf = sys.modules.get("django.conf")
    settings = getattr(conf, "settings", None)
    with contextlib.suppress(Exception):  # ImproperlyConfigured: no settings module
        if settings is not None and settings.configured:
            return getattr(settings, "WSTRACE", None)
    return None


@contextlib.contextmanager
def instrumented() -> Iterator[None]:
    """wstrace records in this process within the block (set up here only when it was not)."""
    from wstrace import runtime

    if runtime.active():  # the app set it up: its configuration, its exporters
        yield
        return
    from wstrace import provider, redact
    from wstrace.config import load_config

    config = replace(load_config(_user_settings()), enabled=True, exporters=())
    redact.configure(config.redact_params)
    provider.install(config)  # idempotent: a provider installed before stays
    runtime.activate(config)
    turned_on = _instrument()
    try:
        yield
    finally:
        runtime.deactivate()
        for instrumentor in turned_on:
            instrumentor.uninstrument()


def _instrument() -> list[Any]:
    """Instrument every installed library not instrumented yet; return what was turned on."""
    from wstrace.instrumentors import INSTRUMENTORS

    turned_on = []
    for module, klass in INSTRUMENTORS:
        if importlib.util.find_spec(module) is None:
            continue
        instrumentor = klass()
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(skip_dep_check=True)
            turned_on.append(instrumentor)
    return turned_on


def close_codes() -> dict[int, tuple[str, str]] | None:
    """The close-code table of the live wstrace configuration (None before set-up)."""
    from wstrace import runtime

    table = getattr(runtime.config(), "close_codes", None)
    return dict(table) if table else None
