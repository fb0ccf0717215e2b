"""The app's own log lines, in logfmt: one ``key=value`` line per event.

    ts=2026-12-04T07:29:39.123456Z level=info logger=core.agents.consumers msg="ws disconnected" conv=abc code=4001

``log_event(logger, "ws disconnected", conv=..., code=...)`` logs one; the
formatter writes the record's time (UTC), level, logger and message, then the
event's fields, then wstrace's correlation ids when wstrace is installed (its
record factory puts them on every record). A traceback follows on its own lines,
as Python's logging writes it. ``wsanalyze --logs`` reads these lines as they are
(docs/logs.md).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

# wstrace's record attributes worth a key (empty strings outside a traced context)
_CORRELATION = ("trace_id", "span_id", "connection_id")
_NEEDS_QUOTES = frozenset(' "=\\\n\t')


def quote(value: Any) -> str:
    """A logfmt value: bare when it can be, else double-quoted with backslash escapes."""
    text = str(value)
    if text and not _NEEDS_QUOTES.intersection(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("\t", "\\t") + '"'


class LogfmtFormatter(logging.Formatter):
    """``ts=… level=… logger=… msg=… <fields>``, a traceback on the lines below."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds")
        pairs: dict[str, Any] = {
            "ts": stamp.replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        pairs.update(getattr(record, "fields", None) or {})
        for key in _CORRELATION:
            if getattr(record, key, ""):
                pairs.setdefault(key, getattr(record, key))
        line = " ".join(
            f"{key}={quote(value)}" for key, value in pairs.items() if value is not None
        )
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def log_event(
    logger: logging.Logger,
    event: str,
    *,
    level: int = logging.INFO,
    exc_info: Any = None,
    **fields: Any,
) -> None:
    """Log one event with its fields (passed as one attribute, so no field name can clash
    with a LogRecord attribute or with what wstrace's record factory adds)."""
    logger.log(level, event, extra={"fields": fields}, exc_info=exc_info)
