"""The compacted store's layout: its manifest, which raw files it covers, its hash slots.

Shared by the writer (``ingest``) and the readers, so neither imports the other.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from pathlib import Path

from wsanalyze.sources._files import open_regular
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
        with open_regular(path) as fh:
            return hashlib.blake2b(fh.read(256), digest_size=8).hexdigest()
    except OSError:
        return ""


def load_manifest(store: Path) -> dict:
    """The store's manifest; SourceError when unreadable or of another format."""
    try:
        manifest = json.loads((store / MANIFEST).read_text())
    except (OSError, ValueError, RecursionError) as exc:  # gone, not JSON, nested too deep
        raise SourceError(f"unreadable store manifest {store / MANIFEST}: {exc}") from None
    if not isinstance(manifest, dict):
        raise SourceError(f"unreadable store manifest {store / MANIFEST}: not a JSON object")
    if manifest.get("format") != FORMAT:
        raise SourceError(f"store {store} has format {manifest.get('format')!a}; re-run ingest")
    manifest.setdefault("parts", [])
    manifest.setdefault("files", {})
    damage = _damage(manifest)
    if damage:
        raise SourceError(
            f"damaged store manifest {store / MANIFEST}: {damage}; ingest into a new store"
        )
    return manifest


_FILE_KEYS = {"size": int, "mtime_ns": int, "dev": int, "inode": int, "head": str,
              "offset": int, "line": int}  # fmt: skip


def _damage(manifest: dict) -> str | None:
    """What in a manifest the store code could not use (None when nothing)."""
    parts, files = manifest.get("parts"), manifest.get("files")
    if not isinstance(parts, list) or not isinstance(files, dict):
        return "no parts list or files map"
    for part in parts:
        name = part.get("name") if isinstance(part, dict) else None
        slots = part.get("slots") if isinstance(part, dict) else None
        if not isinstance(name, str) or not name or Path(name).name != name:
            return f"part {str(part)[:60]!a} has no plain file name"
        if not (isinstance(slots, list) and len(slots) == 2 and all(_is_int(s) for s in slots)):
            return f"part {name!a} has no slot range"
    for path, entry in files.items():
        if not isinstance(entry, dict) or any(
            not isinstance(entry.get(key), kind) for key, kind in _FILE_KEYS.items()
        ):
            return f"the entry of {str(path)[:80]!a} is incomplete"
    problems = manifest.get("problems", [])
    if not isinstance(problems, list) or not all(
        isinstance(p, str) and len(p.splitlines()) <= 1 for p in problems
    ):
        return "problems is not a list of lines"
    window = manifest.get("window_end_ns")
    if window is not None and not _is_int(window):
        return "window_end_ns is not a number"
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
