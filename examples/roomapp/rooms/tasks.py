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
from celery.signals import task_failure, task_postrun, task_prerun
from channels.layers import get_channel_layer
from config.jsonlog import log_event
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
    log_event(
        logger,
        "streamed chunks",
        conversation_id=conversation_id,
        message_id=message_id,
        chunks=count,
    )
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
    log_event(
        logger,
        "published chunks",
        conversation_id=conversation_id,
        message_id=message_id,
        chunks=count,
        receivers=receivers,
    )
    return {"conversation_id": conversation_id, "message_id": message_id, "receivers": receivers}


# --- the app's own lines about its tasks (JSON, config/jsonlog.py) ------------------------
def _ids(task_id: str, args: tuple | list | None) -> dict:
    """The conversation and message a bot task works for (its first two arguments)."""
    args = list(args or ())
    return {
        "conversation_id": args[0] if args else None,
        "message_id": args[1] if len(args) > 1 else None,
        "task_id": task_id,
    }


def _ours(task) -> bool:
    return bool(getattr(task, "name", "")) and task.name.startswith("rooms.tasks.")


@task_prerun.connect
def _log_task_started(task_id=None, task=None, args=None, **kwargs) -> None:
    if _ours(task):
        log_event(logger, "task started", task_name=task.name, **_ids(task_id, args))


@task_postrun.connect
def _log_task_finished(task_id=None, task=None, args=None, state=None, **kwargs) -> None:
    if _ours(task) and state == "SUCCESS":
        log_event(logger, "task finished", task_name=task.name, **_ids(task_id, args))


@task_failure.connect
def _log_task_raised(
    sender=None, task_id=None, exception=None, args=None, einfo=None, **kw
) -> None:
    if _ours(sender):
        log_event(
            logger,
            "task raised",
            level=logging.ERROR,
            exc_info=(type(exception), exception, exception.__traceback__) if exception else None,
            task_name=sender.name,
            **_ids(task_id, args),
        )
