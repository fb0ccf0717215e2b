"""Whether a store's Parquet parts can be read, decided without risking this process.

A damaged or crafted Parquet file does not always fail with an exception: polars'
decoder may panic, or ask for an allocation of exabytes, which aborts the whole
process (``memory allocation of 2305843009213693944 bytes failed``). So a part
this machine's ``ingest`` did not write, or that changed since, is decoded once in a
child process first; only the parts that decode there are read here.

``ingest`` records each part's ``stat`` (size, mtime, inode, device) in the manifest
when it writes it: a part whose file still has that stat is the one written here and
is read without the check. A store copied from elsewhere, or tampered with, pays one
child process per command (about the time of one more scan of its parts). A part
rewritten in place with its size and mtime restored passes for the one ingest wrote:
the check keeps out copied, damaged and crafted files, not someone who can rewrite
the store's files in place.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

STAT = "stat"  # the manifest key of a part's [size, mtime_ns, inode, device]
_TIMEOUT_S = 60.0
_TIMEOUT_PER_MB_S = 2.0

# Decodes each part named on the command line; one line per part: "ok" or "bad <why>".
_CHILD = """
import sys
import polars as pl
for path in sys.argv[1:]:
    try:
        pl.read_parquet_schema(path)
        pl.scan_parquet(path).select(pl.all().null_count()).collect()
        print("ok", flush=True)
    except BaseException as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        print("bad " + text[:120], flush=True)
"""

# (path, size, mtime, inode, device) -> why the part cannot be read (None: it can)
_VERDICTS: dict[tuple, str | None] = {}


def part_stat(path: Path) -> list[int] | None:
    """[size, mtime_ns, inode, device] of a part's file; None when it cannot be stat'ed."""
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev]


def trusted(entry: dict, path: Path) -> bool:
    """Whether ``path`` is still the file this machine's ingest wrote for ``entry``."""
    recorded = entry.get(STAT)
    return isinstance(recorded, list) and recorded == part_stat(path)


def unreadable(paths: list[Path]) -> dict[Path, str]:
    """The parts among ``paths`` that cannot be decoded, each with why (one line).

    Decoded in a child process (one for all of them, another after one crashes it);
    each file version is decided once per process.
    """
    todo = []
    for path in paths:
        stat = part_stat(path)
        if stat is None:
            _VERDICTS[(str(path),)] = "cannot be read"
        elif (str(path), *stat) not in _VERDICTS:
            todo.append(path)
    while todo:
        done = _decode_in_child(todo)
        for path, verdict in zip(todo, done, strict=False):
            _VERDICTS[(str(path), *(part_stat(path) or []))] = verdict
        todo = todo[len(done) :]
    out = {}
    for path in paths:
        stat = part_stat(path)
        verdict = _VERDICTS.get((str(path), *stat) if stat else (str(path),))
        if verdict is not None:
            out[path] = verdict
    return out


def _decode_in_child(paths: list[Path]) -> list[str | None]:
    """Verdicts for a prefix of ``paths`` (all of them unless the child died on one)."""
    size_mb = sum((part_stat(p) or [0])[0] for p in paths) / (1 << 20)
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, *map(str, paths)],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S + _TIMEOUT_PER_MB_S * size_mb,
            env={**os.environ, "RUST_BACKTRACE": "0"},
        )
        lines, code = done.stdout.splitlines(), done.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        lines, code = out.splitlines(), None
    verdicts: list[str | None] = [
        None if line == "ok" else line.removeprefix("bad ") for line in lines[: len(paths)]
    ]
    if len(verdicts) < len(paths):  # the child died on (or took too long with) the next one
        how = "took too long to decode" if code is None else f"crashed the decoder (exit {code})"
        verdicts.append(how)
    return verdicts
