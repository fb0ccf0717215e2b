"""Ingest: OTLP files → Parquet parts sorted by (slot, conversation, ts), then compaction.

``ingest`` reads only what the manifest says is new (files it has not seen,
the grown part of files it has), writes loose parts of at most ``PART_ROWS`` rows
and, once there are more than ``MAX_LOOSE_PARTS`` of them, rewrites the store
into one file per slot range. The constants below bound memory; tests lower them
to exercise compaction on small data.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from wsanalyze.sources._otlp.frame import rows_to_frame
from wsanalyze.sources.base import SourceError, default_traces_dir
from wsanalyze.sources.otlp_files import discover, read_files
from wsanalyze.sources.store.manifest import (
    DEFAULT_STORE,
    FORMAT,
    SLOT,
    SLOTS,
    fingerprint,
    is_store,
    load_manifest,
    plan,
    slot_of,
    write_manifest,
)
from wsanalyze.sources.store.verify import STAT, part_stat, trusted, unreadable

PART_ROWS = 100_000  # rows per loose Parquet part (bounds ingest memory)
BUCKET_ROWS = 150_000  # rows per compacted bucket file (bounds compaction memory)
MAX_LOOSE_PARTS = 2  # more loose parts than this: compact into buckets
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


def ingest(
    traces_source: str | os.PathLike | None = None,
    store_dir: str | os.PathLike = DEFAULT_STORE,
    *,
    progress: Progress | None = None,
) -> IngestResult:
    """Compact the OTLP files of ``traces_source`` into ``store_dir``, incrementally.

    ``progress(done_bytes, total_bytes, current_file)`` is called as files finish.
    """
    started = time.perf_counter()
    source = Path(traces_source) if traces_source is not None else default_traces_dir()
    if not source.exists():
        raise SourceError(f"no traces at {source.resolve()}: nothing to ingest")
    source = source.resolve()
    store = Path(store_dir)
    store.mkdir(parents=True, exist_ok=True)
    if is_store(store):
        manifest = load_manifest(store)
        if manifest.get("source") != str(source):
            raise SourceError(
                f"store {store} holds {manifest.get('source')}, not {source}; "
                f"use another --store directory"
            )
        _check_parts(store, manifest)
    else:
        manifest = {"format": FORMAT, "source": str(source), "files": {}, "parts": [],
                    "spans": 0, "window_end_ns": None, "problems": []}  # fmt: skip
    result = IngestResult(store_dir=str(store))
    skipped: list[str] = []  # special files: said now, not kept in the manifest
    files = discover(source, skipped)
    resume, covered = plan(files, manifest["files"])
    todo = [f for f in files if f not in set(covered)]
    result.files_skipped = len(covered)
    sizes = {str(f): max(f.stat().st_size - (resume[str(f)].offset if str(f) in resume else 0), 0)
             for f in todo}  # fmt: skip
    total_bytes = sum(sizes.values())
    done_bytes = 0
    new_entries: dict[str, dict] = {str(f): _entry_for(f, manifest["files"]) for f in covered}
    writer = _PartWriter(store, manifest, result.problems)
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
        head = fingerprint(path)
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
    write_manifest(store, manifest)
    result.problems = skipped + result.problems
    result.spans_total = manifest["spans"]
    result.seconds = time.perf_counter() - started
    return result


def _check_parts(store: Path, manifest: dict) -> None:
    """Stamp the parts this ingest will build on; SourceError if one cannot be read.

    Compaction reads every part, and adding to a store with a damaged part would only
    spread the damage. A part without a ``stat`` (an older store, a copied one) is
    decoded in a child process first (``verify``), then stamped as known good.
    """
    parts = {store / p["name"]: p for p in manifest["parts"]}
    unsure = [path for path, entry in parts.items() if not trusted(entry, path)]
    bad = unreadable(unsure) if unsure else {}
    if bad:
        path, why = next(iter(bad.items()))
        raise SourceError(f"store part {path} cannot be read ({why}); ingest into a new store")
    for path in unsure:
        parts[path][STAT] = part_stat(path)


def _entry_for(path: Path, known: dict[str, dict]) -> dict:
    """The manifest entry of a covered file (under its old name when rotation renamed it)."""
    st = path.stat()
    entry = known.get(str(path))
    if entry is None or (entry["dev"], entry["inode"]) != (st.st_dev, st.st_ino):
        entry = next(e for e in known.values() if (e["dev"], e["inode"]) == (st.st_dev, st.st_ino))
    return dict(entry)


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
    return {"name": name, "rows": frame.height, "slots": [int(slots.min()), int(slots.max())],
            STAT: part_stat(store / name)}  # fmt: skip


class _PartWriter:
    """Accumulates rows and writes sorted Parquet parts of at most PART_ROWS rows."""

    def __init__(self, store: Path, manifest: dict, problems: list[str]):
        self.store, self.manifest, self.problems = store, manifest, problems
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
            frame = rows_to_frame(self.rows, self.problems)
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
        written.append({"name": name, "rows": rows, "slots": [lo, hi - 1], "bucket": True,
                        STAT: part_stat(store / name)})  # fmt: skip
    manifest["parts"] = written
    manifest["generation"] = generation
    for p in paths:
        p.unlink(missing_ok=True)
    return len(written)
