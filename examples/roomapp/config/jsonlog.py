"""The app's own log lines, as JSON: one object per line, the shape python-json-logger
and structlog write.

    {"timestamp": "2026-12-04T07:29:39.123456+00:00", "level": "info", "logger": "rooms.consumers",
     "event": "message queued", "conversation_id": "lobby", "message_id": "m1", "task_id": "…"}

``log_event(logger, "message queued", conversation_id=..., task_id=...)`` logs one;
wstrace's correlation ids are added when wstrace is installed (its record factory
puts them on every record), and a traceback goes into ``exc_info`` as one string.
``wsanalyze --logs`` reads these lines as they are (docs/logs.md).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

# wstrace's record attributes worth a key (empty strings outside a traced context)
_CORRELATION = ("trace_id", "span_id", "connection_id")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, event, the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="microseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        doc.update(getattr(record, "fields", None) or {})
        for key in _CORRELATION:
            if getattr(record, key, ""):
                doc.setdefault(key, getattr(record, key))
        if record.exc_info:
            doc["exc_info"] = self.formatException(record.exc_info)
        # default=str: a field the app passed that JSON cannot hold is written, not dropped
        return json.dumps(doc, default=str)


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
