"""The compacted store's layout: its manifest, which raw files it covers, its hash slots.

Shared by the writer (``ingest``) and the readers, so neither imports the other.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from pathlib import Path

from wsanalyze.sources.base import SourceError
from wsanalyze.sources.otlp_files import Resume

MANIFEST = "manifest.json"
ENV_STORE = "WSANALYZE_STORE"
DEFAULT_STORE = ".wsanalyze"
FORMAT = 2
SLOTS = 1024  # conversations hash into this many slots; buckets are slot ranges
SLOT = "_slot"  # the slot column in the Parquet files (not part of the event table)


def is_store(path: Path) -> bool:
    """Whether ``path`` is a compacted store directory."""
    return (Path(path) / MANIFEST).is_file()


def default_store_dir() -> Path:
    """Where ``load_events`` looks for a store: ``$WSANALYZE_STORE``, else ``./.wsanalyze``."""
    return Path(os.environ.get(ENV_STORE) or DEFAULT_STORE)


def slot_of(conversation_id: str) -> int:
    """The stable hash slot (0..SLOTS-1) a conversation's rows are filed under."""
    return zlib.crc32(conversation_id.encode()) % SLOTS


def fingerprint(path: Path) -> str:
    """A hash of a file's first bytes: tells a rotated-in new file from the one it replaced."""
    try:
        with open(path, "rb") as fh:
            return hashlib.blake2b(fh.read(256), digest_size=8).hexdigest()
    except OSError:
        return ""


def load_manifest(store: Path) -> dict:
    """The store's manifest; SourceError when unreadable or of another format."""
    try:
        manifest = json.loads((store / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise SourceError(f"unreadable store manifest {store / MANIFEST}: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise SourceError(f"store {store} has format {manifest.get('format')}; re-run ingest")
    return manifest


def write_manifest(store: Path, manifest: dict) -> None:
    """Replace the manifest atomically (a reader never sees half of it)."""
    tmp = store / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, store / MANIFEST)


def plan(files: list[Path], known: dict[str, dict]) -> tuple[dict[str, Resume], list[Path]]:
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
        if entry is None or st.st_size < entry["size"] or fingerprint(f) != entry["head"]:
            continue
        unchanged = st.st_size == entry["size"] and st.st_mtime_ns == entry["mtime_ns"]
        if unchanged and entry.get("complete", True):
            covered.append(f)
        else:
            resume[str(f)] = Resume(entry["offset"], entry["line"])
    return resume, covered
