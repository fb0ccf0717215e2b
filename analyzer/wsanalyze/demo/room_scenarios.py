"""The room app's scenarios: how each room conversation is played, and what it must get.

``ROOM_SCENARIOS`` is every one (the end-to-end tests of ``tests/roomapp`` play
them all); ``DEMO_ROOM_SCENARIOS`` names what ``wsanalyze demo`` plays. Each is a
:class:`~wsanalyze.demo.rooms.RoomScenario`: a coroutine driving real WebSocket
clients and HTTP calls through a :class:`~wsanalyze.demo.rooms.RoomContext`, the
``ROOM_STACKS`` kind it runs on, and the verdict of each of its messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence

from websockets.exceptions import ConnectionClosed

from .roomclient import edit_message, post_message
from .rooms import DELIVERED, Expect, RoomContext, RoomScenario, new_user

__all__ = ["DEMO_ROOM_SCENARIOS", "ROOM_SCENARIOS", "room_scenarios_named"]


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
    """The room scenarios of ``names``, in that order."""
    by_name = {s.name: s for s in ROOM_SCENARIOS}
    return [by_name[name] for name in names]
