"""Reading the compacted store: alone (``--traces STORE_DIR``) or with its source's newer files.

A conversation's rows are filed under its hash slot, so a lookup reads the few
row groups of that slot; ``reader_with_store`` answers ``load_events`` from the
store when one covers the directory asked for, plus whatever was written there
since the last ingest.

A part costs only itself: one that is missing, not a regular file, not Parquet or
damaged is left out with a problem line (a part this machine's ingest did not write,
or that changed since, is first decoded in a child process: ``verify``, since a
crafted Parquet file can abort the process that decodes it), and a column of
another type than events.SCHEMA's
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
from wsanalyze.sources.store.verify import trusted, unreadable


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

    def _usable(self, parts: list[Path], problems: list[str]) -> list[Path]:
        """The parts that can be read here; each other one named in ``problems``.

        Special files are left out unopened; parts this machine's ingest did not write
        (or that changed since) are decoded in a child process first (``verify``).
        """
        entries = {self.path / p["name"]: p for p in self.manifest["parts"]}
        regular = []
        for part in parts:
            kind = special_kind(part)
            if kind is None:
                regular.append(part)
            else:
                problems.append(f"{part}: {kind}, not a regular file; part skipped")
        unsure = [p for p in regular if not trusted(entries.get(p, {}), p)]
        bad = unreadable(unsure) if unsure else {}
        for part, why in bad.items():
            problems.append(f"{part}: unreadable store part ({why}); part skipped")
        return [p for p in regular if p not in bad]

    def scan(self, slot: int | Collection[int] | None = None) -> pl.LazyFrame:
        """Events of the store (of some slots' files), lazily; filters reach row-group stats."""
        parts = self._usable(self._parts(slot), [])
        return _concat([_part_events(p, Query(), None, []) for p in parts])

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
        usable = self._usable(parts, problems)
        return ReadResult(
            events=_concat([_part_events(p, query, slots, problems) for p in usable]),
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
    """One usable part's rows the query selects, in events.SCHEMA (None, and a problem, if gone).

    Filters come first, on the stored columns, so they reach the row-group statistics;
    the casts to the schema after them.
    """
    try:
        stored = dict(pl.read_parquet_schema(part))
    except Exception as exc:  # gone since it was checked
        first = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        problems.append(f"{part}: unreadable store part ({first}); part skipped")
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
    return events.select(_as_schema(part, stored, problems))


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
