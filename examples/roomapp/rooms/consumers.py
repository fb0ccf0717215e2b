"""The room consumer (``ws/rooms/<conversation_id>/``) and the notification consumer (``ws/user/<id>/``).

Client frames on a room socket (every one may carry its own ``id``):

* ``{"type": "message", "id", "text"}``: echoed to the room (``room.message``), then
  ``conversation.updated`` goes to every participant's ``user_<id>`` group, then
  the mentioned bot's task starts (none without a mention);
* ``{"type": "typing"}``: relayed to the other sockets of the room; no task;
* ``{"type": "ping"}``: answered ``{"type": "pong"}`` on this socket; no task;
* ``{"type": "stop", "target": "<message id>"}``: revokes the task answering that
  message (``terminate=True``) and answers ``{"type": "stopped"}``.

Server frames carry the app's ids: ``message``, ``bot``, ``chunk``, ``done``,
``typing``, ``pong``, ``stopped``, ``error`` all have ``message_id``.
A socket without a valid token is accepted, then closed 4001.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid

import redis.asyncio as aioredis
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from config.celery import app as celery_app
from config.jsonlog import log_event
from django.conf import settings

from .auth import SUBPROTOCOL
from .bots import (
    TASK_ID_TTL,
    answer_channel,
    mentioned_bot,
    participants_key,
    room_group,
    start_bot,
    task_key,
    user_group,
)

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4001
ANSWER_TIMEOUT = 60.0  # a pub/sub answer not finished by then is given up


def _authenticated(scope: dict) -> bool:
    user = scope.get("user")
    return user is not None and user.is_authenticated


class RoomConsumer(AsyncJsonWebsocketConsumer):
    """One socket of a user in a room (users often have two: a tab and a phone)."""

    async def connect(self):
        self.conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        self.group = room_group(self.conversation_id)
        self.joined = False
        self.redis = None
        self.task_ids: dict[str, str] = {}  # message id -> Celery task id
        self.streams: dict[str, asyncio.Task] = {}  # message id -> pub/sub forwarder
        subprotocol = SUBPROTOCOL if SUBPROTOCOL in self.scope.get("subprotocols", []) else None
        if not _authenticated(self.scope):
            # Accept first so the browser sees the app's close code, not a failed handshake.
            await self.accept(subprotocol=subprotocol)
            log_event(
                logger,
                "ws rejected",
                conversation_id=self.conversation_id,
                close_code=CLOSE_UNAUTHENTICATED,
                reason="unauthenticated",
            )
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user_id = self.scope["user"].id
        self.redis = aioredis.Redis.from_url(settings.REDIS_URL)
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.joined = True
        await self.redis.sadd(participants_key(self.conversation_id), self.user_id)
        await self.accept(subprotocol=subprotocol)
        log_event(
            logger, "ws connected", conversation_id=self.conversation_id, user_id=self.user_id
        )

    async def disconnect(self, code):
        log_event(logger, "ws disconnected", conversation_id=self.conversation_id, close_code=code)
        for stream in list(self.streams.values()):
            stream.cancel()
        for stream in list(self.streams.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await stream
        if self.joined:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.joined = False
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict):
            await self.send_json({"type": "error", "message_id": None, "error": "not an object"})
            return
        frame_id = str(content.get("id") or uuid.uuid4().hex)
        handler = {
            "message": self.on_message,
            "typing": self.on_typing,
            "ping": self.on_ping,
            "stop": self.on_stop,
        }.get(content.get("type", "message"))
        if handler is None:
            await self.send_json({"type": "error", "message_id": frame_id, "error": "bad type"})
            return
        await handler(frame_id, content)

    # --- client frames -----------------------------------------------------------
    async def on_message(self, message_id: str, content: dict) -> None:
        """Echo to the room, notify participants, start the mentioned bot."""
        text = str(content.get("text") or "")
        log_event(
            logger, "message received", conversation_id=self.conversation_id, message_id=message_id
        )
        await self.channel_layer.group_send(
            self.group,
            {"type": "room.message", "message_id": message_id, "user": self.user_id, "text": text},
        )
        await self.notify_participants(message_id)
        bot = mentioned_bot(text)
        if bot is None:
            return
        if bot == "pubsub":
            # Subscribe before the task can publish, or the first chunks go nowhere.
            await self.subscribe_answer(message_id)
        result = start_bot(bot, self.conversation_id, message_id, text)
        self.task_ids[message_id] = result.id
        await self.redis.set(task_key(message_id), result.id, ex=TASK_ID_TTL)

    async def notify_participants(self, message_id: str) -> None:
        """What a post_save signal does: tell every participant's other screens."""
        members = await self.redis.smembers(participants_key(self.conversation_id))
        event = {
            "type": "conversation.updated",
            "conversation_id": self.conversation_id,
            "message_id": message_id,
        }
        for user_id in sorted(member.decode() for member in members):
            await self.channel_layer.group_send(user_group(user_id), event)

    async def on_typing(self, message_id: str, content: dict) -> None:
        await self.channel_layer.group_send(
            self.group,
            {
                "type": "room.typing",
                "message_id": message_id,
                "user": self.user_id,
                "sender": self.channel_name,
            },
        )

    async def on_ping(self, message_id: str, content: dict) -> None:
        await self.send_json({"type": "pong", "message_id": message_id})

    async def on_stop(self, message_id: str, content: dict) -> None:
        """The Stop button: terminate the task still answering ``target``."""
        target = str(content.get("target") or "")
        task_id = self.task_ids.get(target)
        if task_id is None and target:
            stored = await self.redis.get(task_key(target))
            task_id = stored.decode() if stored else None
        if task_id is not None:
            log_event(
                logger,
                "stop requested: revoking task",
                conversation_id=self.conversation_id,
                message_id=target,
                task_id=task_id,
            )
            celery_app.control.revoke(task_id, terminate=True)
        stream = self.streams.get(target)
        if stream is not None:
            stream.cancel()
        await self.send_json(
            {"type": "stopped", "message_id": message_id, "target": target, "task_id": task_id}
        )

    # --- raw pub/sub answers -------------------------------------------------------
    async def subscribe_answer(self, message_id: str) -> None:
        """Subscribe to the answer's channel and forward it from a background task."""
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(answer_channel(message_id))
        self.streams[message_id] = asyncio.create_task(self.forward_answer(message_id, pubsub))

    async def forward_answer(self, message_id: str, pubsub) -> None:
        """Send each published chunk to this socket until the ``done`` one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + ANSWER_TIMEOUT
        try:
            while loop.time() < deadline:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is None:
                    continue
                payload = message["data"].decode()
                await self.send(text_data=payload)
                if json.loads(payload).get("type") == "done":
                    break
        finally:
            with contextlib.suppress(Exception):
                await pubsub.unsubscribe(answer_channel(message_id))
                await pubsub.aclose()
            self.streams.pop(message_id, None)

    # --- channel-layer events --------------------------------------------------------
    async def room_message(self, event):
        await self.send_json(
            {
                "type": "message",
                "message_id": event["message_id"],
                "user": event["user"],
                "text": event["text"],
            }
        )

    async def room_typing(self, event):
        if event.get("sender") == self.channel_name:
            return  # the typist's own socket does not need it
        await self.send_json(
            {"type": "typing", "message_id": event["message_id"], "user": event["user"]}
        )

    async def bot_message(self, event):
        await self.send_json(
            {"type": "bot", "message_id": event["message_id"], "text": event["text"]}
        )

    async def bot_chunk(self, event):
        await self.send_json(
            {
                "type": "chunk",
                "message_id": event["message_id"],
                "seq": event["seq"],
                "text": event["text"],
            }
        )

    async def bot_done(self, event):
        await self.send_json(
            {"type": "done", "message_id": event["message_id"], "chunks": event["chunks"]}
        )


class UserConsumer(AsyncJsonWebsocketConsumer):
    """A user's notification socket: unread badges, conversation list updates."""

    async def connect(self):
        self.user_id = self.scope["url_route"]["kwargs"]["user_id"]
        self.group = user_group(self.user_id)
        self.joined = False
        subprotocol = SUBPROTOCOL if SUBPROTOCOL in self.scope.get("subprotocols", []) else None
        user = self.scope.get("user")
        if not _authenticated(self.scope) or user.id != self.user_id:
            await self.accept(subprotocol=subprotocol)
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.joined = True
        await self.accept(subprotocol=subprotocol)

    async def disconnect(self, code):
        if self.joined:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong", "message_id": content.get("id")})

    async def conversation_updated(self, event):
        await self.send_json(
            {
                "type": "conversation.updated",
                "conversation_id": event["conversation_id"],
                "message_id": event["message_id"],
            }
        )
