"""What every fuzzed read must satisfy, whatever it was given.

``read_traces(path)`` runs ``load_events`` the way the commands do (events
collected, problems listed) and checks the contract: the only exception is
``SourceError`` with a one-line message, problems are single lines that name
where (``file:line: what``) and hold no control characters, and the events have
the event table's schema. It returns the counts per conversation for the test's
own checks of what must have survived.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from wsanalyze.events import SCHEMA
from wsanalyze.logmap import EMPTY
from wsanalyze.sources import SourceError, load_events


@dataclass
class Read:
    """What one read returned: rows per conversation, the problem lines, the events."""

    counts: dict[str | None, int]
    problems: list[str]
    events: pl.DataFrame
    error: str | None = None


def one_line(text: str) -> bool:
    """A line a terminal shows as written: no line breaks, no control characters."""
    return not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029" for c in text)


def check_problems(problems: list[str], where: Path | None) -> None:
    """Each problem one line naming ``where``, as the reader wrote it.

    ``where`` None: a store's problems, kept in its manifest as ingest met them (named by
    raw files); a tampered manifest may hold any text there, so only its lines are checked
    (the renderers escape what a terminal would obey).
    """
    for problem in problems:
        assert isinstance(problem, str) and len(problem.splitlines()) <= 1, repr(problem)
        assert where is None or (one_line(problem) and problem.startswith(str(where))), problem


def read_traces(path: Path, **query: object) -> Read:
    """``load_events(path, **query)`` collected; SourceError (one line) is an allowed answer."""
    try:
        result = load_events(path, **query)
    except SourceError as exc:
        assert one_line(str(exc)), repr(str(exc))
        return Read({}, [], pl.DataFrame(schema=SCHEMA), error=str(exc))
    events = result.events.collect()
    assert events.schema == pl.Schema(SCHEMA)
    # a store's manifest keeps the problems ingest met, named by their raw files
    check_problems(result.problems, None if (path / "manifest.json").exists() else path)
    counts = dict(events.group_by("conversation_id").len().iter_rows())
    return Read(counts, result.problems, events)


def write_lines(path: Path, lines: list[str], end: str = "\n") -> Path:
    """The lines as a file, byte for byte (lone surrogates become invalid UTF-8, on purpose)."""
    data = "\n".join(lines) + end
    path.write_bytes(data.encode("utf-8", "surrogatepass"))
    return path


def no_store(tmp: Path) -> dict[str, str]:
    """Environment without a compacted store, so a read goes to the files given."""
    return {**os.environ, "WSANALYZE_STORE": str(tmp / "no-store")}


def fresh(directory: Path) -> Path:
    """``directory``, emptied: one example's files never meet the next one's."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


def read_logs(path: Path, tz: str | None = None) -> Read:
    """``load_log_events(path)``, collected and checked like ``read_traces``."""
    from wsanalyze.sources.logs import load_log_events

    try:
        result = load_log_events(path, tz=tz, log_map=EMPTY)
    except SourceError as exc:
        assert one_line(str(exc)), repr(str(exc))
        return Read({}, [], pl.DataFrame(schema=SCHEMA), error=str(exc))
    events = result.events.collect()
    assert events.schema == pl.Schema(SCHEMA)
    check_problems(result.problems, path)
    assert set(events["source"].unique()) <= {"log"}
    counts = dict(events.group_by("conversation_id").len().iter_rows())
    return Read(counts, result.problems, events)
