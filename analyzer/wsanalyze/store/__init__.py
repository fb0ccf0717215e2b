"""The compacted store: OTLP files ingested into Parquet sorted by conversation.

    from wsanalyze.store import ingest
    result = ingest("./.wstrace", ".wsanalyze", progress=lambda done, total, what: ...)

Layout of ``store_dir``::

    manifest.json          what was ingested: per file path, size, mtime, inode,
                           a fingerprint of its first bytes and the byte offset /
                           line reached; the parts; problems; the data window
    part-000001.parquet    events.SCHEMA rows sorted by (conversation_id, ts),
    part-000002.parquet    small row groups with min/max statistics, so a
    ...                    conversation lookup reads one row group per part

Incremental: unchanged files are skipped, grown files are read from where the
last ingest stopped (a rotated file keeps its inode, so it is recognised under its
new name), new files are read whole. ``load_events`` uses the store for a
source it covers and reads only data written since the last ingest from the raw
files; ``--traces STORE_DIR`` reads a store directly.
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
import os
import time
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from wsanalyze.events import SCHEMA, conform
from wsanalyze.sources.base import Query, ReadResult, SourceError, TraceReader
from wsanalyze.sources.otlp_files import (
    OtlpFilesReader,
    Resume,
    discover,
    ns_to_datetime,
    read_files,
    rows_to_frame,
)

__all__ = ["CompactedStore", "IngestResult", "ingest", "is_store", "reader_with_store"]

MANIFEST = "manifest.json"
ENV_STORE = "WSANALYZE_STORE"
DEFAULT_STORE = ".wsanalyze"
FORMAT = 2
PART_ROWS = 100_000  # rows per loose Parquet part (bounds ingest memory)
BUCKET_ROWS = 150_000  # rows per compacted bucket file (bounds compaction memory)
MAX_LOOSE_PARTS = 2  # more loose parts than this: compact into buckets
SLOTS = 1024  # conversations hash into this many slots; buckets are slot ranges
SLOT = "_slot"  # the slot column in the Parquet files (not part of the event table)
ROW_GROUP = 8_192  # small row groups: a lookup decodes little beyond its conversation
_FRAME_ROWS = 20_000  # Python rows turned into a polars frame at a time
_MAX_PROBLEMS = 1000

Progress = Callable[[int, int, str], None]


@dataclass
class IngestResult:
    """What one ingest did."""

    store_dir: str
    files_read: int = 0
    files_skipped: int = 0
    spans_added: int = 0
    spans_total: int = 0
    parts_written: int = 0
    bytes_read: int = 0
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def is_store(path: Path) -> bool:
    """Whether ``path`` is a compacted store directory."""
    return (Path(path) / MANIFEST).is_file()


def _fingerprint(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            return hashlib.blake2b(fh.read(256), digest_size=8).hexdigest()
    except OSError:
        return ""


def _load_manifest(store: Path) -> dict:
    try:
        manifest = json.loads((store / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise SourceError(f"unreadable store manifest {store / MANIFEST}: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise SourceError(f"store {store} has format {manifest.get('format')}; re-run ingest")
    return manifest


def _write_manifest(store: Path, manifest: dict) -> None:
    tmp = store / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, store / MANIFEST)


def _plan(files: list[Path], known: dict[str, dict]) -> tuple[dict[str, Resume], list[Path]]:
    """Resume points for files already (partly) ingested, and the files fully covered."""
    by_inode = {(e["dev"], e["inode"]): e for e in known.values()}
    resume: dict[str, Resume] = {}
    covered: list[Path] = []
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        entry = known.get(str(f))
        if entry is None or (entry["dev"], entry["inode"]) != (st.st_dev, st.st_ino):
            entry = by_inode.get((st.st_dev, st.st_ino))  # renamed by rotation
        if entry is None or st.st_size < entry["size"] or _fingerprint(f) != entry["head"]:
            continue
        unchanged = st.st_size == entry["size"] and st.st_mtime_ns == entry["mtime_ns"]
        if unchanged and entry.get("complete", True):
            covered.append(f)
        else:
            resume[str(f)] = Resume(entry["offset"], entry["line"])
    return resume, covered


def ingest(
    traces_source: str | os.PathLike | None = None,
    store_dir: str | os.PathLike = DEFAULT_STORE,
    *,
    progress: Progress | None = None,
) -> IngestResult:
    """Compact the OTLP files of ``traces_source`` into ``store_dir``, incrementally.

    ``progress(done_bytes, total_bytes, current_file)`` is called as files finish.
    """
    from wsanalyze.sources.base import default_traces_dir

    started = time.perf_counter()
    source = Path(traces_source) if traces_source is not None else default_traces_dir()
    if not source.exists():
        raise SourceError(f"no traces at {source.resolve()}: nothing to ingest")
    source = source.resolve()
    store = Path(store_dir)
    store.mkdir(parents=True, exist_ok=True)
    if is_store(store):
        manifest = _load_manifest(store)
        if manifest.get("source") != str(source):
            raise SourceError(
                f"store {store} holds {manifest.get('source')}, not {source}; "
                f"use another --store directory"
            )
    else:
        manifest = {"format": FORMAT, "source": str(source), "files": {}, "parts": [],
                    "spans": 0, "window_end_ns": None, "problems": []}  # fmt: skip
    result = IngestResult(store_dir=str(store))
    files = discover(source)
    resume, covered = _plan(files, manifest["files"])
    todo = [f for f in files if f not in set(covered)]
    result.files_skipped = len(covered)
    sizes = {str(f): max(f.stat().st_size - (resume[str(f)].offset if str(f) in resume else 0), 0)
             for f in todo}  # fmt: skip
    total_bytes = sum(sizes.values())
    done_bytes = 0
    new_entries: dict[str, dict] = {str(f): _entry_for(f, manifest["files"]) for f in covered}
    writer = _PartWriter(store, manifest)
    window = manifest.get("window_end_ns")
    seen: set[str] = set()
    for chunk in read_files(todo, resume=resume, complete_only=True):
        result.problems.extend(chunk.problems)
        writer.add(chunk.rows)
        result.spans_added += len(chunk.rows)
        chunk.rows = []
        if chunk.window_end and (window is None or chunk.window_end > window):
            window = chunk.window_end
        path = Path(chunk.path)
        try:
            st = path.stat()
        except OSError:  # gone since it was read: its rows stay, nothing to resume
            continue
        head = _fingerprint(path)
        prev = resume.get(chunk.path)
        # The size recorded is the one the reader saw: growth since then is picked up next time.
        new_entries[chunk.path] = {
            "size": chunk.file_size, "mtime_ns": st.st_mtime_ns, "dev": st.st_dev,
            "inode": st.st_ino, "head": head, "offset": chunk.end_offset,
            "line": chunk.end_line if chunk.end_offset else (prev.line if prev else 0),
            "complete": chunk.end_offset >= chunk.decoded_size,
        }  # fmt: skip
        if chunk.path not in seen:
            seen.add(chunk.path)
            result.files_read += 1
        done_bytes += chunk.bytes_read
        result.bytes_read += chunk.bytes_read
        if progress is not None:
            progress(done_bytes, total_bytes, chunk.path)
    writer.close()
    if progress is not None and len(manifest["parts"]) > MAX_LOOSE_PARTS:  # may compact
        progress(total_bytes, total_bytes, "compacting")
    result.parts_written = writer.written + _compact(store, manifest)
    manifest["files"] = new_entries
    manifest["spans"] = manifest.get("spans", 0) + result.spans_added
    manifest["window_end_ns"] = window
    manifest["problems"] = (manifest.get("problems", []) + result.problems)[-_MAX_PROBLEMS:]
    _write_manifest(store, manifest)
    result.spans_total = manifest["spans"]
    result.seconds = time.perf_counter() - started
    return result


def _entry_for(path: Path, known: dict[str, dict]) -> dict:
    st = path.stat()
    entry = known.get(str(path))
    if entry is None or (entry["dev"], entry["inode"]) != (st.st_dev, st.st_ino):
        entry = next(e for e in known.values() if (e["dev"], e["inode"]) == (st.st_dev, st.st_ino))
    return dict(entry)


def slot_of(conversation_id: str) -> int:
    """The stable hash slot (0..SLOTS-1) a conversation's rows are filed under."""
    return zlib.crc32(conversation_id.encode()) % SLOTS


