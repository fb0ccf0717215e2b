"""The compacted store: OTLP files ingested into Parquet sorted by conversation.

    from wsanalyze.sources.store import ingest
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

Modules: ``manifest`` (layout, what is covered, slots), ``writer`` (``ingest``
and compaction), ``reader`` (``CompactedStore``, ``reader_with_store``).
"""

from __future__ import annotations

from wsanalyze.sources.store.manifest import (
    DEFAULT_STORE,
    ENV_STORE,
    default_store_dir,
    is_store,
    slot_of,
)
from wsanalyze.sources.store.reader import CompactedStore, reader_with_store
from wsanalyze.sources.store.writer import IngestResult, ingest

__all__ = [
    "DEFAULT_STORE",
    "ENV_STORE",
    "CompactedStore",
    "IngestResult",
    "default_store_dir",
    "ingest",
    "is_store",
    "reader_with_store",
    "slot_of",
]
