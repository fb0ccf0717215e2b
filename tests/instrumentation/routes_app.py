"""A small real Channels app for the routing, id and frame-type tests, run in a subprocess.

``python routes_app.py TRACE_DIR SETTINGS_JSON SCENARIO...`` configures Django
with wstrace (``WSTRACE`` = the JSON merged over a file store in TRACE_DIR),
runs each named scenario through ``channels.testing.WebsocketCommunicator``
against the full ASGI stack below, flushes the spans and exits. Every
scenario uses its own path (or query), so the tests find its connection by
``ws.path``. With ``REDIS_URL`` set the channel layer is channels_redis on
that server; the ``layer_down`` scenario stops that server under an open
consumer (``REDIS_PID`` names its process).

Routes (inside an origin check and a header-to-user middleware)::

    ws/chat/<conversation_id>/       ChatConsumer (a conversation)
    ws/user/<user_id>/               NoticeConsumer (notifications: no conversation)
    ws/rooms/ + <conversation_id>/   ChatConsumer behind a nested URLRouter
    ^ws/$                            LobbyConsumer (one socket for everything)
    ws/boom/                         LobbyConsumer (the test resolver raises here)
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import django
from django.conf import settings

GOOD_ORIGIN = b"http://good.example"


def resolve(scope: dict[str, Any], frame: Any) -> str | None:
    """The test's CONVERSATION_RESOLVER: a query parameter, a header, the user, the frame."""
    if scope.get("path") == "/ws/boom/":
        raise RuntimeError("resolver bug")
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    if query.get("conversation"):
        return query["conversation"][0]
    for name, value in scope.get("headers") or ():
        if name == b"x-conversation":
            return value.decode("latin1")
    user = scope.get("user")
    if getattr(user, "conversation", None):
        return user.conversation
    if isinstance(frame, dict) and frame.get("type") == "join":
        return frame.get("room")
    return None


def resolve_scope_only(scope: dict[str, Any]) -> str | None:
    """A one-argument resolver: asked once, at connect, never about a frame."""
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    return query["conversation"][0] if query.get("conversation") else None


def configure(trace_dir: str, extra: dict[str, Any]) -> None:
    redis_url = os.environ.get("REDIS_URL")
    layer = (
        {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [redis_url]}}
        if redis_url
        else {"BACKEND": "channels.layers.InMemoryChannelLayer"}
    )
    settings.configure(
        INSTALLED_APPS=["channels", "wstrace"],
        CHANNEL_LAYERS={"default": layer},
        WSTRACE={"FILE_DIR": trace_dir, "SERVICE_NAME": "routes", **extra},
    )
    django.setup()


def build_app() -> Any:
    from channels.generic.websocket import AsyncJsonWebsocketConsumer
    from channels.middleware import BaseMiddleware
    from channels.routing import ProtocolTypeRouter, URLRouter
    from channels.security.websocket import OriginValidator
    from django.urls import path, re_path

    class HeaderUserMiddleware(BaseMiddleware):
        """scope["user"] from an x-user header: ``<pk>`` or ``<pk>:<conversation>``."""

        async def __call__(self, scope, receive, send):
            for name, value in scope.get("headers") or ():
                if name == b"x-user":
                    pk, _, conversation = value.decode().partition(":")
                    user = SimpleNamespace(
                        pk=pk, is_authenticated=True, conversation=conversation or None
                    )
                    scope = {**scope, "user": user}
            return await super().__call__(scope, receive, send)

    class ChatConsumer(AsyncJsonWebsocketConsumer):
        async def connect(self):
            self.group = "chat_" + self.scope["url_route"]["kwargs"].get("conversation_id", "x")
            await self.channel_layer.group_add(self.group, self.channel_name)
            await self.accept()

        async def receive_json(self, content, **kwargs):
            if content.get("content") == "raise":
                raise ConnectionError("the handler's own ConnectionError, not the layer's")
            await self.send_json({"type": "ack", "id": content.get("id")})
            await self.channel_layer.group_send(
                self.group, {"type": "chat.chunk", "message_id": content.get("id")}
            )

        async def chat_chunk(self, event):
            frame = {"type": "chunk", "message_id": event["message_id"], "seq": 1}
            await self.send_json(frame)

    class NoticeConsumer(AsyncJsonWebsocketConsumer):
        async def connect(self):
            await self.accept()
            await self.send_json({"type": "notice", "uuid": "n-1", "text": "hello"})

        async def receive_json(self, content, **kwargs):
            await self.send_json({"type": "subscribed", "data": {"client_id": "sub-1"}})

    class LobbyConsumer(AsyncJsonWebsocketConsumer):
        async def connect(self):
            self.group = None
            await self.accept()

        async def receive_json(self, content, **kwargs):
            if content.get("type") == "join":
                self.group = "room_" + content["room"]
                await self.channel_layer.group_add(self.group, self.channel_name)
            if self.group:
                await self.channel_layer.group_send(
                    self.group, {"type": "room.event", "id": content.get("id")}
                )
            else:
                await self.send_json({"type": "ok", "id": content.get("id")})

        async def room_event(self, event):
            await self.send_json({"type": "event", "message_id": event["id"]})

    routes = URLRouter(
        [
            path("ws/chat/<conversation_id>/", ChatConsumer.as_asgi()),
            path("ws/user/<user_id>/", NoticeConsumer.as_asgi()),
            path("ws/rooms/", URLRouter([path("<conversation_id>/", ChatConsumer.as_asgi())])),
            path("ws/boom/", LobbyConsumer.as_asgi()),
            re_path(r"^ws/$", LobbyConsumer.as_asgi()),
        ]
    )
    websocket = OriginValidator(HeaderUserMiddleware(routes), [GOOD_ORIGIN.decode()])
    return ProtocolTypeRouter({"websocket": websocket})


