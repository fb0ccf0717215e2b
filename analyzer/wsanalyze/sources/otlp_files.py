"""OTLP/JSON-lines files: the embedded wstrace store and OpenTelemetry Collector `file` output.

Reads a directory (recursively; hidden entries skipped) or one file. Each file may be

* plain JSON lines, one ``ExportTraceServiceRequest`` / ``TracesData`` per line
  (``.jsonl``, ``.json``, rotated backups such as ``traces-2022-09-14T05-02-14.173.json``);
* a zstd stream of such lines (``.zst``; the collector's native compression);
* the collector's legacy ``compression: zstd`` layout: each message a zstd frame
  preceded by its length as a 4-byte big-endian integer.

The layout is detected from the first bytes, not the name. Only regular files are
read: a FIFO, socket or device in the directory is skipped with a problem line
(opening a FIFO would wait for a writer forever). A conversation lookup
never parses a line that does not contain the id's bytes, so it costs little more
than a search through the files; files are spread over worker processes.
"""

from __future__ import annotations

import contextlib
import mmap
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path

import polars as pl

from wsanalyze.sources._files import open_regular, skipped_note, special_kind
from wsanalyze.sources._otlp.chunk import Chunk
from wsanalyze.sources._otlp.decompress import is_compressed
from wsanalyze.sources._otlp.frame import ns_to_datetime, rows_to_frame
from wsanalyze.sources._otlp.read import read_file
from wsanalyze.sources._otlp.scan import scan_conversation_ids
from wsanalyze.sources._otlp.selection import Selection
from wsanalyze.sources.base import Query, ReadResult, SourceError, register_path

_SUFFIXES = (".jsonl", ".json", ".ndjson", ".zst", ".zstd")
_PARALLEL_MIN_BYTES = 32 << 20  # below this, worker start-up costs more than it saves
_MTIME_SLACK_S = 3600
_RANGE_BYTES = 8 << 20  # full decodes hand out files in line-aligned ranges of this size


@dataclass(frozen=True)
class Resume:
    """Where to continue a file already covered up to ``offset`` (decoded bytes)."""

    offset: int
    line: int


def discover(path: Path, skipped: list[str] | None = None) -> list[Path]:
    """The trace files under ``path`` (or ``path`` itself), oldest first.

    FIFOs, sockets and devices are left out, each noted in ``skipped`` when given.
    """
    kind = special_kind(path)
    if kind is not None:
        if skipped is not None:
            skipped.append(skipped_note(path, kind))
        return []
    if path.is_file():
        return [path]
    found = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith("."):
                continue
            candidate = Path(root) / name
            kind = special_kind(candidate)
            if kind is not None:
                if skipped is not None:
                    skipped.append(skipped_note(candidate, kind))
                continue
            if _looks_like_traces(candidate):
                found.append(candidate)
    return sorted(found, key=lambda p: (_mtime_ns(p), str(p)))


def _looks_like_traces(path: Path) -> bool:
    name = path.name.lower()
    if any(name.endswith(s) or f"{s}." in name for s in _SUFFIXES):
        return True
    try:
        with open_regular(path) as fh:
            head = fh.read(8)
    except OSError:
        return False
    return head[:1] == b"{" or is_compressed(head)


