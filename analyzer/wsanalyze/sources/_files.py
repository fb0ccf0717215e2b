"""Only regular files are read: FIFOs, sockets and devices in a source directory are skipped.

Opening a FIFO blocks until something writes to it, and a device may never end,
so every reader asks ``special_kind`` before it opens a file found in a
directory, notes what it skipped (``skipped_note``), and opens files with
``open_regular``, which refuses anything else without blocking (a file replaced by
a FIFO between listing and reading).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


class NotRegular(OSError):
    """A path that is a FIFO, socket or device, not a regular file."""


def kind_of(mode: int) -> str | None:
    """What a special file of this ``st_mode`` is ("a FIFO", ...); None for files and dirs."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return None


def special_kind(path: str | os.PathLike) -> str | None:
    """What ``path`` is when it is a FIFO, socket or device (symlinks followed); else None."""
    try:
        return kind_of(os.stat(path).st_mode)
    except (OSError, ValueError):
        return None


def skipped_note(path: str | os.PathLike, kind: str) -> str:
    """The problem line for a special file left out of a read."""
    return f"{path}: {kind}, not a regular file; skipped"


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """``open(path, "rb")`` for a regular file; NotRegular (never a hang) for anything else."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        kind = kind_of(os.fstat(fd).st_mode)
        if kind is not None:
            raise NotRegular(errno.EINVAL, f"{kind}, not a regular file", os.fspath(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def regular_files(paths: list[Path], skipped: list[str] | None) -> list[Path]:
    """``paths`` without the special files (each noted in ``skipped`` when given)."""
    kept = []
    for path in paths:
        kind = special_kind(path)
        if kind is None:
            kept.append(path)
        elif skipped is not None:
            skipped.append(skipped_note(path, kind))
    return kept
