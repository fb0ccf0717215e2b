"""Log parsers: container and process logs → rows of the normalized event table.

    from wsanalyze.logparse import parse_lines, read_file
    events = parse_lines(read_file(Path("compose.log"))).collect()

One module per producer (`daphne`, `celery`, `redis`, `channels_redis`) holds
its rules; `framing` reads the file formats and keeps tracebacks with their
record; `engine` runs the rules, vectorised with polars string expressions.
"""

from __future__ import annotations

from wsanalyze.logparse.engine import RULES, parse_lines, parse_records
from wsanalyze.logparse.framing import LINES_SCHEMA, lines_frame, read_file, records, sniff

__all__ = [
    "LINES_SCHEMA",
    "RULES",
    "lines_frame",
    "parse_lines",
    "parse_records",
    "read_file",
    "records",
    "sniff",
]
