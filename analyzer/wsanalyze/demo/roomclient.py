"""A real client of the example room app: WebSockets with a subprotocol token, and its HTTP API.

::

    async with RoomSocket(stack.ws_url("lobby"), token) as alice:
        message_id = await alice.say("@bot hello")
        await alice.wait_for("bot", message_id)          # the bot's one-shot answer
        await alice.stop(message_id)                     # the Stop button
    await post_message(stack.web_url, "lobby", token, "@bot from the REST API")

The socket offers the subprotocols ``["bearer", "<jwt>"]`` (as browsers do, who
cannot set headers on a WebSocket) and reads every frame in the background, so
a scenario can wait for one frame while others keep arriving. Every client frame
carries its own ``id``; every server frame has ``message_id``. No Django here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

__all__ = ["HttpAnswer", "RoomSocket", "edit_message", "post_message"]

Frame = dict[str, Any]


class RoomSocket:
    """One WebSocket to a room (or to a user's notification route), read in the background."""

    def __init__(self, url: str, token: str | None, *, open_timeout: float = 10.0) -> None:
        self.url = url
        self.token = token
        self.open_timeout = open_timeout
        self.frames: list[Frame] = []
        self.sent: list[Frame] = []
        self.subprotocol: str | None = None
        self.close_code: int | None = None  # 1006 when the connection dropped without a close
        self.closed_by: str | None = None  # "server" | "client"
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task | None = None
        self._arrived = asyncio.Condition()

    async def open(self) -> RoomSocket:
        """Connect (offering ``bearer`` + the token as subprotocols) and start reading."""
        offered = ["bearer", self.token] if self.token else None
        self._ws = await connect(
            self.url, subprotocols=offered, open_timeout=self.open_timeout, close_timeout=2
        )
        self.subprotocol = self._ws.subprotocol
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for raw in self._ws:
                try:
                    frame = json.loads(raw)
                except ValueError:
                    frame = None
                async with self._arrived:
                    self.frames.append(frame if isinstance(frame, dict) else {"raw": raw})
                    self._arrived.notify_all()
        except ConnectionClosed:
            pass
        finally:
            if self.closed_by is None:
                self.closed_by = "server"
                self.close_code = self._ws.close_code  # 1006 when no close frame came
            async with self._arrived:
                self._arrived.notify_all()

    @property
    def closed(self) -> bool:
        return self.closed_by is not None

    async def send(self, frame: Frame) -> str:
        """Send one JSON frame (given an ``id`` when it has none); return that id."""
        assert self._ws is not None, "open() first"
        frame = {**frame, "id": frame.get("id") or uuid.uuid4().hex}
        self.sent.append(frame)
        await self._ws.send(json.dumps(frame))
        return frame["id"]

    async def say(self, text: str, message_id: str | None = None) -> str:
        """Post a chat message to the room; return its id."""
        return await self.send({"type": "message", "id": message_id, "text": text})

    async def typing(self) -> str:
        return await self.send({"type": "typing"})

    async def ping(self) -> str:
        return await self.send({"type": "ping"})

    async def stop(self, target: str) -> str:
        """Press Stop on the answer to ``target``; return the stop frame's own id."""
        return await self.send({"type": "stop", "target": target})

    def of(self, kind: str | None = None, message_id: str | None = None) -> list[Frame]:
        """Frames received so far of a type and/or for a message id."""
        return [
            f
            for f in self.frames
            if (kind is None or f.get("type") == kind)
            and (message_id is None or f.get("message_id") == message_id)
        ]

    async def wait(self, predicate: Callable[[RoomSocket], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate(self)`` holds (True) or the socket closed / time ran out (False)."""

        async def until() -> None:
            async with self._arrived:
                await self._arrived.wait_for(lambda: predicate(self) or self.closed)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(until(), timeout)
        return predicate(self)

    async def wait_for(
        self, kind: str, message_id: str | None = None, count: int = 1, timeout: float = 10.0
    ) -> bool:
        """Wait until ``count`` frames of ``kind`` (for ``message_id``) arrived."""
        return await self.wait(lambda s: len(s.of(kind, message_id)) >= count, timeout)

    async def wait_closed(self, timeout: float = 10.0) -> bool:
        return await self.wait(lambda s: s.closed, timeout)

    async def close(self) -> None:
        """Close with 1000 (the user left) and stop reading."""
        if self._ws is not None and self.closed_by is None:
            self.closed_by = "client"
            await self._ws.close()
            self.close_code = self._ws.close_code
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def __aenter__(self) -> RoomSocket:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class HttpAnswer(dict):
    """The JSON body of an API answer, with its HTTP ``status``."""

    status: int = 0


def _request(url: str, token: str | None, body: Frame, timeout: float) -> HttpAnswer:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        answer = HttpAnswer(json.loads(raw or b"{}"))
    except ValueError:
        answer = HttpAnswer(raw=raw.decode("latin1"))
    answer.status = status
    return answer


async def post_message(
    base_url: str,
    conversation_id: str,
    token: str | None,
    text: str,
    message_id: str | None = None,
    *,
    timeout: float = 10.0,
) -> HttpAnswer:
    """``POST /api/rooms/<conversation_id>/messages/`` ``{"id", "text"}`` (201 when saved)."""
    url = f"{base_url}/api/rooms/{conversation_id}/messages/"
    body = {"id": message_id or uuid.uuid4().hex, "text": text}
    return await asyncio.to_thread(_request, url, token, body, timeout)


async def edit_message(
    base_url: str,
    message_id: str,
    token: str | None,
    text: str,
    room: str,
    *,
    timeout: float = 10.0,
) -> HttpAnswer:
    """``POST /api/messages/<message_id>/edit/`` ``{"text", "room"}``: the bot answers again (202)."""
    url = f"{base_url}/api/messages/{message_id}/edit/"
    return await asyncio.to_thread(_request, url, token, {"text": text, "room": room}, timeout)
