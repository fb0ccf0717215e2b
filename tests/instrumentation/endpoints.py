"""OTLP endpoints for tests: a port nothing listens on, a black hole, a live collector."""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from wsanalyze.demo.processes import HOST, free_port

__all__ = ["HOST", "BlackHole", "Collector", "dead_endpoint"]


def dead_endpoint(userinfo: str = "") -> str:
    """A base URL on a free local port: every connection is refused."""
    return f"http://{userinfo}{HOST}:{free_port()}"


class BlackHole:
    """A TCP server on a free local port that accepts every connection and never answers."""

    def __init__(self) -> None:
        self._server = socket.create_server((HOST, 0))
        self.port = self._server.getsockname()[1]
        self.url = f"http://{HOST}:{self.port}"
        self._held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self._server.accept()
                self._held.append(conn)  # kept open, never read, never answered

    def close(self) -> None:
        self._server.close()
        for conn in self._held:
            conn.close()

    def __enter__(self) -> BlackHole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Collector:
    """A live OTLP/HTTP endpoint on a free local port: answers 200 and keeps each request body."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self.url = f"http://{HOST}:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def received(self, needle: bytes) -> bool:
        """Whether any request so far carried ``needle`` (a span name, an attribute)."""
        return any(needle in body for body in self.bodies)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Collector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
