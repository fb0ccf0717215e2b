"""Conversations on the example room app (``examples/roomapp``), played for real, concurrently.

::

    with RedisServer() as redis:
        played = play_rooms(workdir, ROOM_SCENARIOS, redis=redis)
    for p in played:
        print(p.scenario.name, p.conversation_id, p.ids)   # ids: role -> message id

Each :class:`RoomScenario` drives one room conversation with real WebSocket
clients (``roomclient``) and HTTP calls on a stack of its ``stack`` kind
(``ROOM_STACKS``: the normal one, one without a worker, one whose worker was
stopped, one whose Redis gets stopped), and names the verdict each of its
messages should get (``expect``: role -> (outcome, hop, cause)). The end-to-end
tests of ``tests/roomapp`` play the same scenarios and assert those verdicts.
The scenarios themselves are in ``room_scenarios``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .client import make_token
from .redis_server import RedisServer
from .roomclient import RoomSocket
from .stack import Stack

__all__ = [
    "DELIVERED",
    "ROOM_STACKS",
    "Expect",
    "RoomContext",
    "RoomPlayed",
    "RoomScenario",
    "new_user",
    "play_room_scenarios",
    "play_rooms",
    "room_stack_kwargs",
    "wait_quiet",
]

Expect = tuple[str, str | None, str]
DELIVERED: Expect = ("delivered", "send", "ok")

# Spans leave each process within 200 ms (instead of 1 s), so a scenario can be
# analyzed while its client is still connected, and the tests wait less.
FAST_FLUSH = {"OTEL_BSP_SCHEDULE_DELAY": "200"}
ROOM_STACKS: dict[str, dict[str, Any]] = {
    "main": {"concurrency": 4},  # Stop and SIGKILL scenarios each hold a pool process
    "no_worker": {"worker": False},  # deployed without a worker
    "worker_stopped": {},  # the worker ran, then stopped (``stop_worker`` after start)
    "redis_down": {"stop_timeout": 3.0},  # on its own Redis, stopped mid-conversation
}


def room_stack_kwargs(kind: str) -> dict[str, Any]:
    """``Stack`` kwargs of one stack kind of ``ROOM_STACKS`` (no workdir / redis_url)."""
    return {"app": "roomapp", "env": dict(FAST_FLUSH), **ROOM_STACKS[kind]}


@dataclass
class RoomContext:
    """What a scenario plays with: its stack, its conversation, its sockets and what it noted."""

    stack: Stack
    conversation_id: str
    stop_redis: Callable[[], None] | None = None
    ids: dict[str, str] = field(default_factory=dict)  # role -> message id
    notes: dict[str, Any] = field(default_factory=dict)
    sockets: list[RoomSocket] = field(default_factory=list)

    def token(self, user_id: str) -> str:
        return make_token(user_id, f"user{user_id}", self.stack.jwt_secret)

    async def open_room(self, user_id: str, token: str | None = None) -> RoomSocket:
        """Open a socket of ``user_id`` to this conversation's room."""
        url = self.stack.ws_url(self.conversation_id)
        socket = RoomSocket(url, token if token is not None else self.token(user_id))
        self.sockets.append(socket)
        return await socket.open()

    async def open_notifications(self, user_id: str) -> RoomSocket:
        """Open ``user_id``'s notification socket (``ws/user/<id>/``)."""
        socket = RoomSocket(self.stack.user_ws_url(user_id), self.token(user_id))
        self.sockets.append(socket)
        return await socket.open()

    async def analyze_now(self) -> Any:
        """The analyzer's report of this conversation as of now (spans flushed first)."""
        from ..analysis import conversation_report

        await asyncio.to_thread(wait_quiet, self.stack.trace_dir)
        traces = str(self.stack.trace_dir)
        return await asyncio.to_thread(conversation_report, self.conversation_id, traces=traces)

    async def close_all(self) -> None:
        for socket in self.sockets:
            with contextlib.suppress(Exception):
                await socket.close()


