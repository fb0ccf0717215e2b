"""Celery's control side: the revokes the app asks for, and a worker's own facts.

``ws.revoke`` is recorded where the app calls ``app.control.revoke(...)`` (a Stop
button), so the analyzer can name the frame whose handler stopped a task. A ready
worker records which queues it consumes and which channel layer it publishes on
(``ws.worker_ready``): a task queued where no worker listens is ``no_worker``, a
worker on another layer than the consumers is ``layer_mismatch``. Its prefork
children flush their last spans at exit, bounded (provider.flush_before_exit).
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from wstrace import conventions as c
from wstrace import current, provider, runtime
from wstrace.celery import _REVOKE_SIGNAL, _REVOKE_TERMINATE, _TASK_IDS, signal_name


# --- revoke (the app side) ------------------------------------------------------------------
def revoke(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    """Wrapper for ``Control.revoke``: the ``ws.revoke`` span (``AsyncResult.revoke`` too)."""
    if not runtime.active():
        return wrapped(*args, **kwargs)
    span = runtime.shield("revoke", _start_revoke, *args, **kwargs)
    if span is None:
        return wrapped(*args, **kwargs)
    try:
        return wrapped(*args, **kwargs)
    except Exception as exc:
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        span.end()


def _start_revoke(
    task_id: Any = None,
    destination: Any = None,
    terminate: Any = False,
    signal: Any = None,
    **_: Any,
) -> trace.Span:
    ids = [str(i) for i in task_id] if isinstance(task_id, list | tuple | set) else [str(task_id)]
    attributes: dict[str, Any] = {
        **current.ids(),
        c.EVENT: c.EV_REVOKE,
        c.TASK_ID: ids[0] if ids else "",
        _REVOKE_TERMINATE: bool(terminate),
    }
    if len(ids) > 1:
        attributes[_TASK_IDS] = ids
    if terminate:
        # Celery's default when the caller names none (AsyncResult.revoke passes None).
        attributes[_REVOKE_SIGNAL] = signal_name(signal or "SIGTERM") or str(signal)
    # The hop of the frame or request that asked for it (a Stop frame: receive).
    hop = getattr(trace.get_current_span(), "attributes", None) or {}
    if hop.get(c.HOP):
        attributes[c.HOP] = hop[c.HOP]
    return runtime.tracer().start_span(c.SPAN_REVOKE, kind=SpanKind.PRODUCER, attributes=attributes)


# --- worker facts -------------------------------------------------------------------------
def worker_ready(sender: Any = None, **_: Any) -> None:
    """``worker_ready``: which queues this worker consumes, and its channel layer."""
    if runtime.active():
        runtime.shield("worker ready", _record_worker, sender)


def _record_worker(consumer: Any) -> None:
    attributes: dict[str, Any] = {c.EVENT: c.EV_WORKER_READY}
    hostname = getattr(consumer, "hostname", None)
    if hostname:
        attributes[c.WORKER] = str(hostname)
    queues = _consumed_queues(consumer)
    if queues:
        attributes[c.QUEUES] = queues
    attributes.update(_layer_identity())
    runtime.tracer().start_span(c.SPAN_WORKER_READY, attributes=attributes).end()
    # Out now, on a background thread: a worker's start never waits for an exporter.
    provider.flush(0)


def _consumed_queues(consumer: Any) -> list[str]:
    task_consumer = getattr(consumer, "task_consumer", None)
    queues = getattr(task_consumer, "queues", None)
    if queues:
        return sorted({str(q.name) for q in queues})
    app = getattr(consumer, "app", None)
    consume_from = getattr(
        getattr(getattr(app, "amqp", None), "queues", None), "consume_from", None
    )
    return sorted(str(name) for name in (consume_from or {}))


def _layer_identity() -> dict[str, str]:
    try:
        from channels.layers import get_channel_layer

        from wstrace.channels.layers import identity
    except ImportError:
        return {}
    layer = get_channel_layer()
    return identity(layer) if layer is not None else {}


def process_shutdown(**_: Any) -> None:
    """``worker_process_shutdown``: a prefork child exits without atexit; flush first."""
    runtime.shield("process shutdown flush", provider.flush_before_exit)
