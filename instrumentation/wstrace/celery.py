"""Celery: the enqueue and task hops, context through task headers, worker facts.

``Celery.send_task`` is wrapped so the ``ws.enqueue`` span covers the whole
publish, including a broker that refuses it; the ``before_task_publish``
signal (which fires inside it) adds the queue and task id and puts the trace
context and the conversation ids into the task headers. In the worker,
``task_prerun``/``task_postrun`` open and close ``ws.task`` under that context.
``worker_ready`` records the queues a worker consumes (what ``no_worker``
verdicts compare against; exported in the background, the worker's start never
waits for it) and ``worker_process_shutdown`` flushes a prefork child's spans
before it exits, in ``SHUTDOWN_TIMEOUT_MS`` at most.

Cancellation leaves evidence on both sides. ``Control.revoke`` (which
``AsyncResult.revoke`` and ``GroupResult.revoke`` call too) is wrapped: the
``ws.revoke`` span names the revoked task ids under the app's current span (the
Stop frame's ``ws.receive``, an HTTP request). In the worker, Celery's
``task_revoked`` signal becomes a ``ws.task_revoked`` span under the task's own
enqueue context, so it carries the ids of the message that started the task:
with ``terminate=True`` the signal fires in the main worker process, while the
killed prefork child never exports its unfinished ``ws.task``.

When ``opentelemetry-instrumentation-celery`` is also active, its
``apply_async/…`` and ``run/…`` spans are enriched instead of duplicated.

A task's arguments are often the client's message. With ``RECORD_BODIES`` off,
what a task raises is recorded on ``ws.task`` as its type and where it was
raised (as for a WebSocket frame), and a retry's reason as the exception's type:
a validation error quoting the message must not carry it into the span.
"""

from __future__ import annotations

import contextlib
import logging
import signal as signals
import sys
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from wstrace import carrier, current, provider, runtime
from wstrace import conventions as c
from wstrace.channels.bare_exceptions import exception_type, record_bare_exception

logger = logging.getLogger(__name__)

_HEADER_KEYS = ("traceparent", "tracestate", "baggage")

# Span and attribute names conventions.py does not have yet (docs/evidence.md lists them).
_SPAN_TASK_REVOKED = "ws.task_revoked"
_SPAN_TASK_LOST = "ws.task_lost"
_REVOKE_SIGNAL = "ws.revoke_signal"  # signal name sent to the task's process (SIGTERM ...)
_REVOKE_TERMINATE = "ws.revoke_terminate"  # bool: the app asked to terminate a running task
_TASK_IDS = "ws.task_ids"  # list[str]: every id of one revoke call, when it named several
# The worker's main process must not stall on a slow exporter while it serves other tasks.
_REVOKED_FLUSH_MS = 1000


_CONTRIB: dict[str, Any] = {}


def contrib_active() -> bool:
    """Whether the OpenTelemetry contrib Celery instrumentation is on in this process."""
    if "class" not in _CONTRIB:  # a failed import is slow: try it once per process
        try:
            from opentelemetry.instrumentation.celery import CeleryInstrumentor
        except ImportError:
            CeleryInstrumentor = None
        _CONTRIB["class"] = CeleryInstrumentor
    # BaseInstrumentor is a singleton; its flag lives on the one instance, if made yet.
    instance = getattr(_CONTRIB["class"], "_instance", None)
    return bool(getattr(instance, "_is_instrumented_by_opentelemetry", False))


