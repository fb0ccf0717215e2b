"""Reading the compacted store: alone (``--traces STORE_DIR``) or with its source's newer files.

A conversation's rows are filed under its hash slot, so a lookup reads the few
row groups of that slot; ``reader_with_store`` answers ``load_events`` from the
store when one covers the directory asked for, plus whatever was written there
since the last ingest.

A part costs only itself: one that is missing, not a regular file or not Parquet
is left out with a problem line, and a column of another type than events.SCHEMA's
(a store written by another version, or tampered with) is cast where the values
allow (a value that does not fit becomes null) and read as nulls where they don't.
"""

from __future__ import annotations

import functools
import operator
import os
from collections.abc import Collection
from pathlib import Path

import polars as pl

from wsanalyze.events import SCHEMA, empty_events
from wsanalyze.sources._files import special_kind
from wsanalyze.sources._otlp.frame import ns_to_datetime
from wsanalyze.sources.base import Query, ReadResult, SourceError, TraceReader, register_path
from wsanalyze.sources.otlp_files import OtlpFilesReader, discover
from wsanalyze.sources.store.manifest import (
    SLOT,
    default_store_dir,
    is_store,
    load_manifest,
    plan,
    slot_of,
)


class CompactedStore:
    """A store directory written by ``ingest``: a TraceReader over its Parquet parts."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.manifest = load_manifest(self.path)
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
        return _concat([_part_events(p, Query(), None, []) for p in self._parts(slot)])

    def read(self, query: Query) -> ReadResult:
        """Events from the store; a query by conversation or message ids reads few row groups.

        A conversation's rows are filed under its slot. Rows of no conversation are
        filed under slot -1, which sorts first: untagged rows of some messages
        (``Query.message_ids``) are read from the first bucket's first row groups.
        An app message id may be anywhere, so that filter scans every part (two columns).
        """
        slots = _slots_of(query)
        problems = list(self.manifest.get("problems", []))
        parts = self._parts(slots)
        return ReadResult(
            events=_concat([_part_events(p, query, slots, problems) for p in parts]),
            problems=problems,
            sources=[str(p) for p in parts],
            window_end=ns_to_datetime(self.manifest.get("window_end_ns")),
        )

    def conversation_ids(self) -> set[str]:
        """Every conversation id in the store, from its conversation_id column alone."""
        column = self.read(Query()).events.select(pl.col("conversation_id").unique())
        return {x for x in column.collect()["conversation_id"] if x is not None}


_FILTERED = ("conversation_id", "message_id", "app_message_id")


def _concat(frames: list[pl.LazyFrame | None]) -> pl.LazyFrame:
    usable = [f for f in frames if f is not None]
    return pl.concat(usable, how="vertical") if usable else empty_events()


def _part_events(
    part: Path, query: Query, slots: Collection[int] | None, problems: list[str]
) -> pl.LazyFrame | None:
    """One part's rows the query selects, in events.SCHEMA; None (and a problem) if unusable.

    Filters come first, on the stored columns, so they reach the row-group statistics;
    the casts to the schema after them.
    """
    kind = special_kind(part)
    if kind is not None:
        problems.append(f"{part}: {kind}, not a regular file; part skipped")
        return None
    try:
        stored = dict(pl.read_parquet_schema(part))
    except _FAILURES as exc:  # missing, unreadable, not Parquet
        problems.append(f"{part}: unreadable store part ({_first_line(exc)}); part skipped")
        return None
    selects = slots is not None or query.predicate() is not None
    damage = None if selects else _damage(part)
    if damage is not None:
        problems.append(f"{part}: damaged store part ({damage}); part skipped")
        return None
    events = pl.scan_parquet(part)
    if slots is not None and stored.get(SLOT, pl.Null).is_integer():
        # equalities, not is_in: they reach the row-group statistics of the slot column
        on_slot = [pl.col(SLOT) == s for s in sorted(slots)]
        events = events.filter(functools.reduce(operator.or_, on_slot))
    predicate = query.predicate()
    if predicate is not None:
        # A filtered column missing (a store of an older version) or of another type
        # (a tampered one) is null here, so the filter never fails.
        for c in _FILTERED:
            if stored.get(c) not in (None, pl.String):
                problems.append(f"{part}: column {c} holds {stored[c]}, not String; read as empty")
        events = events.with_columns(
            pl.lit(None, dtype=pl.String).alias(c) for c in _FILTERED if stored.get(c) != pl.String
        ).filter(predicate)
        stored.update({c: pl.String for c in _FILTERED})
    events = events.select(_as_schema(part, stored, problems))
    if not selects:
        return events
    # A lookup reads a few row groups: read them now, so that a damaged one costs this
    # part here rather than failing whoever collects the events later.
    try:
        return events.collect().lazy()
    except _FAILURES as exc:
        problems.append(f"{part}: damaged store part ({_first_line(exc)}); part skipped")
        return None


# What reading a damaged Parquet file raises: polars errors, and the panics of its Rust
# decoder (PanicException derives from BaseException, so `except Exception` misses it).
_FAILURES = (Exception, pl.exceptions.PanicException)
# (path, size, mtime, inode) of a part -> why its pages do not decode (None: they do)
_CHECKED: dict[tuple, str | None] = {}


def _damage(part: Path) -> str | None:
    """Why ``part``'s pages do not decode (None when all do), checked once per file version.

    The footer (schema, row groups) was read already; a page damaged inside would fail
    whoever collects the events later, so a full read decodes every page once first
    (streaming, a few MiB at a time: about the cost of one more scan).
    """
    try:
        st = part.stat()
    except OSError as exc:
        return exc.strerror or str(exc)
    key = (str(part), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _CHECKED:
        try:
            pl.scan_parquet(part).select(pl.all().null_count()).collect(engine="streaming")
            _CHECKED[key] = None
        except _FAILURES as exc:
            _CHECKED[key] = _first_line(exc)
    return _CHECKED[key]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:120] if text else type(exc).__name__


def _as_schema(part: Path, stored: dict, problems: list[str]) -> list[pl.Expr]:
    """events.SCHEMA's columns from a part's: cast where the types allow, else nulls."""
    columns = []
    for name, dtype in SCHEMA.items():
        have = stored.get(name)
        if have == dtype:
            columns.append(pl.col(name))
        elif have is not None and _castable(have, dtype):
            columns.append(pl.col(name).cast(dtype, strict=False))  # misfits become null
        else:
            if have is not None:
                problems.append(f"{part}: column {name} holds {have}, not {dtype}; read as empty")
            columns.append(pl.lit(None, dtype=dtype).alias(name))
    return columns


def _castable(have: pl.DataType, want: pl.DataType) -> bool:
    """Whether values of ``have`` mean the same as ``want`` values (a cast may still null some)."""
    if have == pl.Null or (have.is_numeric() and want.is_numeric()):
        return True
    if isinstance(have, pl.Datetime) and isinstance(want, pl.Datetime):
        return True
    if isinstance(have, pl.List) and isinstance(want, pl.List):
        return have.inner == want.inner or _castable(have.inner, want.inner)
    return False


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
        _, covered = plan(files, self.store.manifest["files"])
        return [f for f in files if f not in set(covered)]

    def read(self, query: Query) -> ReadResult:
        base = self.store.read(query)
        skipped: list[str] = []
        files = discover(self.raw, skipped)
        base.problems.extend(skipped)
        resume, covered = plan(files, self.store.manifest["files"])
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

    def conversation_ids(self) -> set[str]:
        """The store's conversation ids and those of the raw files it does not cover yet."""
        tail = OtlpFilesReader(self.raw, only=self.tail_files())
        return self.store.conversation_ids() | tail.conversation_ids()


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


# Asked before the catch-all OTLP files reader: a store directory holds Parquet parts.
register_path("compacted store", lambda path: path.is_dir() and is_store(path), CompactedStore)
