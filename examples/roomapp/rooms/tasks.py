"""The bots' Celery tasks: one-shot answers, streamed answers, raw pub/sub answers.

Events are plain dicts (msgpack cannot pack datetimes or model instances).
Faults (``rooms.bots.FAULTS``) happen through the real mechanism: an exception,
a SIGKILL of the pool process, a slow start.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time

import redis
from asgiref.sync import async_to_sync
from celery import shared_task
from channels.layers import get_channel_layer
from django.conf import settings

from .bots import answer_channel, fault_of, room_group, stream_shape

logger = logging.getLogger(__name__)

WORDS = [
    "Sure,",
    "here",
    "is",
    "what",
    "I",
    "found",
    "about",
    "that",
    "in",
    "the",
    "team's",
    "notes",
    "and",
    "history",
]


class BotError(RuntimeError):
    """The bot's backend failed (what an LLM client raises on HTTP 5xx)."""


def _words(count: int) -> list[str]:
    return [WORDS[i % len(WORDS)] + " " for i in range(count)]


def _maybe_fail(fault: str | None, seq: int) -> None:
    """Play a mid-answer fault once ``seq`` chunks went out."""
    if fault == "task_failed" and seq >= 2:
        raise BotError("bot backend failed: upstream model API returned HTTP 502")
    if fault == "sigkill" and seq >= 2:
        # What the OOM killer does to a pool process: no exception, no cleanup.
        os.kill(os.getpid(), signal.SIGKILL)


@shared_task(name="rooms.tasks.answer_bot")
def answer_bot(conversation_id: str, message_id: str, text: str) -> dict:
    """Answer a ``@bot`` mention with one message to the room (not streamed)."""
    if fault_of(text) == "task_failed":
        raise BotError("bot backend failed: upstream model API returned HTTP 502")
    reply = f"You said: {text}"
    event = {"type": "bot.message", "message_id": message_id, "text": reply}
    async_to_sync(get_channel_layer().group_send)(room_group(conversation_id), event)
    return {"conversation_id": conversation_id, "message_id": message_id}


@shared_task(name="rooms.tasks.stream_bot")
def stream_bot(conversation_id: str, message_id: str, text: str) -> dict:
    """Stream a ``@streambot`` answer chunk by chunk to the room, then ``bot.done``."""
    fault = fault_of(text)
    count, delay = stream_shape(text)
    group = room_group(conversation_id)
    group_send = async_to_sync(get_channel_layer().group_send)
    for seq, word in enumerate(_words(count), start=1):
        group_send(group, {"type": "bot.chunk", "message_id": message_id, "seq": seq, "text": word})
        time.sleep(delay)
        _maybe_fail(fault, seq)
    group_send(group, {"type": "bot.done", "message_id": message_id, "chunks": count})
    logger.info("streamed %d chunks for message %s", count, message_id)
    return {"conversation_id": conversation_id, "message_id": message_id, "chunks": count}


@shared_task(name="rooms.tasks.pubsub_bot")
def pubsub_bot(conversation_id: str, message_id: str, text: str) -> dict:
    """Stream a ``@pubsub`` answer with raw Redis PUBLISH on ``answer:<message_id>``."""
    fault = fault_of(text)
    count, delay = stream_shape(text)
    channel = answer_channel(message_id)
    if fault == "slow_start":
        time.sleep(settings.ROOM_PUBSUB_START_DELAY)
    receivers = []
    with redis.Redis.from_url(settings.REDIS_URL) as client:
        for seq, word in enumerate(_words(count), start=1):
            frame = {"type": "chunk", "message_id": message_id, "seq": seq, "text": word}
            receivers.append(client.publish(channel, json.dumps(frame)))
            time.sleep(delay)
            _maybe_fail(fault, seq)
        done = {"type": "done", "message_id": message_id, "chunks": count}
        receivers.append(client.publish(channel, json.dumps(done)))
    logger.info("published %d chunks for message %s to %s", count, message_id, receivers)
    return {"conversation_id": conversation_id, "message_id": message_id, "receivers": receivers}
