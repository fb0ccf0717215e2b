"""Network exporters that never cost the app time, and one log line when their endpoint is down.

``GuardedExporter`` wraps an exporter that talks to a collector (OTLP over HTTP).
Its ``export`` hands the batch to a sender thread of its own and waits for the
result. Normally that wait is as long as the exporter takes (its own timeout and
retries), in the batch processor's background thread, off the app's path. While
a deadline is set (``expire_in``: a process or a prefork child about to exit) the
wait ends at the deadline, and at once when the endpoint is known to be down (an
export failed, the exporter logged a connection error) or when the export in
flight has had no answer for longer than the endpoint takes when it is healthy
(``_stall_after``). The batch is then given up, so the batch processor's
shutdown, which waits for its worker thread's export, returns in time; the
sender thread is a daemon and dies with the process.

The SDK's exporter logs every failed attempt of every batch. Those records are
kept out of the log while the sender thread runs an export; instead wstrace
writes one error line per outage, naming the endpoint (without credentials) and
the reason, and one line when the endpoint answers again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from wstrace import redact

logger = logging.getLogger("wstrace")

# Loggers the exporter (and its HTTP stack) logs each failed attempt on.
_EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "urllib3.connectionpool",
)
# An export in flight this long without an answer is stalled (a healthy collector
# answers in milliseconds); longer when the endpoint's healthy exports were slower.
_MIN_STALL_S = 0.5
_STALL_FACTOR = 3.0

_sending = threading.local()  # .guard: the GuardedExporter whose sender thread this is


class _Quiet(logging.Filter):
    """Keep the exporter's own warnings out of the log while a guard's sender exports."""

    def filter(self, record: logging.LogRecord) -> bool:
        guard = getattr(_sending, "guard", None)
        if guard is None or record.levelno < logging.WARNING:
            return True
        guard.failing(_reason_of(record))
        return False


_QUIET = _Quiet()


class _Batch:
    __slots__ = ("done", "result", "spans")

    def __init__(self, spans: Sequence[ReadableSpan]) -> None:
        self.spans = spans
        self.done = False
        self.result = SpanExportResult.FAILURE


class GuardedExporter(SpanExporter):
    """Export on a sender thread; give a batch up at a deadline or when the endpoint is down."""

    def __init__(self, inner: SpanExporter, endpoint: str, kind: str = "OTLP") -> None:
        self._inner = inner
        self.endpoint = safe_endpoint(endpoint)
        self._kind = kind
        self._down = False  # the last export failed, or this one hit an error already
        self._reported = False  # the current outage has its log line
        self._healthy_s = 0.0  # how long the last successful export took
        self._closed = False
        self._reset()
        for name in _EXPORTER_LOGGERS:
            if _QUIET not in logging.getLogger(name).filters:
                logging.getLogger(name).addFilter(_QUIET)
        if hasattr(os, "register_at_fork"):
            reset = weakref.WeakMethod(self._reset)
            os.register_at_fork(after_in_child=lambda: (method := reset()) and method())

    def _reset(self) -> None:
        """Fresh lock, no batch in flight and a sender thread of this process (also after fork)."""
        self._cond = threading.Condition()
        self._batch: _Batch | None = None
        self._since: float | None = None  # when the batch in flight was handed over
        self._deadlines: list[float] = []
        if not self._closed:
            threading.Thread(
                target=self._send_loop, name=f"wstrace-{self._kind.lower()}-sender", daemon=True
            ).start()

    # --- the batch processor's side ---------------------------------------------------
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._cond:
            if self._closed or not self._wait_for(lambda: self._batch is None):
                return SpanExportResult.FAILURE
            batch = self._batch = _Batch(spans)
            self._since = time.monotonic()
            self._cond.notify_all()
            if not self._wait_for(lambda: batch.done):
                return SpanExportResult.FAILURE  # the sender goes on with it in the background
            return batch.result

    def _wait_for(self, ready: Callable[[], bool]) -> bool:
        """Wait (lock held) until ``ready()``; False when a deadline says to give up first."""
        while not ready():
            pause = self._give_up_in()
            if pause is not None and pause <= 0:
                if self._stalled(time.monotonic()):
                    self._mark_down(f"no answer within {time.monotonic() - self._since:.1f}s")
                return False
            self._cond.wait(pause)
        return True

    def _give_up_in(self) -> float | None:
        """Seconds a waiting export may still wait; None: no deadline, as long as it takes."""
        if self._closed or self._down:
            # Down: the batch in flight probes the endpoint in the background, every other
            # batch is dropped at once. Waiting would fill the SDK's queue behind us, and the
            # SDK's own "Queue full, dropping Span" lines would follow our one line.
            return 0.0
        if not self._deadlines:
            return None
        now = time.monotonic()
        if self._stalled(now):
            return 0.0
        left = min(self._deadlines) - now
        if self._since is not None:
            left = min(left, self._since + self._stall_after() - now)
        return left

    def _stalled(self, now: float) -> bool:
        return self._since is not None and now - self._since >= self._stall_after()

    def _stall_after(self) -> float:
        return max(_MIN_STALL_S, _STALL_FACTOR * self._healthy_s)

    def expire_in(self, seconds: float) -> None:
        """From now on exports give up after ``seconds``, at once when the endpoint is down.

        For a process about to exit: the deadline is never lifted (the earliest one counts).
        """
        with self._cond:
            self._deadlines.append(time.monotonic() + max(0.0, seconds))
            self._cond.notify_all()

    def shutdown(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._inner.shutdown()  # the OTLP exporter stops retrying and closes its connections

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # --- the sender thread ------------------------------------------------------------
    def _send_loop(self) -> None:
        _sending.guard = self
        cond = self._cond
        while True:
            with cond:
                cond.wait_for(lambda: self._closed or (self._batch and not self._batch.done))
                batch = self._batch
                if self._closed or batch is None:
                    return
            started = time.monotonic()
            result = self._send(batch.spans)
            took = time.monotonic() - started
            # Health is logged before the batch is answered: the caller may shut us down
            # the moment it has its result, and a closed guard logs nothing more.
            if result is SpanExportResult.SUCCESS:
                self._answered()
            else:
                self.failing("the export failed")  # a reason logged during it came first
            with cond:
                batch.result, batch.done = result, True
                if self._batch is batch:
                    self._batch, self._since = None, None
                if result is SpanExportResult.SUCCESS:
                    self._healthy_s = took
                cond.notify_all()

    def _send(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            return self._inner.export(spans)
        except Exception as exc:  # the batch processor would log each batch's traceback
            self.failing(f"{type(exc).__name__}: {redact.redact_text(str(exc))[:200]}")
            return SpanExportResult.FAILURE

    # --- health and its one log line ----------------------------------------------------
    def failing(self, reason: str) -> None:
        """The exporter hit an error: the endpoint is down until an export succeeds."""
        with self._cond:
            if self._closed:  # errors of an export cut short by our own shutdown
                self._down = True
                self._cond.notify_all()
                return
        self._mark_down(reason)

    def _mark_down(self, reason: str) -> None:
        """Log the outage once, then wake the waiting export: it returns after the line."""
        with self._cond:  # re-entrant: _wait_for calls it with the lock held
            first, self._reported = not self._reported, True
        if first:
            logger.error(
                "wstrace: cannot export spans to the %s endpoint %s (%s); spans are dropped "
                "while it is down, retried in the background, never waited for at exit; the "
                "app is unaffected",
                self._kind,
                self.endpoint,
                reason,
            )
        with self._cond:
            self._down = True
            self._cond.notify_all()

    def _answered(self) -> None:
        with self._cond:
            recovered = self._down and self._reported
            self._down = self._reported = False
        if recovered:
            logger.warning("wstrace: the %s endpoint %s answers again", self._kind, self.endpoint)

    @property
    def down(self) -> bool:
        """Whether the endpoint failed its last export (or the one in flight)."""
        return self._down


def safe_endpoint(url: str) -> str:
    """The endpoint URL to show a person: no user info, no query values, no fragment."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{redact.REDACTED}@{netloc.rsplit('@', 1)[1]}"
        query = redact.REDACTED if parts.query else ""
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return "(unparsable URL)"


