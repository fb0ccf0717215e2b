"""A small real Channels app fed hostile client input, run in a subprocess (issue 13).

``python client_input_app.py TRACE_DIR SETTINGS_JSON SCENARIO...`` configures
Django with wstrace (``WSTRACE`` = the JSON merged over a file store in
TRACE_DIR) and an in-memory channel layer, runs each named scenario through
``channels.testing.WebsocketCommunicator`` against a ProtocolTypeRouter →
URLRouter stack, flushes the spans and exits.

Routes::

    ws/chat/<conversation_id>/   EchoConsumer (a conversation)
    ws/lobby/                    EchoConsumer (no conversation)

EchoConsumer acks each frame through a group_send (so a ws.deliver and its
ws.send follow each receive). Content ``"boom"`` raises a ValueError quoting the
frame; ``"chained"`` a RuntimeError quoting it, raised from a KeyError quoting it.
"""

from __future__ import annotations

import asyncio
import json
import sys
from contextlib import suppress
from typing import Any

import django
from django.conf import settings

SECRET = "s3cret-frame-text"
CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
FORGED = {"ws.message_id": "forged-m", "ws.conversation_id": "forged-c"}
FORGED_HEADERS = [
    (b"traceparent", f"00-{CLIENT_TRACE_ID}-00f067aa0ba902b7-01".encode()),
    (b"baggage", b"ws.message_id=forged-m,ws.conversation_id=forged-c,ws.connection_id=forged-x"),
]


def configure(trace_dir: str, extra: dict[str, Any]) -> None:
    settings.configure(
        INSTALLED_APPS=["channels", "wstrace"],
        CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
        WSTRACE={"FILE_DIR": trace_dir, "SERVICE_NAME": "client-input", **extra},
    )
    django.setup()


def build_app() -> Any:
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.urls import path

    class EchoConsumer(AsyncWebsocketConsumer):
        async def connect(self):
            kwargs = self.scope["url_route"]["kwargs"]
            self.group = "echo_" + kwargs.get("conversation_id", "lobby")
            await self.channel_layer.group_add(self.group, self.channel_name)
            await self.accept()

        async def receive(self, text_data=None, bytes_data=None):
            data = json.loads(text_data)
            if data.get("content") == "boom":
                raise ValueError(f"invalid frame: {text_data}")
            if data.get("content") == "chained":
                try:
                    raise KeyError(text_data)
                except KeyError as exc:
                    raise RuntimeError(f"could not handle {text_data}") from exc
            await self.channel_layer.group_send(
                self.group, {"type": "echo.ack", "id": data.get("id")}
            )

        async def echo_ack(self, event):
            await self.send(text_data=json.dumps({"type": "ack", "id": event["id"]}))

    routes = URLRouter(
        [
            path("ws/chat/<conversation_id>/", EchoConsumer.as_asgi()),
            path("ws/lobby/", EchoConsumer.as_asgi()),
        ]
    )
    return ProtocolTypeRouter({"websocket": routes})


async def talk(app: Any, url: str, frames: list[dict[str, Any]], headers: list) -> None:
    """Connect, send each frame and wait for its ack, disconnect."""
    from channels.testing import WebsocketCommunicator

    communicator = WebsocketCommunicator(app, url, headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    for frame in frames:
        await communicator.send_to(text_data=json.dumps(frame))
        await communicator.receive_json_from(timeout=5)
    await communicator.disconnect()


async def crash(app: Any, url: str, content: str) -> None:
    """Send a frame the consumer raises on; the application ends with the exception."""
    from channels.testing import WebsocketCommunicator

    communicator = WebsocketCommunicator(app, url)
    await communicator.connect(timeout=5)
    frame = {"type": "message", "id": f"m-{content}", "content": content, "note": SECRET}
    await communicator.send_to(text_data=json.dumps(frame))
    with suppress(Exception):  # the consumer's exception, re-raised by the communicator
        await communicator.receive_output(timeout=5)


SCENARIOS: dict[str, Any] = {
    "forged_chat": lambda app: talk(
        app, "/ws/chat/c-real/", [{"type": "message", "id": "m-real"}], FORGED_HEADERS
    ),
    "forged_lobby": lambda app: talk(
        app, "/ws/lobby/", [{"type": "message", "id": "m-lobby"}], FORGED_HEADERS
    ),
    "boom": lambda app: crash(app, "/ws/chat/c-boom/", "boom"),
    "chained": lambda app: crash(app, "/ws/chat/c-chained/", "chained"),
}


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
