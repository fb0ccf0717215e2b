"""Conversations on the example room app (``examples/roomapp``), played for real, concurrently.

::

    with RedisServer() as redis:
        played, traces = play_rooms(workdir, ROOM_SCENARIOS, redis=redis)
    for p in played:
        print(p.scenario.name, p.conversation_id, p.ids)   # ids: role -> message id

Each :class:`RoomScenario` drives one room conversation with real WebSocket
clients (``roomclient``) and HTTP calls on a stack of its ``stack`` kind
(``ROOM_STACKS``: the normal one, one without a worker, one whose worker was
stopped, one whose Redis gets stopped), and names the verdict each of its
messages should get (``expect``: role -> (outcome, hop, cause)). The end-to-end
tests of ``tests/roomapp`` play the same scenarios and assert those verdicts.
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

from websockets.exceptions import ConnectionClosed

from .client import make_token
from .roomclient import RoomSocket, edit_message, post_message
from .stack import RedisServer, Stack

__all__ = [
    "DEMO_ROOM_SCENARIOS",
    "ROOM_SCENARIOS",
    "ROOM_STACKS",
    "RoomContext",
    "RoomPlayed",
    "RoomScenario",
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
        from ..verdicts.api import conversation_report

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


# --- the scenarios -----------------------------------------------------------------
async def _echo(ctx: RoomContext) -> None:
    alice = await ctx.open_room(new_user())
    ctx.ids["message"] = await alice.say("hello everyone")
    await alice.wait_for("message", ctx.ids["message"])


async def _bot_mention(ctx: RoomContext) -> None:
    alice = await ctx.open_room(new_user())
    ctx.ids["message"] = mid = await alice.say("@bot when is the standup?")
    await alice.wait_for("message", mid)
    await alice.wait_for("bot", mid)


async def _two_sockets(ctx: RoomContext) -> None:
    user = new_user()
    tab, phone = await ctx.open_room(user), await ctx.open_room(user)
    ctx.ids["message"] = mid = await tab.say("on my way")
    await tab.wait_for("message", mid)
    await phone.wait_for("message", mid)


async def _fan_out(ctx: RoomContext) -> None:
    alice, bob = await ctx.open_room(new_user()), await ctx.open_room(new_user())
    ctx.ids["message"] = mid = await alice.say("see you all at 10")
    await alice.wait_for("message", mid)
    await bob.wait_for("message", mid)


async def _worker_down_connected(ctx: RoomContext) -> None:
    alice = await ctx.open_room(new_user())
    ctx.ids["message"] = mid = await alice.say("@bot anyone home?")
    await alice.wait_for("message", mid)
    ctx.notes["report_while_open"] = await ctx.analyze_now()


async def _worker_down_gave_up(ctx: RoomContext) -> None:
    alice = await ctx.open_room(new_user())
    ctx.ids["message"] = mid = await alice.say("@bot anyone home?")
    await alice.wait_for("message", mid)
    await asyncio.sleep(0.5)  # a user waits a moment for the answer, then leaves


async def _task_failed(ctx: RoomContext) -> None:
    alice = await ctx.open_room(new_user())
    ctx.ids["message"] = mid = await alice.say("@bot fault:task_failed what's new?")
    await alice.wait_for("message", mid)
    await alice.wait_for("bot", mid, timeout=1.5)  # never comes: the task raised


async def _sigkill(ctx: RoomContext) -> None:
    alice = await ctx.open_room(new_user())
    text = "@streambot fault:sigkill chunks=6 delay=0.2 summarize the thread"
    ctx.ids["message"] = mid = await alice.say(text)
    await alice.wait_for("chunk", mid, count=2)
    await alice.wait_for("done", mid, timeout=2.0)  # never comes: the pool process died


async def _redis_down(ctx: RoomContext) -> None:
    assert ctx.stop_redis is not None, "needs a stack on a Redis of its own"
    alice = await ctx.open_room(new_user())
    ctx.ids["before"] = mid = await alice.say("hello")
    await alice.wait_for("message", mid)
    await asyncio.to_thread(ctx.stop_redis)
    ctx.ids["message"] = mid = uuid.uuid4().hex
    # The consumer's layer receive fails as Redis goes, and Daphne may close the
    # socket (1011) before this frame is even sent: both are the same outage.
    with contextlib.suppress(ConnectionClosed):
        await alice.say("are you still there?", mid)
    await alice.wait_for("message", mid, timeout=4.0)
    ctx.notes["close_code"] = alice.close_code


async def _stop_mid_stream(ctx: RoomContext) -> None:
    alice = await ctx.open_room(new_user())
    text = "@streambot chunks=40 delay=0.25 tell me the whole history of the project"
    ctx.ids["message"] = mid = await alice.say(text)
    await alice.wait_for("chunk", mid, count=2)
    ctx.ids["stop"] = stop = await alice.stop(mid)
    await alice.wait_for("stopped", stop)
    await alice.wait_for("done", mid, timeout=1.5)  # never comes: revoked
    ctx.notes["chunks_seen"] = len(alice.of("chunk", mid))


async def _typing_ping(ctx: RoomContext) -> None:
    alice, bob = await ctx.open_room(new_user()), await ctx.open_room(new_user())
    ctx.ids["typing"] = typing = await alice.typing()
    await bob.wait_for("typing", typing)
    ctx.ids["ping"] = ping = await alice.ping()
    await alice.wait_for("pong", ping)


async def _notification(ctx: RoomContext) -> None:
    user = new_user()
    ctx.notes["user_id"] = user
    badge = await ctx.open_notifications(user)
    alice = await ctx.open_room(user)
    ctx.ids["message"] = mid = await alice.say("the deploy is done")
    await alice.wait_for("message", mid)
    await badge.wait_for("conversation.updated", mid)
    ctx.notes["notified"] = len(badge.of("conversation.updated", mid))


async def _http_post(ctx: RoomContext) -> None:
    user = new_user()
    alice = await ctx.open_room(user)
    mid = ctx.ids["message"] = uuid.uuid4().hex
    web = ctx.stack.web_url
    answer = await post_message(web, ctx.conversation_id, ctx.token(user), "@bot summarize", mid)
    ctx.notes["status"] = answer.status
    await alice.wait_for("message", mid)
    await alice.wait_for("bot", mid)


async def _http_edit_failed(ctx: RoomContext) -> None:
    user = new_user()
    alice = await ctx.open_room(user)
    ctx.ids["message"] = mid = await alice.say("@bot draft the agenda")
    await alice.wait_for("bot", mid)
    text = "@bot fault:task_failed draft the agenda for friday"
    answer = await edit_message(ctx.stack.web_url, mid, ctx.token(user), text, ctx.conversation_id)
    ctx.notes["status"] = answer.status
    await alice.wait_for("bot", mid, count=2, timeout=1.5)  # never comes: the re-run raised


async def _pubsub_healthy(ctx: RoomContext) -> None:
    alice = await ctx.open_room(new_user())
    ctx.ids["message"] = mid = await alice.say("@pubsub stream the minutes")
    await alice.wait_for("done", mid)
    ctx.notes["chunks_seen"] = len(alice.of("chunk", mid))


async def _pubsub_client_gone(ctx: RoomContext) -> None:
    alice = await ctx.open_room(new_user())
    ctx.ids["message"] = mid = await alice.say("@pubsub fault:slow_start stream the minutes")
    await alice.wait_for("message", mid)
    await alice.close()  # gone before the first chunk (the task starts after 1 s)
    await asyncio.sleep(2.0)  # until the task has published everything into nothing


async def _auth_rejected(ctx: RoomContext) -> None:
    mallory = await ctx.open_room(new_user(), token="not.a.jwt")
    await mallory.wait_closed(timeout=5.0)
    ctx.notes["close_code"] = mallory.close_code


LOST_NO_WORKER: Expect = ("lost", "task", "no_worker")
ROOM_SCENARIOS: tuple[RoomScenario, ...] = (
    RoomScenario("room_echo", "a message without mention: echoed to the room, no task",
                 _echo, {"message": DELIVERED}),
    RoomScenario("room_bot", "@bot: echo, then one non-streamed answer from a Celery task",
                 _bot_mention, {"message": DELIVERED}),
    RoomScenario("room_two_sockets", "one user, two sockets: one publish, two deliveries",
                 _two_sockets, {"message": DELIVERED}),
    RoomScenario("room_fan_out", "conversation.updated to user_<id> groups nobody listens to",
                 _fan_out, {"message": DELIVERED}),
    RoomScenario("room_worker_down_connected", "@bot with no worker, analyzed while connected",
                 _worker_down_connected, {"message": ("in_flight", "task", "no_worker")},
                 stack="no_worker"),
    RoomScenario("room_worker_down_gave_up", "@bot with no worker; the user leaves",
                 _worker_down_gave_up, {"message": LOST_NO_WORKER}, stack="no_worker"),
    RoomScenario("room_worker_stopped_gave_up", "@bot after the worker stopped; the user leaves",
                 _worker_down_gave_up, {"message": LOST_NO_WORKER}, stack="worker_stopped"),
    RoomScenario("room_task_failed", "@bot whose task raises",
                 _task_failed, {"message": ("lost", "task", "task_failed")}),
    RoomScenario("room_sigkill", "@streambot whose pool process is SIGKILLed after 2 chunks",
                 _sigkill, {"message": ("lost", "task", "task_stuck")}),
    RoomScenario("room_redis_down", "Redis stops while the client is connected",
                 _redis_down, {"before": DELIVERED,
                               # the consumer's own layer receive loses Redis first: deliver
                               "message": ("lost", "deliver", "channel_layer_unavailable")},
                 stack="redis_down"),
    RoomScenario("room_stop", "Stop pressed mid-stream: the task is revoked (terminate)",
                 _stop_mid_stream, {"message": ("lost", "task", "task_revoked"),
                                    "stop": DELIVERED}),
    RoomScenario("room_typing_ping", "typing relayed to the room, ping answered: no task",
                 _typing_ping, {"typing": DELIVERED, "ping": DELIVERED}),
    RoomScenario("room_notification", "a notification socket on ws/user/<id>/ gets the update",
                 _notification, {"message": DELIVERED}),
    RoomScenario("room_http_post", "@bot posted over HTTP while a socket is in the room",
                 _http_post, {"message": DELIVERED}),
    RoomScenario("room_http_edit_failed", "an HTTP edit re-runs the bot, whose task raises",
                 _http_edit_failed, {"message": ("lost", "task", "task_failed")}),
    RoomScenario("room_pubsub", "@pubsub: raw Redis PUBLISH chunks forwarded by the consumer",
                 _pubsub_healthy, {"message": DELIVERED}),
    RoomScenario("room_pubsub_client_gone", "@pubsub: the client left before the first chunk",
                 _pubsub_client_gone, {"message": ("lost", "deliver", "client_disconnected")}),
    RoomScenario("room_auth_rejected", "a bad subprotocol token: accepted, then closed 4001",
                 _auth_rejected, {}),
)  # fmt: skip

DEMO_ROOM_SCENARIOS: tuple[str, ...] = (
    "room_echo", "room_bot", "room_two_sockets", "room_fan_out", "room_worker_down_gave_up",
    "room_stop", "room_http_post",
)  # fmt: skip
"""What ``wsanalyze demo`` plays on the room app (the tests play all)."""


def room_scenarios_named(names: Sequence[str]) -> list[RoomScenario]:
    by_name = {s.name: s for s in ROOM_SCENARIOS}
    return [by_name[name] for name in names]


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
