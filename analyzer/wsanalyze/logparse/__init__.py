"""Log parsers: container and process logs → rows of the normalized event table.

    from wsanalyze.logparse import parse_lines, read_file
    events = parse_lines(read_file(Path("compose.log"))).collect()

One module per producer (`daphne`, `celery`, `redis`, `channels_redis`) holds
its rules; `structured` reads any app's own logfmt and JSON lines and the user's
patterns (`wsanalyze.logmap`); `framing` reads the file formats and keeps
tracebacks with their record; `engine` runs the rules, vectorised with polars
string expressions, and redacts every text a row shows. docs/logs.md is the
user's guide.
"""

from __future__ import annotations

from wsanalyze.logparse.engine import RULES, parse_lines, parse_records, redact_log_text
from wsanalyze.logparse.framing import LINES_SCHEMA, lines_frame, read_file, records, sniff

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