def _with_slots(frame: pl.DataFrame) -> pl.DataFrame:
    ids = frame["conversation_id"].unique().drop_nulls()
    slots = pl.Series([slot_of(x) for x in ids], dtype=pl.Int16)
    slot = pl.col("conversation_id").replace_strict(ids, slots, default=-1, return_dtype=pl.Int16)
    return frame.with_columns(slot.alias(SLOT))


def _write_part(store: Path, name: str, frame: pl.DataFrame) -> dict:
    """Write rows sorted by (slot, conversation, ts); small row groups with statistics."""
    frame = frame.sort([SLOT, "conversation_id", "ts"], nulls_last=True)
    tmp = store / (name + ".tmp")
    frame.write_parquet(tmp, compression="zstd", statistics=True, row_group_size=ROW_GROUP)
    os.replace(tmp, store / name)
    slots = frame[SLOT]
    return {"name": name, "rows": frame.height, "slots": [int(slots.min()), int(slots.max())]}


class _PartWriter:
    """Accumulates rows and writes sorted Parquet parts of at most PART_ROWS rows."""

    def __init__(self, store: Path, manifest: dict):
        self.store, self.manifest = store, manifest
        self.rows: list[tuple] = []
        self.frames: list[pl.DataFrame] = []
        self.count = 0
        self.written = 0

    def add(self, rows: list[tuple]) -> None:
        for start in range(0, len(rows), _FRAME_ROWS):
            self.rows.extend(rows[start : start + _FRAME_ROWS])
            if len(self.rows) >= _FRAME_ROWS:
                self._to_frame()

    def _to_frame(self) -> None:
        if self.rows:
            frame = rows_to_frame(self.rows)
            self.rows = []
            self.frames.append(_with_slots(frame))
            self.count += frame.height
        if self.count >= PART_ROWS:
            self._write()

    def _write(self) -> None:
        if not self.frames:
            return
        frame = pl.concat(self.frames)
        self.frames, self.count = [], 0
        name = f"part-{self.manifest.get('next_part', 1):06d}.parquet"
        self.manifest["next_part"] = self.manifest.get("next_part", 1) + 1
        self.manifest["parts"].append(_write_part(self.store, name, frame))
        self.written += 1

    def close(self) -> None:
        self._to_frame()
        self._write()