Play = Callable[[RoomContext], Awaitable[None]]


@dataclass(frozen=True)
class RoomScenario:
    """One room conversation: how to play it, on which stack, what each message should get."""

    name: str
    description: str
    play: Play
    expect: Mapping[str, Expect] = field(default_factory=dict)  # role -> verdict
    stack: str = "main"  # a ROOM_STACKS kind


@dataclass
class RoomPlayed:
    """A room scenario after it ran."""

    scenario: RoomScenario
    conversation_id: str
    stack: Stack
    ids: dict[str, str]
    notes: dict[str, Any]
    sockets: list[RoomSocket]
    error: str | None = None
    seconds: float = 0.0


def new_user() -> str:
    """A user id no other scenario uses (user groups are shared by the whole stack)."""
    return str(uuid.uuid4().int % 10**9)


def wait_quiet(trace_dir: Path, quiet: float = 0.6, timeout: float = 8.0) -> None:
    """Wait until no process writes to ``trace_dir`` for ``quiet`` seconds (spans flushed)."""

    def size() -> int:
        return sum(p.stat().st_size for p in Path(trace_dir).glob("**/*") if p.is_file())

    deadline = time.monotonic() + timeout
    last, since = size(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = size()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


async def _play_one(
    scenario: RoomScenario, stack: Stack, stop_redis: Callable[[], None] | None
) -> RoomPlayed:
    slug = scenario.name.replace("_", "-")
    ctx = RoomContext(stack, f"{slug}-{uuid.uuid4().hex[:6]}", stop_redis)
    started = time.monotonic()
    error = None
    try:
        await scenario.play(ctx)
    except Exception as exc:  # reported with the scenario; the others go on
        error = f"{type(exc).__name__}: {exc}"
    finally:
        await ctx.close_all()
    return RoomPlayed(scenario, ctx.conversation_id, stack, ctx.ids, ctx.notes, ctx.sockets,
                      error, time.monotonic() - started)  # fmt: skip


async def play_room_scenarios(
    scenarios: Sequence[RoomScenario],
    stacks: Mapping[str, Stack],
    *,
    stop_redis: Callable[[], None] | None = None,
) -> list[RoomPlayed]:
    """Play every scenario at once, each on ``stacks[scenario.stack]``; in scenario order."""
    return list(
        await asyncio.gather(*(_play_one(s, stacks[s.stack], stop_redis) for s in scenarios))
    )


def play_rooms(
    workdir: Path,
    scenarios: Sequence[RoomScenario],
    *,
    redis: RedisServer,
    progress: Callable[[str], None] | None = None,
) -> list[RoomPlayed]:
    """Start the room-app stacks the scenarios need, play them, stop the stacks (flushed).

    Each stack writes its traces to ``workdir/roomapp-<kind>/traces``: one store
    per deployment, as in production. A ``redis_down`` stack gets a Redis of its own.
    """
    say = progress or (lambda _text: None)
    kinds = list(dict.fromkeys(s.stack for s in scenarios))
    own_redis = RedisServer().start() if "redis_down" in kinds else None
    stacks: dict[str, Stack] = {}
    try:
        for db, kind in enumerate(kinds, start=40):  # dbs the chat app's stacks do not use
            url = own_redis.url if kind == "redis_down" and own_redis else redis.url_for(db)
            stacks[kind] = Stack(Path(workdir) / f"roomapp-{kind}", url, **room_stack_kwargs(kind))
            stacks[kind].launch()
        say(f"starting the room app ({len(kinds)} stack(s))")
        for kind, stack in stacks.items():
            stack.wait_ready()
            if kind == "worker_stopped":
                stack.stop_worker()
        say("room conversations")
        stop_redis = own_redis.stop if own_redis else None
        return asyncio.run(play_room_scenarios(scenarios, stacks, stop_redis=stop_redis))
    finally:
        say("stopping the room app (flushing traces)")
        Stack.stop_all(list(stacks.values()))
        if own_redis is not None:
            own_redis.stop()
