"""Log files on disk (one file or a directory tree) → the event table.

What each file holds is sniffed by ``wsanalyze.logparse.read_file`` (compose and
``docker logs -t`` output, json-file driver logs, plain process logs); this
module finds the files and hands their lines to ``parsed``. Only regular files
are read: a FIFO, socket or device (which would block or never end) is skipped
with a problem line.
"""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

from wsanalyze.events import empty_events
from wsanalyze.logmap import LogMap
from wsanalyze.logparse import read_file
from wsanalyze.sources._files import regular_files, skipped_note, special_kind
from wsanalyze.sources.base import Query, ReadResult, SourceError
from wsanalyze.sources.logs.parsed import parsed_result

LOG_SUFFIXES = (".log", ".txt", ".stdout", ".stderr", ".out", ".err")
# not logs, though they sit beside them: OTLP span files, the engine's container configs
_NOT_LOGS = ("config.v2.json", "hostconfig.json")


class LogFilesReader:
    """Log files (one file or a directory tree) read and parsed in one go."""

    def __init__(
        self, path: str | os.PathLike, *, tz: str | None = None, log_map: LogMap | None = None
    ):
        self.path = Path(path)
        self.tz = tz
        self.log_map = log_map
        self.description = f"logs {self.path}"

    def files(self, skipped: list[str] | None = None) -> list[Path]:
        """The log files to read: the file given, or every log file under the directory.

        FIFOs, sockets and devices are left out, each noted in ``skipped`` when given.
        """
        kind = special_kind(self.path)
        if kind is not None:
            raise SourceError(f"cannot read logs from {self.path.resolve()}: {kind}, not a file")
        if self.path.is_file():
            return [self.path]
        if not self.path.is_dir():
            raise SourceError(f"no logs at {self.path.resolve()}: no such file or directory")
        candidates = [
            p
            for p in sorted(self.path.rglob("*"))
            if p.suffix in LOG_SUFFIXES and p.name not in _NOT_LOGS and not p.is_dir()
        ]
        found = [p for p in regular_files(candidates, skipped) if p.is_file()]
        if not found:
            raise SourceError(
                f"no log files under {self.path.resolve()} ({', '.join(LOG_SUFFIXES)})"
                + (f" ({skipped[0]})" if skipped else "")
            )
        return found

    def read(self, query: Query) -> ReadResult:
        """Events of every file in the query's window; an unreadable file is a problem line."""
        frames, problems = [], []
        files = self.files(problems)
        for path in files:
            kind = special_kind(path)  # replaced since it was listed
            if kind is not None:
                problems.append(skipped_note(path, kind))
                continue
            try:
                frames.append(read_file(path, problems=problems))
            except (OSError, pl.exceptions.PolarsError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                problems.append(f"{path}: unreadable log file: {first}")
        if not frames:
            return ReadResult(empty_events(), problems, [str(p) for p in files])
        return parsed_result(
            pl.concat(frames, how="vertical"),
            query,
            tz=self.tz,
            log_map=self.log_map,
            problems=problems,
            sources=[str(p) for p in files],
        )
