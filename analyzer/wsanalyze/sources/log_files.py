"""`--logs FILE|DIR`: container and process logs on disk → the event table.

Accepted, per file (sniffed from its first lines): `docker compose logs -t
--no-color` output, `docker logs -t` output, json-file driver logs
(`*-json.log`, 16 KB partial lines joined; the compose service read from the
engine's `config.v2.json` beside it when present), and plain process logs
(service = file name up to its first dot; `.stdout`/`.stderr` suffixes name
the stream). A directory is read recursively (`*.log` — `*-json.log` included —
`*.txt`, `*.stdout`, `*.stderr`, `*.out`, `*.err`); so an engine's
`/var/lib/docker/containers` can be given whole.

    reader = open_logs("compose.log")          # or a directory, "docker", "docker:chat"
    result = reader.read(Query(conversation_id="abc"))

`load_log_events(spec, ...)` is the one call commands make, mirroring
`wsanalyze.sources.load_events` for traces. The app's own keys and line patterns
(``wsanalyze.logmap``, docs/logs.md) come from `log_map`, else from the map a
command set with `using_log_map` (``--log-map``), else from ``[tool.wsanalyze]``
of the nearest pyproject.toml.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from wsanalyze.events import conform, empty_events
from wsanalyze.logmap import LogMap, current_log_map
from wsanalyze.logparse import parse_lines, read_file
from wsanalyze.logparse.correlate import correlate
from wsanalyze.sources.base import Query, ReadResult, SourceError

LOG_SUFFIXES = (".log", ".txt", ".stdout", ".stderr", ".out", ".err")
# not logs, though they sit beside them: OTLP span files, the engine's container configs
_NOT_LOGS = ("config.v2.json", "hostconfig.json")


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def window(events: pl.LazyFrame, query: Query) -> pl.LazyFrame:
    """Apply a query's time window and conversation to log events."""
    if query.since is not None:
        events = events.filter(pl.col("ts") >= _utc(query.since))
    if query.until is not None:
        events = events.filter(pl.col("ts") <= _utc(query.until))
    return events


def window_end(events: pl.DataFrame) -> datetime | None:
    if events.is_empty():
        return None
    value = events.select(pl.col("ts").max()).item()
    return value


class LogFilesReader:
    """Log files (one file or a directory tree) read and parsed in one go."""

    def __init__(
        self, path: str | os.PathLike, *, tz: str | None = None, log_map: LogMap | None = None
    ):
        self.path = Path(path)
        self.tz = tz
        self.log_map = log_map
        self.description = f"logs {self.path}"

    def files(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        if not self.path.is_dir():
            raise SourceError(f"no logs at {self.path.resolve()}: no such file or directory")
        found = [
            p
            for p in sorted(self.path.rglob("*"))
            if p.is_file() and p.suffix in LOG_SUFFIXES and p.name not in _NOT_LOGS
        ]
        if not found:
            raise SourceError(
                f"no log files under {self.path.resolve()} ({', '.join(LOG_SUFFIXES)})"
            )
        return found

    def read(self, query: Query) -> ReadResult:
        frames, problems = [], []
        files = self.files()
        for path in files:
            try:
                frames.append(read_file(path))
            except (OSError, pl.exceptions.PolarsError) as exc:
                problems.append(f"{path}: unreadable log file: {exc}")
        if not frames:
            return ReadResult(empty_events(), problems, [str(p) for p in files])
        events = parse_lines(
            pl.concat(frames, how="vertical"),
            tz=self.tz,
            log_map=self.log_map if self.log_map is not None else current_log_map(),
        )
        events = correlate(window(events, query).collect())
        return ReadResult(
            events=conform(events.lazy()),
            problems=problems,
            sources=[str(p) for p in files],
            window_end=window_end(events),
        )


LOG_TZ_ENV = "WSANALYZE_LOG_TZ"


def open_logs(spec: str | os.PathLike, *, tz: str | None = None, log_map: LogMap | None = None):
    """The reader for a `--logs` value: a file, a directory, `docker` or `docker:PROJECT`.

    `tz` (default ``$WSANALYZE_LOG_TZ``, else UTC) is the zone of the producers' own
    stamps in lines that have no engine timestamp (plain process logs). Django sets
    the process zone from TIME_ZONE (America/Chicago unless configured), so a plain
    Daphne or Celery log of a default project needs ``WSANALYZE_LOG_TZ=America/Chicago``.
    Lines with engine stamps need nothing: the offset is measured. `log_map`: the app's
    own keys and patterns (default: `current_log_map()` when the logs are read).
    """
    tz = tz or os.environ.get(LOG_TZ_ENV) or None
    text = os.fspath(spec)
    if text == "docker" or text.startswith("docker:"):
        from wsanalyze.sources.docker_logs import DockerLogsReader

        project = text.split(":", 1)[1] if ":" in text else None
        return DockerLogsReader(project or None, tz=tz, log_map=log_map)
    path = Path(text)
    if not path.exists():
        raise SourceError(f"no logs at {path.resolve()}: no such file or directory")
    return LogFilesReader(path, tz=tz, log_map=log_map)


def load_log_events(
    spec: str | os.PathLike,
    *,
    conversation_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    tz: str | None = None,
    log_map: LogMap | None = None,
) -> ReadResult:
    """Log events of a `--logs` source within a time window, correlated.

    Rows are not filtered by conversation: lines that name none (Celery, Redis)
    were already given one where a task id or time ties them (``confidence``
    says how: see ``wsanalyze.logparse.correlate``); callers that also have
    spans correlate again by task id over both (``correlate(pl.concat(...))``).
    """
    reader = open_logs(spec, tz=tz, log_map=log_map)
    result = reader.read(Query(conversation_id=conversation_id, since=since, until=until))
    return result
