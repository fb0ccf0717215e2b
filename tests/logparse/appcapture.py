"""Run both example apps for real (Daphne + Celery prefork + Redis) and keep their logs.

The chat app logs its own events as logfmt, the room app as JSON lines; the
structured-line tests read what these real processes wrote. Each scenario's
conversation id is returned, so the tests know which conversation each line
belongs to.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from wsanalyze.demo.chatapp_faults import FAULTS
from wsanalyze.demo.client import make_token
from wsanalyze.demo.redis_server import RedisServer
from wsanalyze.demo.roomclient import RoomSocket
from wsanalyze.demo.stack import Stack

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI3IiwibmFtZSI6ImFsaWNlIn0.c2VjcmV0LXNpZ25hdHVyZQ"


@dataclass
class AppRun:
    """One example app's logs (web.log, worker.log) and its scenarios' conversation ids."""

    dir: Path
    conversations: dict[str, str] = field(default_factory=dict)  # scenario -> conversation
    ids: dict[str, dict[str, str]] = field(default_factory=dict)  # scenario -> role -> id


def _wait_for(path: Path, needle: str, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and needle in path.read_text(errors="replace"):
            return True
        time.sleep(0.1)
    return False


def _wait_for_line(path: Path, *parts: str, timeout: float = 20.0) -> bool:
    """Until one line holds every part: the app logs a close after the client saw it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                if all(part in line for part in parts):
                    return True
        time.sleep(0.1)
    return False


def run_chatapp(workdir: Path, redis_url: str) -> AppRun:
    """The chat app: a healthy message, an expired token (4001), a task that raises."""
    run = AppRun(workdir)
    with Stack(workdir, redis_url, wstrace_enabled=False, concurrency=1) as stack:
        for name in ("ok", "auth_rejected", "task_failed", "rate_limited"):
            run.conversations[name] = f"chat-{name.replace('_', '-')}"
            transcript = stack.run_scenario(FAULTS[name], run.conversations[name])
            run.ids[name] = {"message": transcript.message_ids[0]} if transcript.message_ids else {}
        _wait_for(stack.worker_log, "task raised")
        for name, code in (("auth_rejected", 4001), ("rate_limited", 4004)):
            _wait_for_line(stack.web_log, "ws disconnected", run.conversations[name], f"={code}")
        # a secret in a line the app itself writes: the report must not repeat it
        run.conversations["secret"] = "chat-secret"
    with (workdir / "web.log").open("a") as log:
        log.write(
            f'ts=2026-01-01T00:00:00Z level=warning logger=core msg="retrying upstream" '
            f"conv=chat-secret url=/ws/chat/chat-secret/?token={JWT}\n"
        )
    return run


async def _room_talk(stack: Stack, run: AppRun) -> None:
    token = make_token("7", "alice", stack.jwt_secret)
    for name, text in (("ok", "@streambot hello"), ("task_failed", "@bot fault:task_failed")):
        conversation = run.conversations[name] = f"room-{name.replace('_', '-')}"
        async with RoomSocket(stack.ws_url(conversation), token) as sock:
            message_id = await sock.say(text)
            run.ids[name] = {"message": message_id}
            await sock.wait_for("done" if name == "ok" else "message", message_id)
            await asyncio.sleep(0.5 if name == "ok" else 1.5)
    conversation = run.conversations["auth_rejected"] = "room-auth-rejected"
    with contextlib.suppress(Exception):
        async with RoomSocket(stack.ws_url(conversation), None) as sock:
            await sock.wait_closed(5)


def run_roomapp(workdir: Path, redis_url: str) -> AppRun:
    """The room app: a streamed answer, a bot task that raises, a socket without a token."""
    run = AppRun(workdir)
    with Stack(workdir, redis_url, app="roomapp", wstrace_enabled=False, concurrency=1) as stack:
        asyncio.run(_room_talk(stack, run))
        _wait_for(stack.worker_log, "task raised")
        _wait_for_line(stack.web_log, "ws disconnected", run.conversations["auth_rejected"])
    return run


def capture_apps(root: Path) -> tuple[AppRun, AppRun]:
    """Both apps, on one Redis."""
    with RedisServer() as redis:
        chat = run_chatapp(root / "chatapp", redis.url)
        # a database of its own: the chat app's unfinished tasks must not reach this worker
        room = run_roomapp(root / "roomapp", redis.url_for(1))
    return chat, room


if __name__ == "__main__":
    chat, room = capture_apps(Path(sys.argv[1]))
    for run in (chat, room):
        print("==", run.dir, run.conversations, run.ids)
        for name in ("web.log", "worker.log"):
            print(f"-- {name}\n" + (run.dir / name).read_text())
