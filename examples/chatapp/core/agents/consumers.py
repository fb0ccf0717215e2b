"""The chat consumer: one WebSocket per browser tab, one group per conversation.

Client frames: ``{"type": "message", "id": "<client message id>", "content": "..."}``.
Server frames: ``{"type": "ack", "id", "task_id"}``, then
``{"type": "chunk", "message_id", "seq", "content"}`` per streamed chunk and
``{"type": "done", "message_id", "chunks"}``.

Close codes: 4001 not authenticated, 4004 rate limited, 4005 invalid frame.

Fault switches in the message text (see tasks.py for the worker side):
``fault:no_worker`` enqueues to CHAT_PRIORITY_QUEUE, which no worker consumes;
``fault:consumer_gone`` leaves the group, enqueues, and rejoins only once the
task has finished, so the whole answer streams to an empty group. A chunk
flagged ``stall`` (``fault:channel_full``) holds the handler until the task has
finished, so everything the task publishes meanwhile piles up in this
consumer's channel until it is full; ``slow`` adds a sleep per chunk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import deque

from celery.result import AsyncResult
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from config.logfmt import log_event
from django.conf import settings

from .tasks import fault_in, group_name, run_agent

try:  # Daphne (autobahn) raises this when sending on a socket the client already closed
    from autobahn.exception import Disconnected as SocketClosed
except ImportError:  # another ASGI server
    SocketClosed = ConnectionError

logger = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4001
CLOSE_RATE_LIMITED = 4004
CLOSE_INVALID_MESSAGE = 4005
CLOSE_REASONS = {
    CLOSE_UNAUTHENTICATED: "unauthenticated",
    CLOSE_RATE_LIMITED: "rate_limited",
    CLOSE_INVALID_MESSAGE: "invalid_message",
}
TASK_WAIT_TIMEOUT = 30.0


class ChatConsumer(AsyncJsonWebsocketConsumer):
    """Relay client messages to the agent and its streamed answer back to the client."""

    async def connect(self):
        self.conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        self.group = group_name(self.conversation_id)
        self.frame_times: deque[float] = deque()
        self.closing = False
        self.joined = False
        self.rejoin_tasks: set[asyncio.Task] = set()
        self.task_ids: dict[str, str] = {}  # message id -> Celery task id
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.accept()
            await self.close_with(CLOSE_UNAUTHENTICATED)
            return
        await self.join_group()
        await self.accept()
        log_event(logger, "ws connected", conv=self.conversation_id, user=user.id)

    async def disconnect(self, code):
        log_event(logger, "ws disconnected", conv=self.conversation_id, code=code)
        for task in self.rejoin_tasks:
            task.cancel()
        await self.leave_group()

    async def close_with(self, code: int) -> None:
        """Leave the group and close the socket once, with an application close code."""
        if not self.closing:
            self.closing = True
            reason = CLOSE_REASONS.get(code)
            log_event(logger, "ws closing", conv=self.conversation_id, code=code, reason=reason)
            await self.leave_group()
            await self.close(code=code)

    async def send_frame(self, frame: dict) -> bool:
        """Send a frame unless the socket is closed (by us, or by a client that left)."""
        if self.closing:
            return False
        try:
            await self.send_json(frame)
            return True
        except SocketClosed:
            # The client left while its answer was streaming; the disconnect event
            # is on its way. Without this, the consumer would crash on every such race.
            self.closing = True
            log_event(
                logger, "client left mid-stream: dropping the rest", conv=self.conversation_id
            )
            return False

    def allow_frame(self) -> bool:
        """Count one frame against the sliding-window rate limit."""
        now = time.monotonic()
        while self.frame_times and now - self.frame_times[0] > settings.CHAT_RATE_WINDOW:
            self.frame_times.popleft()
        self.frame_times.append(now)
        return len(self.frame_times) <= settings.CHAT_RATE_LIMIT

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if self.closing:
            return
        if not self.allow_frame():
            await self.close_with(CLOSE_RATE_LIMITED)
            return
        try:
            content = json.loads(text_data) if text_data is not None else None
        except ValueError:
            content = None
        if not isinstance(content, dict):
            await self.close_with(CLOSE_INVALID_MESSAGE)
            return
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs):
        text = content.get("content")
        if content.get("type", "message") != "message" or not isinstance(text, str) or not text:
            await self.close_with(CLOSE_INVALID_MESSAGE)
            return
        message_id = str(content.get("id") or uuid.uuid4().hex)
        log_event(logger, "message received", conv=self.conversation_id, message_id=message_id)
        fault = fault_in(text)
        if fault == "consumer_gone":
            await self.leave_group()
        args = (self.conversation_id, message_id, text)
        if fault == "no_worker":
            queue = settings.CHAT_PRIORITY_QUEUE
            result = run_agent.apply_async(args, queue=queue)
        else:
            queue = settings.CELERY_TASK_DEFAULT_QUEUE
            result = run_agent.delay(*args)
        log_event(
            logger,
            "message queued",
            conv=self.conversation_id,
            message_id=message_id,
            task=result.id,
            queue=queue,
        )
        self.task_ids[message_id] = result.id
        await self.send_frame({"type": "ack", "id": message_id, "task_id": result.id})
        if fault == "consumer_gone":
            task = asyncio.create_task(self.rejoin_after(result.id))
            self.rejoin_tasks.add(task)
            task.add_done_callback(self.rejoin_tasks.discard)

    async def join_group(self) -> None:
        """Join the conversation group; the answers the worker streams arrive through it."""
        await self.channel_layer.group_add(self.group, self.channel_name)
        self.joined = True
        log_event(logger, "joined group", conv=self.conversation_id, group=self.group)

    async def leave_group(self) -> None:
        """Leave the conversation group (as a reconnecting or slow-joining consumer is)."""
        if self.joined:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.joined = False
            log_event(logger, "left group", conv=self.conversation_id, group=self.group)

    async def wait_for_task(self, task_id: str | None) -> None:
        """Wait (at most TASK_WAIT_TIMEOUT) until a task has finished."""
        if task_id is None:
            return
        result = AsyncResult(task_id, app=run_agent.app)
        deadline = time.monotonic() + TASK_WAIT_TIMEOUT
        while time.monotonic() < deadline and not await asyncio.to_thread(result.ready):
            await asyncio.sleep(0.05)

    async def rejoin_after(self, task_id: str) -> None:
        """Join the group again once the task has finished streaming."""
        await self.wait_for_task(task_id)
        if not self.closing:
            await self.join_group()

    async def chat_chunk(self, event):
        if event.get("stall"):
            # A handler stuck on something slow while the agent bursts its answer;
            # made deterministic: stuck until the task has published everything.
            await self.wait_for_task(self.task_ids.get(event["message_id"]))
        if event.get("slow"):
            await asyncio.sleep(event["slow"])
        frame = {"type": "chunk", "message_id": event["message_id"], "seq": event["seq"]}
        try:
            frame["content"] = event["content"]
        except KeyError:
            # Not handled (Daphne closes 1011 as before); logged so the logs say which message.
            log_event(
                logger,
                "chunk handler raised",
                level=logging.ERROR,
                exc_info=True,
                conv=self.conversation_id,
                message_id=event["message_id"],
                seq=event["seq"],
            )
            raise
        await self.send_frame(frame)

    async def chat_done(self, event):
        sent = await self.send_frame(
            {"type": "done", "message_id": event["message_id"], "chunks": event.get("chunks")}
        )
        if sent:
            log_event(
                logger,
                "answer sent",
                conv=self.conversation_id,
                message_id=event["message_id"],
                chunks=event.get("chunks"),
            )