def _compact(store: Path, manifest: dict) -> int:
    """Rewrite loose parts into one file per slot range (~BUCKET_ROWS rows each).

    Each pass reads only the row groups of its slot range (parts are sorted by slot),
    so memory stays at about one bucket. Everything is rewritten, so once buckets
    exist small increments stay loose until they add up (a tenth of the store, or
    many parts). Returns the number of files written.
    """
    parts = manifest["parts"]
    loose = [p for p in parts if not p.get("bucket")]
    total = sum(p["rows"] for p in parts)
    loose_rows = sum(p["rows"] for p in loose)
    if len(loose) <= MAX_LOOSE_PARTS:
        return 0
    if len(loose) < len(parts) and loose_rows * 10 < total and len(loose) <= 4 * MAX_LOOSE_PARTS:
        return 0
    buckets = max(1, -(-total // BUCKET_ROWS))
    paths = [store / p["name"] for p in parts]
    scan = pl.scan_parquet(paths)
    written = []
    generation = manifest.get("generation", 0) + 1
    for b in range(buckets):
        lo = -1 if b == 0 else b * SLOTS // buckets
        hi = (b + 1) * SLOTS // buckets  # exclusive
        name = f"bucket-{generation:04d}-{b:04d}.parquet"
        tmp = store / (name + ".tmp")
        (
            scan.filter((pl.col(SLOT) >= lo) & (pl.col(SLOT) < hi))
            .sort([SLOT, "conversation_id", "ts"], nulls_last=True)
            .sink_parquet(tmp, compression="zstd", statistics=True, row_group_size=ROW_GROUP)
        )
        os.replace(tmp, store / name)
        rows = pl.scan_parquet(store / name).select(pl.len()).collect().item()
        written.append({"name": name, "rows": rows, "slots": [lo, hi - 1], "bucket": True})
    manifest["parts"] = written
    manifest["generation"] = generation
    for p in paths:
        p.unlink(missing_ok=True)
    return len(written)


class CompactedStore:
    """A store directory written by ``ingest``: a TraceReader over its Parquet parts."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.manifest = _load_manifest(self.path)
        self.description = f"compacted store {self.path} (of {self.manifest.get('source')})"

    reads_message_ids = True  # Query.message_ids / app_message_ids are column filters here

    def _parts(self, slot: int | Collection[int] | None = None) -> list[Path]:
        slots = [slot] if isinstance(slot, int) else slot
        return [
            self.path / p["name"]
            for p in self.manifest["parts"]
            if slots is None or any(p["slots"][0] <= s <= p["slots"][1] for s in slots)
        ]

    def scan(self, slot: int | Collection[int] | None = None) -> pl.LazyFrame:
        """Events of the store (of some slots' files), lazily; filters reach row-group stats."""
        parts = self._parts(slot)
        if not parts:
            return conform(pl.LazyFrame(schema=SCHEMA))
        return pl.scan_parquet(parts)

    def read(self, query: Query) -> ReadResult:
        """Events from the store; a query by conversation or message ids reads few row groups.

        A conversation's rows are filed under its slot. Rows of no conversation are
        filed under slot -1, which sorts first: untagged rows of some messages
        (``Query.message_ids``) are read from the first bucket's first row groups.
        An app message id may be anywhere, so that filter scans every part (two columns).
        """
        slots = _slots_of(query)
        predicate = query.predicate()
        parts = self._parts(slots)
        events = self.scan(slots)
        if parts and slots is not None:
            # equalities, not is_in: they reach the row-group statistics of the slot column
            on_slot = [pl.col(SLOT) == s for s in sorted(slots)]
            events = events.filter(functools.reduce(operator.or_, on_slot))
        if predicate is not None:
            # Filtered before conform (its casts would keep the filter from the row-group
            # statistics); a store written by an older version may lack a filtered column.
            present = set(events.collect_schema().names())
            events = events.with_columns(
                pl.lit(None, dtype=SCHEMA[c]).alias(c)
                for c in ("conversation_id", "message_id", "app_message_id")
                if c not in present
            ).filter(predicate)
        if parts:
            # conform, not select: a store compacted by an older version lacks newer columns
            events = conform(events)
        return ReadResult(
            events=events,
            problems=list(self.manifest.get("problems", [])),
            sources=[str(p) for p in parts],
            window_end=ns_to_datetime(self.manifest.get("window_end_ns")),
        )


def _slots_of(query: Query) -> set[int] | None:
    """The slots holding every row ``query`` selects; None when it may be any slot."""
    if query.app_message_ids or not (query.conversation_id is not None or query.message_ids):
        return None
    slots = {-1} if query.message_ids else set()
    if query.conversation_id is not None:
        slots.add(slot_of(query.conversation_id))
    return slots


class _StoreAndTail:
    """A compacted store plus whatever its raw source gained since the last ingest."""

    def __init__(self, store: CompactedStore, raw: Path):
        self.store, self.raw = store, raw
        self.description = f"{store.description} + new data in {raw}"

    reads_message_ids = True  # both halves answer Query.message_ids / app_message_ids

    def tail_files(self) -> list[Path]:
        """Raw files with data the store does not hold yet."""
        files = discover(self.raw)
        _, covered = _plan(files, self.store.manifest["files"])
        return [f for f in files if f not in set(covered)]

    def read(self, query: Query) -> ReadResult:
        base = self.store.read(query)
        files = discover(self.raw)
        resume, covered = _plan(files, self.store.manifest["files"])
        todo = [f for f in files if f not in set(covered)]
        if not todo:
            return base
        tail = OtlpFilesReader(self.raw, resume=resume, only=todo)
        extra = tail.read(query)
        window = max((w for w in (base.window_end, extra.window_end) if w), default=None)
        return ReadResult(
            events=pl.concat([base.events, extra.events], how="vertical"),
            problems=base.problems + extra.problems,
            sources=base.sources + extra.sources,
            window_end=window,
        )


def default_store_dir() -> Path:
    """Where ``load_events`` looks for a store: ``$WSANALYZE_STORE``, else ``./.wsanalyze``."""
    return Path(os.environ.get(ENV_STORE) or DEFAULT_STORE)


def reader_with_store(reader: TraceReader) -> TraceReader:
    """``reader``, or the compacted store covering its directory plus the newer raw data."""
    if not isinstance(reader, OtlpFilesReader) or reader.resume or reader.only is not None:
        return reader
    store_dir = default_store_dir()
    if not is_store(store_dir):
        return reader
    try:
        store = CompactedStore(store_dir)
    except SourceError:
        return reader
    if store.manifest.get("source") != str(reader.path.resolve()):
        return reader
    return _StoreAndTail(store, reader.path)
