"""A trace store followed as it grows: each poll decodes only what was written since the last.

``LiveTraces`` keeps what wstrace's file exporter (or a Collector ``file`` export)
wrote to a directory or file: new files, grown files (from the byte where the
last poll stopped, complete lines only: a writer may be half way through one),
files rotated by renaming (recognised by inode, not read twice). It decides which
files changed exactly as ``ingest`` does (``store.manifest.plan``) and decodes them
with the same reader every command uses (``otlp_files.read_files``).

It is also a ``TraceReader``: registered under a ``wsanalyze-watch://`` address,
it answers the analysis front door (``wsanalyze.analysis``) from memory, so a
verdict is computed by the same code, from the same rows, as ``wsanalyze
conversation`` reading the files, without reading them again. Spans once read
stay: a rotated file deleted later does not take its spans away, and a copy
(``copytruncate`` rotation) counts once (``sources.drop_copies``).
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from wsanalyze.events import empty_events
from wsanalyze.sources import register_scheme
from wsanalyze.sources._otlp.frame import ns_to_datetime, rows_to_frame
from wsanalyze.sources.base import Query, ReadResult, SourceError
from wsanalyze.sources.otlp_files import discover, read_files
from wsanalyze.sources.store.manifest import fingerprint, plan

SCHEME = "wsanalyze-watch"
_MERGE_AFTER = 16  # small frames kept apart before they are merged into one

Progress = Callable[[int, int], None]  # (bytes done, bytes to read)


@dataclass
class Poll:
    """What one poll read: the new rows, and what it cost."""

    rows: pl.DataFrame
    files_read: int = 0
    bytes_read: int = 0
    problems: list[str] = field(default_factory=list)


class LiveTraces:
    """An OTLP JSON-lines directory (or file), read incrementally, its spans kept in memory."""

    reads_message_ids = True  # Query.message_ids / app_message_ids are column filters here

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()
        self.description = f"OTLP JSON files in {self.path} (followed)"
        self.address = _register(self)
        self.window_end_ns: int | None = None
        self.spans = 0
        self._files: dict[str, dict] = {}  # the store manifest's per-file entries
        self._frames: list[pl.DataFrame] = []
        self._lock = threading.Lock()

    # --- following ----------------------------------------------------------------------
    def poll(self, progress: Progress | None = None) -> Poll:
        """Decode what was written since the last poll (everything, the first time)."""
        skipped: list[str] = []
        files = discover(self.path, skipped) if self.path.exists() else []
        resume, covered = plan(files, self._files)
        done = set(covered)
        todo = [f for f in files if f not in done]
        # entries of the files there now only (a rotated file is covered under its new name)
        by_inode = {(e["dev"], e["inode"]): e for e in self._files.values()}
        entries = {str(f): e for f in covered if (e := _known_entry(f, by_inode)) is not None}
        total = sum(_remaining(f, resume) for f in todo)
        rows: list[tuple] = []
        result = Poll(rows=empty_events().collect(), problems=skipped)
        read_paths: set[str] = set()
        for chunk in read_files(todo, resume=resume, complete_only=True):
            result.problems.extend(chunk.problems)
            rows.extend(chunk.rows)
            if chunk.window_end and (
                self.window_end_ns is None or chunk.window_end > self.window_end_ns
            ):
                self.window_end_ns = chunk.window_end
            entry = _entry(Path(chunk.path), chunk, resume.get(chunk.path))
            if entry is not None:
                entries[chunk.path] = entry
            read_paths.add(chunk.path)
            result.bytes_read += chunk.bytes_read
            if progress is not None:
                progress(result.bytes_read, total)
        self._files = entries
        result.files_read = len(read_paths)
        if rows:
            frame = rows_to_frame(rows, result.problems)
            result.rows = frame
            with self._lock:
                self._frames.append(frame)
                self.spans += frame.height
        return result

    # --- the TraceReader the front door reads -------------------------------------------
    @property
    def window_end(self) -> datetime | None:
        """The newest span time read so far."""
        return ns_to_datetime(self.window_end_ns)

    def events(self) -> pl.LazyFrame:
        """Every span read so far (merged into one frame now and then)."""
        with self._lock:
            if len(self._frames) > _MERGE_AFTER:
                self._frames = [pl.concat(self._frames, how="vertical", rechunk=True)]
            frames = list(self._frames)
        if not frames:
            return empty_events()
        return pl.concat([f.lazy() for f in frames], how="vertical")

    def read(self, query: Query) -> ReadResult:
        """The spans read so far that ``query`` selects (problems are reported by the poll)."""
        events = self.events()
        predicate = query.predicate()
        if predicate is not None:
            events = events.filter(predicate)
        return ReadResult(
            events=events,
            problems=[],
            sources=sorted(self._files),
            window_end=self.window_end,
        )

    def conversation_ids(self) -> set[str]:
        """Every conversation id read so far."""
        ids = self.events().select(pl.col("conversation_id").drop_nulls().unique()).collect()
        return set(ids["conversation_id"].to_list())

    def close(self) -> None:
        """Forget the ``wsanalyze-watch://`` address."""
        _LIVE.pop(self.address, None)


def _known_entry(path: Path, by_inode: dict[tuple[int, int], dict]) -> dict | None:
    """The entry of a file read before, under this name or another (renamed by rotation)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return by_inode.get((st.st_dev, st.st_ino))


def _remaining(path: Path, resume: dict) -> int:
    try:
        size = path.stat().st_size
    except OSError:
        return 0
    start = resume[str(path)].offset if str(path) in resume else 0
    return max(size - start, 0)


def _entry(path: Path, chunk, prev) -> dict | None:
    """The per-file entry ``plan`` reads next time (the store manifest's shape)."""
    try:
        st = path.stat()
    except OSError:  # gone since it was read: its rows stay, nothing to resume
        return None
    return {
        "size": chunk.file_size,
        "mtime_ns": st.st_mtime_ns,
        "dev": st.st_dev,
        "inode": st.st_ino,
        "head": fingerprint(path),
        "offset": chunk.end_offset,
        "line": chunk.end_line if chunk.end_offset else (prev.line if prev else 0),
        "complete": chunk.end_offset >= chunk.decoded_size,
    }


# --- the wsanalyze-watch:// addresses ---------------------------------------------------
_LIVE: weakref.WeakValueDictionary[str, LiveTraces] = weakref.WeakValueDictionary()
_COUNTER = itertools.count(1)


def _register(live: LiveTraces) -> str:
    address = f"{SCHEME}://{next(_COUNTER)}"
    _LIVE[address] = live
    return address


def _open(spec: str) -> LiveTraces:
    live = _LIVE.get(spec)
    if live is None:
        raise SourceError(f"{spec} exists only inside a running `wsanalyze watch`")
    return live


register_scheme(SCHEME, _open)
