"""Log parsers: container and process logs → rows of the normalized event table.

    from wsanalyze.logparse import parse_lines, read_file
    events = parse_lines(read_file(Path("compose.log"))).collect()

One module per producer (`daphne`, `celery`, `redis`, `channels_redis`) holds
its rules; `structured` reads any app's own logfmt and JSON lines and the user's
patterns (`wsanalyze.logmap`; `structured_pairs` reads the pairs, `structured_fields`
maps keys to fields); `framing` reads the file formats and keeps tracebacks with
their record; `engine` runs the rules, vectorised with polars string expressions,
dates each row (`log_time`) and redacts every text a row shows (`redaction`).
docs/logs.md is the user's guide.
"""

from __future__ import annotations

from wsanalyze.logparse.engine import RULES, parse_lines, parse_records
from wsanalyze.logparse.framing import LINES_SCHEMA, lines_frame, read_file, records, sniff
from wsanalyze.logparse.redaction import redact_log_text

__all__ = [
    "LINES_SCHEMA",
    "RULES",
    "lines_frame",
    "parse_lines",
    "parse_records",
    "read_file",
    "records",
    "redact_log_text",
    "sniff",
]