def _mtime_ns(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def _read_one(args: tuple[str, Selection, int, int, bool, int | None]) -> Chunk:
    path, select, offset, line, complete_only, stop = args
    return read_file(
        path,
        select=select,
        start_offset=offset,
        start_line=line,
        complete_only=complete_only and stop is None,
        stop_offset=stop,
    )


def _ranges(path: str, start: int, line: int, target: int) -> list[tuple[int, int | None, int]]:
    """Line-aligned (start, stop, first line) ranges of a plain file, about ``target`` bytes each."""
    try:
        with open_regular(path) as fh:
            if is_compressed(fh.read(8)):  # a compressed stream is decoded whole
                return [(start, None, line)]
            size = os.fstat(fh.fileno()).st_size
            if size - start < 2 * target:
                return [(start, None, line)]
            out = []
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                pos = start
                while size - pos >= 2 * target:
                    cut = mm.find(b"\n", pos + target)
                    if cut == -1:
                        break
                    cut += 1
                    out.append((pos, cut, line))
                    line += mm[pos:cut].count(b"\n")
                    pos = cut
            out.append((pos, None, line))
            return out
    except OSError:
        return [(start, None, line)]


def read_files(
    paths: list[Path],
    *,
    conversation_id: str | None = None,
    resume: dict[str, Resume] | None = None,
    complete_only: bool = False,
    workers: int | None = None,
    parallel_min_bytes: int = _PARALLEL_MIN_BYTES,
    range_bytes: int = _RANGE_BYTES,
    message_ids: Iterable[str] = (),
    app_message_ids: Iterable[str] = (),
) -> Iterator[Chunk]:
    """Decode files (in worker processes when it pays); yield Chunks in file order.

    A full decode yields one Chunk per line-aligned range of a big file (all of a
    file's ranges in order); a targeted read (a conversation, message ids: see
    ``Selection``) yields one Chunk per file.
    """
    resume = resume or {}
    select = Selection(conversation_id, frozenset(message_ids), frozenset(app_message_ids))
    tasks = []
    for p in paths:
        r = resume.get(str(p))
        offset, line = (r.offset, r.line) if r else (0, 0)
        if not select:  # full decode: big files are split for the workers
            for start, stop, first in _ranges(str(p), offset, line, range_bytes):
                tasks.append((str(p), select, start, first, complete_only, stop))
        else:
            tasks.append((str(p), select, offset, line, complete_only, None))
    total = 0
    for p in paths:
        with contextlib.suppress(OSError):
            total += p.stat().st_size - (resume[str(p)].offset if str(p) in resume else 0)
    n = workers if workers is not None else min(os.cpu_count() or 1, len(tasks))
    forkable = "fork" in multiprocessing.get_all_start_methods()  # workers need no imports
    if n <= 1 or len(tasks) <= 1 or total < parallel_min_bytes or not forkable:
        for task in tasks:
            yield _read_one(task)
        return
    # Workers decode files; at most n+1 results wait here, so memory stays bounded.
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
        pending = deque()
        queue = iter(tasks)
        for task in islice(queue, n + 1):
            pending.append(pool.submit(_read_one, task))
        while pending:
            chunk = pending.popleft().result()
            nxt = next(queue, None)
            if nxt is not None:
                pending.append(pool.submit(_read_one, nxt))
            yield chunk


class OtlpFilesReader:
    """A directory or file of OTLP/JSON lines (plain, zstd, collector framed zstd)."""

    reads_message_ids = True  # Query.message_ids / app_message_ids are needle searches here

    def __init__(
        self,
        path: str | os.PathLike,
        resume: dict[str, Resume] | None = None,
        only: list[Path] | None = None,
    ):
        self.path = Path(path).resolve()
        self.resume = resume or {}
        self.only = only
        self.description = f"OTLP JSON files in {self.path}"

    def files(self, since: datetime | None = None, skipped: list[str] | None = None) -> list[Path]:
        """Files to read; with ``since``, those last written before it are skipped.

        FIFOs, sockets and devices are left out, each noted in ``skipped`` when given.
        """
        files = self.only if self.only is not None else discover(self.path, skipped)
        if since is not None:
            # A file last written before `since` holds only older spans; an hour of
            # slack covers producers whose clocks run ahead of this machine's.
            cutoff = int((since.timestamp() - _MTIME_SLACK_S) * 1e9)
            files = [f for f in files if _mtime_ns(f) >= cutoff]
        return files

    def read(self, query: Query) -> ReadResult:
        """Events of all files (only the selected spans when the query names ids)."""
        problems: list[str] = []
        files = self.files(query.since, problems)
        if not files and self.only is None and not discover(self.path):
            more = " and more" if len(problems) > 1 else ""
            skipped = f" ({problems[0]}{more})" if problems else ""
            raise SourceError(
                f"no trace files in {self.path} (looked for *.jsonl, *.json, *.zst and "
                f"collector exports): is wstrace writing there?{skipped}"
            )
        frames: list[pl.DataFrame] = []
        window_end: int | None = None
        pending: list[tuple] = []
        chunks = read_files(
            files,
            conversation_id=query.conversation_id,
            message_ids=query.message_ids,
            app_message_ids=query.app_message_ids,
            resume=self.resume,
        )
        for chunk in chunks:
            problems.extend(chunk.problems)
            if chunk.window_end and (window_end is None or chunk.window_end > window_end):
                window_end = chunk.window_end
            pending.extend(chunk.rows)
            if len(pending) >= 50_000:
                frames.append(rows_to_frame(pending, problems))
                pending = []
        if pending or not frames:
            frames.append(rows_to_frame(pending, problems))
        events = pl.concat(frames, how="vertical", rechunk=False).lazy()
        return ReadResult(
            events=events,
            problems=problems,
            sources=[str(f) for f in files],
            window_end=ns_to_datetime(window_end),
        )

    def conversation_ids(self) -> set[str]:
        """Every conversation id in the files, found by a bytes regex (no span decoding)."""
        ids: set[str] = set()
        for path in self.files():
            ids.update(scan_conversation_ids(str(path))[0])
        return ids


# Any existing file or directory not claimed by a reader of a more specific layout
# (a compacted store) is read as OTLP files: they are what wstrace writes.
register_path("OTLP files", lambda path: True, OtlpFilesReader, priority=-1)
