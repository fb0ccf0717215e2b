"""Subprocess plumbing shared by the demo's Redis server and stacks: ports, log tails, stopping.

Every process is started with ``start_new_session=True``, so its pid is its process
group id and ``stop_process`` can take a prefork pool down with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["HOST", "POLL", "StackError", "file_tail", "free_port", "port_open", "stop_process"]

HOST = "127.0.0.1"
POLL = 0.05  # seconds between two looks at a process, a port or a log


class StackError(RuntimeError):
    """A process of the stack could not start, or died; the message carries its log tail."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_open(port: int, host: str = HOST) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def file_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file, or ``(no log)``."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_process(proc: subprocess.Popen, timeout: float, *, terminate: bool = True) -> None:
    """SIGTERM the process (so it flushes), SIGKILL its whole session after ``timeout``."""
    if terminate and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    # Always wait: the SIGTERM (sent here or by the caller) is what flushes telemetry.
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=timeout)
    # Started with start_new_session, so the pgid is the pid: give children (a
    # prefork pool) a moment to flush and exit, then kill whatever is left.
    grace = time.monotonic() + (2.0 if proc.poll() is not None else 0.0)
    while _group_alive(proc.pid) and time.monotonic() < grace:
        time.sleep(POLL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait(timeout=5)
