"""Trace ids and conversation ids on the app's own log records.

wstrace installs a log-record factory (as opentelemetry's logging
instrumentation does) so every record carries ``trace_id``, ``span_id``,
``conversation_id``, ``connection_id`` and ``message_id`` attributes (empty
strings outside a traced context). Put them in any format::

    "format": "%(asctime)s %(levelname)s %(name)s %(message)s "
              "trace_id=%(trace_id)s span_id=%(span_id)s conversation_id=%(conversation_id)s"

or use ``wstrace.logging.CorrelationFormatter``, which appends the non-empty
ones as ``key=value`` pairs that ``wsanalyze --logs`` joins to the spans.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry import baggage

from wstrace import conventions as c
from wstrace import current, redact

FIELDS = ("trace_id", "span_id", "conversation_id", "connection_id", "message_id")
_BAGGAGE = {
    "conversation_id": c.CONVERSATION_ID,
    "connection_id": c.CONNECTION_ID,
    "message_id": c.MESSAGE_ID,
}
_state: dict[str, Any] = {}


_EMPTY: dict[str, str] = dict.fromkeys(FIELDS, "")


_last: tuple[Any, dict[str, str]] = (None, _EMPTY)  # (context, its fields)


def _correlation() -> dict[str, str]:
    """The fields of the current context; read-only by convention (callers copy values out)."""
    global _last
    ctx = current.get()
    last = _last  # one read: another thread may replace it meanwhile
    if last[0] is ctx:  # contexts are immutable: a task's log lines share one
        return last[1]
    span_context = current.span_context(ctx)
    if not span_context.is_valid:
        values = _EMPTY
    else:
        entries = baggage.get_all(ctx)
        values = {
            "trace_id": f"{span_context.trace_id:032x}",
            "span_id": f"{span_context.span_id:016x}",
        }
        for field, key in _BAGGAGE.items():
            # As on the spans: an over-long id is written in its short form.
            values[field] = current.capped_id(str(entries.get(key) or ""))
    _last = (ctx, values)  # holds the context, so its id cannot be reused while cached
    return values


def install_record_factory() -> None:
    """Add the correlation fields to every LogRecord; idempotent."""
    if "previous" in _state:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            values = _correlation()
        except Exception:
            values = _EMPTY
        # Runs for every record of every library: plain dict work, no per-field getattr.
        fields = record.__dict__
        if fields.keys().isdisjoint(values):
            fields.update(values)  # the usual case: nobody set these (one C call)
            return record
        for field, value in values.items():
            if field not in fields:
                fields[field] = value
        return record

    _state["previous"] = previous
    logging.setLogRecordFactory(factory)


def uninstall_record_factory() -> None:
    """Restore the record factory that was there before."""
    previous = _state.pop("previous", None)
    if previous is not None:
        logging.setLogRecordFactory(previous)


class CorrelationFormatter(logging.Formatter):
    """A Formatter that appends ``trace_id=… span_id=… conversation_id=…`` and redacts secrets."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        pairs = [
            f"{field}={getattr(record, field)}" for field in FIELDS if getattr(record, field, "")
        ]
        if pairs:
            text = f"{text} {' '.join(pairs)}"
        return redact.redact_text(text)


class RedactingFilter(logging.Filter):
    """Strip tokens from a record's message before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and not record.args:
            record.msg = redact.redact_text(record.msg)
        elif record.args:
            # The secret may be in an argument: format once, keep the redacted text.
            try:
                message = record.getMessage()
            except Exception:
                return True  # a broken format string is the handler's to report
            clean = redact.redact_text(message)
            if clean != message:
                record.msg, record.args = clean, ()
        return True
