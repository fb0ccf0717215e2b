"""`--logs FILE|DIR|docker[:PROJECT]`: container and process logs → the event table.

Accepted, per file (sniffed from its first lines): `docker compose logs -t
--no-color` output, `docker logs -t` output, json-file driver logs
(`*-json.log`, 16 KB partial lines joined; the compose service read from the
engine's `config.v2.json` beside it when present), and plain process logs
(service = file name up to its first dot; `.stdout`/`.stderr` suffixes name
the stream). A directory is read recursively (`*.log` — `*-json.log` included —
`*.txt`, `*.stdout`, `*.stderr`, `*.out`, `*.err`); so an engine's
`/var/lib/docker/containers` can be given whole. `docker` / `docker:PROJECT`
reads live containers through the Docker API (``containers``).

    reader = open_logs("compose.log")          # or a directory, "docker", "docker:chat"
    result = reader.read(Query(conversation_id="abc"))

`load_log_events(spec, ...)` is the one call commands make, mirroring
`wsanalyze.sources.load_events` for traces. The app's own keys and line patterns
(``wsanalyze.logmap``, docs/logs.md) come from `log_map`, else from the map a
command set with `using_log_map` (``--log-map``), else from ``[tool.wsanalyze]``
of the nearest pyproject.toml.

Modules: ``files`` (log files on disk), ``containers`` (the Docker API), and
``parsed`` (lines → correlated events, what both readers end with); this package
opens one of them and imports nothing back, so the readers never import it.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import polars as pl

from wsanalyze.logmap import LogMap
from wsanalyze.sources.base import Query, ReadResult, SourceError
from wsanalyze.sources.logs.containers import DockerLogsReader
from wsanalyze.sources.logs.files import LogFilesReader

__all__ = ["LOG_TZ_ENV", "DockerLogsReader", "LogFilesReader", "load_log_events", "open_logs"]

LOG_TZ_ENV = "WSANALYZE_LOG_TZ"


def open_logs(
    spec: str | os.PathLike, *, tz: str | None = None, log_map: LogMap | None = None
) -> LogFilesReader | DockerLogsReader:
    """The reader for a `--logs` value: a file, a directory, `docker` or `docker:PROJECT`.

    `tz` (default ``$WSANALYZE_LOG_TZ``, else UTC) is the zone of the producers' own
    stamps in lines that have no engine timestamp (plain process logs). Django sets
    the process zone from TIME_ZONE (America/Chicago unless configured), so a plain
    Daphne or Celery log of a default project needs ``WSANALYZE_LOG_TZ=America/Chicago``.
    Lines with engine stamps need nothing: the offset is measured. `log_map`: the app's
    own keys and patterns (default: `current_log_map()` when the logs are read).
    """
    tz = tz or os.environ.get(LOG_TZ_ENV) or None
    if tz is not None:
        _check_zone(tz)
    text = os.fspath(spec)
    if text == "docker" or text.startswith("docker:"):
        project = text.split(":", 1)[1] if ":" in text else None
        return DockerLogsReader(project or None, tz=tz, log_map=log_map)
    path = Path(text)
    if not path.exists():
        raise SourceError(f"no logs at {path.resolve()}: no such file or directory")
    return LogFilesReader(path, tz=tz, log_map=log_map)


def _check_zone(tz: str) -> None:
    """SourceError (one line) for a zone name polars does not know, before any log is read."""
    try:
        pl.Series([datetime(2026, 1, 1)]).dt.replace_time_zone(tz)
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise SourceError(
            f"unknown time zone {tz!r} for plain log stamps (${LOG_TZ_ENV} or tz): "
            "use an IANA name such as Europe/Paris or UTC"
        ) from exc


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