def _reason_of(record: logging.LogRecord) -> str:
    """A short, secret-free reason from one of the exporter's failure records."""
    args: tuple[Any, ...] = record.args if isinstance(record.args, tuple) else ()
    for arg in args:
        if isinstance(arg, BaseException):
            return _describe(arg)
    message = str(record.msg)
    if message.startswith("Transient error") and args and isinstance(args[0], str):
        return redact.redact_text(f"transient error: {args[0]}")[:120]
    if "code: %s" in message and len(args) >= 3 and args[1]:
        return f"HTTP {args[1]} {args[2]}"[:120]
    if "timeout" in message:
        return "no success within the exporter's timeout, retries included"
    return redact.redact_text(record.getMessage())[:200]


def _describe(exc: BaseException) -> str:
    """``connection refused``, ``timed out`` ...: what went wrong, without the URL it went to."""
    text, seen = "", exc
    for _ in range(8):  # the cause chain of a requests error: a few links at most
        text += f" {type(seen).__name__} {seen}".lower()
        nxt = seen.__cause__ or seen.__context__
        if nxt is None:
            break
        seen = nxt
    for needle, reason in (
        ("refused", "connection refused"),
        ("timed out", "timed out"),
        ("timeout", "timed out"),
        ("name or service not known", "host name not resolved"),
        ("nodename nor servname", "host name not resolved"),
        ("name resolution", "host name not resolved"),
        ("certificate", "TLS certificate error"),
        ("ssl", "TLS error"),
        ("reset by peer", "connection reset"),
        ("unreachable", "network unreachable"),
    ):
        if needle in text:
            return reason
    return type(exc).__name__
