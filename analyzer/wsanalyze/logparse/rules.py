"""What a parser rule is: a literal needle, a regex with named groups, and fixed facts.

A rule claims a record when its needle occurs in the record's first line and
its pattern matches that line. Named groups become columns of the event table
when they carry an event-table name (`task_id`, `task_name`, `group`,
`over_capacity`, `close_code`, ...); the others (`client`, `path`, `runtime`,
`exc`, ...) are read by the engine or kept in `attributes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Rule:
    event: str  # the `event` column
    producer: str  # the `name` column: "daphne", "celery", "redis", "channels_redis", "app"
    needle: str  # literal every matching line contains (cheap pre-filter)
    pattern: str  # regex over the first line of the record; named groups are extracted
    hop: str | None = None
    status: str = "unset"  # "ok" | "error" | "unset"
    cause: str | None = None  # only when the line alone proves it
    facts: dict[str, object] = field(default_factory=dict)  # constant columns (accepted=True, ...)
    priority: int = 50  # lower wins when two rules claim one record