async def talk(
    app: Any,
    url: str,
    frames: list[Any] = (),  # type: ignore[assignment]
    *,
    headers: list[tuple[bytes, bytes]] = (),  # type: ignore[assignment]
    origin: bytes = GOOD_ORIGIN,
    replies: int = 0,
) -> list[Any]:
    """Connect, send ``frames`` (JSON), read ``replies`` frames, disconnect."""
    from channels.testing import WebsocketCommunicator

    communicator = WebsocketCommunicator(app, url, headers=[(b"origin", origin), *headers])
    connected, _ = await communicator.connect(timeout=5)
    got: list[Any] = []
    if connected:
        for frame in frames:
            await communicator.send_to(
                text_data=frame if isinstance(frame, str) else json.dumps(frame)
            )
        for _ in range(replies):
            got.append(await communicator.receive_json_from(timeout=5))
        await communicator.disconnect()
    return got


SCENARIOS: dict[str, Any] = {
    "route": lambda app: talk(
        app,
        "/ws/chat/c-route/",
        [{"type": "message", "id": "m-1", "content": "hi"}, {"type": "ping"}],
        replies=3,
    ),
    "nested": lambda app: talk(
        app, "/ws/rooms/r-7/", [{"type": "message", "id": "m-7"}], replies=2
    ),
    "notice": lambda app: talk(
        app,
        "/ws/user/5/",
        [{"action": "subscribe", "data": {"client_id": "sub-1"}}],
        replies=2,
    ),
    "query": lambda app: talk(
        app, "/ws/?conversation=q-9&token=secret", [{"type": "message", "id": "m-q"}], replies=1
    ),
    "header": lambda app: talk(
        app,
        "/ws/?x=1",
        [{"event": "hello", "id": "m-h"}],
        headers=[(b"x-conversation", b"h-3")],
        replies=1,
    ),
    "user": lambda app: talk(
        app,
        "/ws/?u=1",
        [{"type": "message", "id": "m-u"}],
        headers=[(b"x-user", b"7:u-7")],
        replies=1,
    ),
    "first_frame": lambda app: talk(
        app,
        "/ws/?f=1",
        [{"type": "join", "room": "f-1", "id": "j-1"}, {"type": "message", "id": "m-2"}],
        replies=2,
    ),
    "no_resolver": lambda app: talk(app, "/ws/?n=1", [{"type": "message", "id": "m-n"}], replies=1),
    "boom": lambda app: _twice(app, "/ws/boom/"),
    "origin_chat": lambda app: talk(app, "/ws/chat/c-origin/", origin=b"http://evil.example"),
    "origin_user": lambda app: talk(app, "/ws/user/6/", origin=b"http://evil.example"),
    "origin_unrouted": lambda app: talk(app, "/ws/nowhere/abc/", origin=b"http://evil.example"),
    "big_frame": lambda app: talk(
        app,
        "/ws/chat/c-big/",
        ['{"type": "message", "id": "m-big", "content": "' + "x" * 70_000 + '"}'],
        replies=2,
    ),
    "handler_error": lambda app: _crash(app, "/ws/chat/c-handler/", "raise"),
    "layer_down": lambda app: _layer_down(app, "/ws/chat/c-layer/"),
}


async def _twice(app: Any, url: str) -> None:
    for _ in range(2):
        await talk(app, url, [{"type": "message", "id": "m-b"}], replies=1)


async def _crash(app: Any, url: str, content: str) -> None:
    from channels.testing import WebsocketCommunicator

    communicator = WebsocketCommunicator(app, url, headers=[(b"origin", GOOD_ORIGIN)])
    await communicator.connect(timeout=5)
    await communicator.send_json_to({"type": "message", "id": "m-x", "content": content})
    try:
        await communicator.receive_output(timeout=5)
    except Exception as exc:
        print("crashed:", type(exc).__module__, type(exc).__name__, flush=True)


async def _layer_down(app: Any, url: str) -> None:
    from channels.testing import WebsocketCommunicator

    communicator = WebsocketCommunicator(app, url, headers=[(b"origin", GOOD_ORIGIN)])
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    os.kill(int(os.environ["REDIS_PID"]), signal.SIGKILL)  # Redis dies under the open consumer
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            await communicator.receive_output(timeout=1)
        except TimeoutError:
            continue
        except Exception as exc:
            print("crashed:", type(exc).__module__, type(exc).__name__, flush=True)
            return
    print("did not crash", flush=True)


def main() -> None:
    trace_dir, extra, *names = sys.argv[1:]
    configure(trace_dir, json.loads(extra))
    app = build_app()
    from wstrace import provider

    for name in names:
        asyncio.run(SCENARIOS[name](app))
    provider.flush()


if __name__ == "__main__":
    main()
