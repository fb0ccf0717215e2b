"""`--logs docker` / `--logs docker:PROJECT`: live containers through the Docker API.

Every container (running or stopped) of a compose project is found by its
`com.docker.compose.project` label (`docker` alone: every compose project's
containers); its service comes from `com.docker.compose.service`. Logs are
fetched with engine timestamps, stdout and stderr separately (so a traceback
on stderr never interleaves with access lines on stdout), the query's
`since`/`until` passed to the engine, and the streamed chunks — which are not
line aligned — reassembled into lines before parsing. `DOCKER_HOST` etc. are
honoured (docker.from_env).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import polars as pl

from wsanalyze.events import empty_events
from wsanalyze.logmap import LogMap
from wsanalyze.logparse.framing import LINES_SCHEMA, split_timestamped
from wsanalyze.sources.base import Query, ReadResult, SourceError
from wsanalyze.sources.logs.parsed import parsed_result

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


def chunks_to_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Reassemble a stream of byte chunks into text lines (a last unterminated line too)."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        if b"\n" not in chunk:
            continue
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            yield raw.decode("utf-8", errors="replace").rstrip("\r")
    if pending:
        yield pending.decode("utf-8", errors="replace").rstrip("\r")


def _api_time(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return moment.timestamp()


class DockerLogsReader:
    """The logs of one compose project's containers (or of every compose project)."""

    def __init__(
        self,
        project: str | None = None,
        *,
        client=None,
        tz: str | None = None,
        log_map: LogMap | None = None,
    ):
        self.project = project
        self.tz = tz
        self.log_map = log_map
        self._client = client
        self.description = f"docker:{project}" if project else "docker (every compose project)"

    def client(self):
        if self._client is None:
            import docker

            try:
                self._client = docker.from_env()
                self._client.ping()
            except docker.errors.DockerException as exc:
                raise SourceError(f"no Docker engine reachable ({exc}); set DOCKER_HOST") from exc
        return self._client

    def containers(self) -> list:
        label = f"{PROJECT_LABEL}={self.project}" if self.project else PROJECT_LABEL
        found = self.client().containers.list(all=True, filters={"label": label})
        if not found:
            what = f"compose project {self.project!r}" if self.project else "any compose project"
            raise SourceError(f"no containers of {what} (label {PROJECT_LABEL})")
        return sorted(found, key=lambda c: c.name)

    def lines(self, query: Query) -> tuple[pl.DataFrame, list[str], list[str]]:
        """The lines frame of every container and stream, and the sources read / problems."""
        import docker

        rows: dict[str, list] = {
            name: [] for name in ("service", "stream", "line", "origin", "lineno", "part")
        }
        sources, problems = [], []
        since, until = _api_time(query.since), _api_time(query.until)
        for container in self.containers():
            labels = container.labels or {}
            service = labels.get(SERVICE_LABEL) or container.name
            sources.append(f"docker:{container.name}")
            for stream in ("stdout", "stderr"):
                kwargs = {"stdout": stream == "stdout", "stderr": stream == "stderr"}
                if since is not None:
                    kwargs["since"] = since
                if until is not None:
                    kwargs["until"] = until
                try:
                    chunks = container.logs(stream=True, timestamps=True, follow=False, **kwargs)
                    for n, line in enumerate(chunks_to_lines(chunks), 1):
                        rows["service"].append(service)
                        rows["stream"].append(stream)
                        rows["line"].append(line)
                        rows["origin"].append(f"{container.name}:{stream}")
                        rows["lineno"].append(n)
                        rows["part"].append(f"{container.id}:{stream}")
                except docker.errors.APIError as exc:
                    problems.append(f"docker:{container.name}: logs unavailable: {exc}")
        raw = pl.DataFrame(rows, schema={k: pl.Int64 if k == "lineno" else pl.String for k in rows})
        frame = split_timestamped(raw).select(list(LINES_SCHEMA))
        return frame, sources, problems

    def read(self, query: Query) -> ReadResult:
        frame, sources, problems = self.lines(query)
        if frame.is_empty():
            return ReadResult(empty_events(), problems, sources)
        return parsed_result(
            frame, query, tz=self.tz, log_map=self.log_map, problems=problems, sources=sources
        )