# --- enqueue ------------------------------------------------------------------------
def send_task(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    """Wrapper for ``Celery.send_task``: the ``ws.enqueue`` span."""
    if not runtime.active() or contrib_active():
        return wrapped(*args, **kwargs)
    name = args[0] if args else kwargs.get("name")
    span = runtime.shield("enqueue", _start_enqueue, name)
    if span is None:
        return wrapped(*args, **kwargs)
    token = context.attach(trace.set_span_in_context(span))
    try:
        result = wrapped(*args, **kwargs)
    except Exception as exc:
        span.record_exception(exc)
        span.set_attribute(c.CAUSE, "broker_unavailable")
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise
    else:
        task_id = getattr(result, "id", None)
        if task_id:
            span.set_attribute(c.TASK_ID, str(task_id))
        return result
    finally:
        context.detach(token)
        span.end()


def _start_enqueue(name: Any) -> trace.Span:
    attributes: dict[str, Any] = {
        **current.ids(),
        c.HOP: c.HOP_ENQUEUE,
        c.EVENT: c.EV_ENQUEUE,
        c.TASK_NAME: str(name),
    }
    return runtime.tracer().start_span(
        c.SPAN_ENQUEUE, kind=SpanKind.PRODUCER, attributes=attributes
    )


def before_publish(
    sender: Any = None, headers: Any = None, routing_key: Any = None, **_: Any
) -> None:
    """``before_task_publish``: queue and id on the enqueue span, context into the headers."""
    if not runtime.active():
        return
    runtime.shield("task headers", _annotate_publish, sender, headers, routing_key)


def _annotate_publish(sender: Any, headers: Any, routing_key: Any) -> None:
    span = trace.get_current_span()
    name = getattr(span, "name", "")
    if not span.is_recording() or not (name == c.SPAN_ENQUEUE or name.startswith("apply_async/")):
        return
    task_id = headers.get("id") if isinstance(headers, dict) else None
    attributes: dict[str, Any] = {c.HOP: c.HOP_ENQUEUE, c.EVENT: c.EV_ENQUEUE}
    if task_id:
        attributes[c.TASK_ID] = str(task_id)
    if routing_key:
        attributes[c.QUEUE] = str(routing_key)
    if sender:
        attributes[c.TASK_NAME] = str(sender)
    span.set_attributes(attributes)
    if name == c.SPAN_ENQUEUE and isinstance(headers, dict):
        headers.update(carrier.inject())


def after_publish(
    sender: Any = None, headers: Any = None, routing_key: Any = None, **_: Any
) -> None:
    """``after_task_publish``: the contrib span may only be current now."""
    if runtime.active() and contrib_active():
        runtime.shield("task headers", _annotate_publish, sender, headers, routing_key)


# --- task ---------------------------------------------------------------------------
class TaskSpans:
    """Open ``ws.task`` spans by task id (one per running task in this process)."""

    def __init__(self) -> None:
        self._open: dict[str, tuple[trace.Span, object]] = {}

    def prerun(self, task_id: Any = None, task: Any = None, **_: Any) -> None:
        if not runtime.active() or task is None:
            return
        if contrib_active():
            runtime.shield("task", _annotate_task, trace.get_current_span(), task, str(task_id))
            return
        opened = runtime.shield("task", self._open_span, task, str(task_id))
        if opened is not None:
            self._open[str(task_id)] = opened

    def _open_span(self, task: Any, task_id: str) -> tuple[trace.Span, object]:
        request = task.request
        parent = carrier.extract({k: getattr(request, k, None) for k in _HEADER_KEYS})
        if not trace.get_current_span(parent).get_span_context().is_valid:
            # No headers: an eager task (task_always_eager, .apply()) runs inside its caller.
            parent = context.get_current()
        span = runtime.tracer().start_span(
            c.SPAN_TASK,
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={**current.ids(parent), c.HOP: c.HOP_TASK, c.EVENT: c.EV_TASK},
        )
        _annotate_task(span, task, task_id)
        token = context.attach(trace.set_span_in_context(span, parent))
        return span, token

    def failure(
        self,
        task_id: Any = None,
        exception: BaseException | None = None,
        sender: Any = None,
        **_: Any,
    ) -> None:
        opened = self._open.get(str(task_id))
        if opened is None and exception is not None and _is_worker_lost(exception):
            # Sent by the worker's main process: the child that ran the task was killed
            # (SIGKILL, OOM) and its own ws.task span died with it, never exported.
            if runtime.active():
                runtime.shield("task lost", _record_lost, sender, str(task_id), exception)
                runtime.shield("task lost flush", provider.flush, _REVOKED_FLUSH_MS)
            return
        if opened is None or exception is None:
            return
        span = opened[0]
        if runtime.config().record_bodies:
            span.record_exception(exception)
            span.set_status(Status(StatusCode.ERROR, f"{type(exception).__name__}: {exception}"))
        else:
            record_bare_exception(span, exception)
            span.set_status(Status(StatusCode.ERROR, exception_type(exception)))

    def retry(self, request: Any = None, reason: Any = None, **_: Any) -> None:
        opened = self._open.get(str(getattr(request, "id", "")))
        if opened is not None:
            opened[0].add_event("ws.task_retry", {"reason": _retry_reason(reason)})

    def postrun(self, task_id: Any = None, task: Any = None, state: Any = None, **_: Any) -> None:
        if contrib_active() and task is not None:
            runtime.shield("task", _annotate_task, trace.get_current_span(), task, str(task_id))
        opened = self._open.pop(str(task_id), None)
        if opened is None:
            return
        span, token = opened
        if span.is_recording():  # a revoke in this process may have ended it already
            if state:
                span.set_attribute(c.TASK_STATE, str(state))
            else:
                runtime.shield("task", _mark_interrupted, span)
            span.end()
        # A foreign context change between prerun and postrun must not fail the task.
        with contextlib.suppress(Exception):
            context.detach(token)  # type: ignore[arg-type]

    def revoked(
        self,
        sender: Any = None,
        request: Any = None,
        terminated: Any = False,
        signum: Any = None,
        expired: Any = False,
        **_: Any,
    ) -> None:
        """``task_revoked``: a ``ws.task_revoked`` span, and this process's ``ws.task`` ends."""
        if not runtime.active() or request is None:
            return
        facts = runtime.shield(
            "task revoked", _revoked_facts, sender, request, terminated, signum, expired
        )
        if facts is None:
            return
        attributes, description = facts
        opened = self._open.get(str(attributes[c.TASK_ID]))
        if opened is not None:
            # Revoked while running here (threads/solo pool, no terminate): the task span
            # says so itself. postrun still detaches its context, in the task's own thread.
            runtime.shield("task revoked", _end_revoked, opened[0], attributes, description)
        runtime.shield("task revoked", _record_revoked, request, attributes, description)
        # The main worker process may live on for days: without a flush the evidence of a
        # Stop button would wait for the next batch; bounded so a dead exporter costs ~1 s.
        runtime.shield("task revoked flush", provider.flush, _REVOKED_FLUSH_MS)


def _retry_reason(reason: Any) -> str:
    # Celery's reason is the exception that caused the retry (or a Retry wrapping it).
    if runtime.config().record_bodies or not isinstance(reason, BaseException):
        return str(reason)[:500]
    cause = getattr(reason, "exc", None)
    return exception_type(cause if isinstance(cause, BaseException) else reason)


def _is_worker_lost(exc: BaseException) -> bool:
    return any(klass.__name__ == "WorkerLostError" for klass in type(exc).__mro__)


def _record_lost(task: Any, task_id: str, exc: BaseException) -> None:
    """A ``ws.task_lost`` span under the task's enqueue: the run the store will never see."""
    request = getattr(task, "request", None)  # Celery pushes the task's context first
    parent = carrier.extract({k: getattr(request, k, None) for k in _HEADER_KEYS})
    attributes: dict[str, Any] = {
        **current.ids(parent),
        c.HOP: c.HOP_TASK,
        c.EVENT: c.EV_TASK_LOST,
        c.CAUSE: "task_stuck",
        c.TASK_ID: task_id,
        c.TASK_NAME: str(getattr(task, "name", "") or ""),
    }
    hostname = getattr(request, "hostname", None)
    if hostname:
        attributes[c.WORKER] = str(hostname)
    span = runtime.tracer().start_span(
        _SPAN_TASK_LOST, context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    )
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    span.end()


def _mark_interrupted(span: trace.Span) -> None:
    """No state: the task body was cut off by a BaseException Celery lets through.

    A prefork child told to stop (``revoke(terminate=True)``, a cold shutdown) gets
    SIGTERM, billiard's handler raises SystemExit inside the task, and Celery still
    sends ``task_postrun`` from a ``finally``: the span must not look like a success.
    """
    exc = sys.exc_info()[1]  # postrun runs in that finally: the exception is still visible
    if exc is not None and not isinstance(exc, Exception):
        span.set_status(
            Status(StatusCode.ERROR, f"interrupted by {type(exc).__name__} before it finished")
        )


def _revoked_facts(
    sender: Any, request: Any, terminated: Any, signum: Any, expired: Any
) -> tuple[dict[str, Any], str]:
    """The attributes of a revoked task, and the status description naming why."""
    reason = "expired" if expired else "terminated" if terminated else "revoked"
    name = signal_name(signum) if signum else None
    attributes: dict[str, Any] = {
        c.HOP: c.HOP_TASK,
        c.EVENT: c.EV_TASK_REVOKED,
        c.CAUSE: "task_revoked",
        c.REVOKED: True,
        c.REVOKE_REASON: reason,
        c.TASK_STATE: "REVOKED",
        c.TASK_ID: str(getattr(request, "id", None) or ""),
        c.TASK_NAME: str(getattr(sender, "name", None) or getattr(request, "task", None) or ""),
    }
    if name:
        attributes[_REVOKE_SIGNAL] = name
    hostname = getattr(request, "hostname", None)
    if hostname:
        attributes[c.WORKER] = str(hostname)
    description = f"task {reason}" + (f" (signal:{name})" if name else "")
    return attributes, description


def _record_revoked(request: Any, attributes: dict[str, Any], description: str) -> None:
    # The parent is the task's enqueue, read from the headers ws.enqueue wrote (as
    # TaskSpans._open_span does), so the span carries the message's ids.
    parent = carrier.extract({k: getattr(request, k, None) for k in _HEADER_KEYS})
    span = runtime.tracer().start_span(
        _SPAN_TASK_REVOKED,
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={**current.ids(parent), **attributes},
    )
    span.set_status(Status(StatusCode.ERROR, description))
    span.end()


def _end_revoked(span: trace.Span, attributes: dict[str, Any], description: str) -> None:
    if span.is_recording():
        span.set_attributes(attributes)
        span.set_status(Status(StatusCode.ERROR, description))
        span.end()


def signal_name(signum: Any) -> str | None:
    """``SIGTERM`` for 15, ``"TERM"`` or ``"SIGTERM"``; None when it names no signal."""
    if isinstance(signum, str):
        text = signum.strip().upper()
        if not text:
            return None
        if text.isdigit():
            return signal_name(int(text))
        return text if text.startswith("SIG") else f"SIG{text}"
    try:
        return signals.Signals(int(signum)).name
    except (TypeError, ValueError):
        return None


def _annotate_task(span: trace.Span, task: Any, task_id: str) -> None:
    name = getattr(span, "name", "")
    if not span.is_recording() or not (name == c.SPAN_TASK or name.startswith("run/")):
        return
    request = task.request
    delivery = getattr(request, "delivery_info", None) or {}
    attributes: dict[str, Any] = {
        c.HOP: c.HOP_TASK,
        c.EVENT: c.EV_TASK,
        c.TASK_ID: task_id,
        c.TASK_NAME: str(task.name),
        c.RETRIES: int(getattr(request, "retries", 0) or 0),
    }
    queue = delivery.get("routing_key") or delivery.get("queue")
    if queue:
        attributes[c.QUEUE] = str(queue)
    if getattr(request, "hostname", None):
        attributes[c.WORKER] = str(request.hostname)
    span.set_attributes(attributes)
