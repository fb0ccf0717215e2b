"""What the room app shares between the consumer, the views and the tasks.

Group names, who is mentioned, which fault a message asks for, and the Redis
bookkeeping real apps keep in their database (room participants, the task
answering each message). Nothing here imports the consumer or the tasks.

Bots answer only when mentioned:

* ``@bot ...``: ``answer_bot`` answers with one ``bot.message`` group_send;
* ``@streambot ...``: ``stream_bot`` streams ``bot.chunk`` events, then ``bot.done``;
* ``@pubsub ...``: ``pubsub_bot`` PUBLISHes raw chunks to ``answer:<message_id>``,
  which the consumer subscribed to before enqueueing.

Message text may also carry ``chunks=N`` / ``delay=S`` (stream shape) and
``fault:<name>`` (see ``FAULTS``); env ``ROOM_BOT_FAULT`` sets a fault for every task.
"""

from __future__ import annotations

import logging
import re

from config.jsonlog import log_event
from django.conf import settings

logger = logging.getLogger(__name__)

BOTS = ("bot", "streambot", "pubsub")
FAULTS = {
    "task_failed": "the task raises (after 2 chunks when streaming)",
    "sigkill": "the worker process is SIGKILLed after 2 chunks",
    "slow_start": "the pub/sub task waits ROOM_PUBSUB_START_DELAY before its first chunk",
}
MENTION_RE = re.compile(r"(?<![\w@])@(bot|streambot|pubsub)\b")
FAULT_RE = re.compile(r"fault:([a-z_]+)")
CHUNKS_RE = re.compile(r"\bchunks=(\d{1,3})\b")
DELAY_RE = re.compile(r"\bdelay=(\d+(?:\.\d+)?)\b")
TASK_ID_TTL = 3600


def room_group(conversation_id: str) -> str:
    """The channel-layer group every socket of a room joins."""
    return f"room_{conversation_id}"


def user_group(user_id: str) -> str:
    """The channel-layer group of one user's notification sockets."""
    return f"user_{user_id}"


def answer_channel(message_id: str) -> str:
    """The raw Redis pub/sub channel a ``@pubsub`` answer streams on."""
    return f"answer:{message_id}"


def participants_key(conversation_id: str) -> str:
    """Redis set of the user ids that ever joined a room (a membership table, really)."""
    return f"rooms:{conversation_id}:participants"


def task_key(message_id: str) -> str:
    """Redis key holding the id of the Celery task answering a message (for Stop)."""
    return f"rooms:task:{message_id}"


def mentioned_bot(text: str) -> str | None:
    """Return the bot a message mentions (``bot``, ``streambot``, ``pubsub``), if any."""
    match = MENTION_RE.search(text or "")
    return match.group(1) if match else None


def fault_of(text: str) -> str | None:
    """Return the fault a message asks for, else the worker-wide ROOM_BOT_FAULT."""
    match = FAULT_RE.search(text or "")
    return match.group(1) if match else (settings.ROOM_BOT_FAULT or None)


def stream_shape(text: str) -> tuple[int, float]:
    """Return (chunks, seconds between chunks) of a streamed answer."""
    chunks = CHUNKS_RE.search(text or "")
    delay = DELAY_RE.search(text or "")
    return (
        int(chunks.group(1)) if chunks else settings.ROOM_STREAM_CHUNKS,
        float(delay.group(1)) if delay else settings.ROOM_STREAM_DELAY,
    )


def start_bot(bot: str, conversation_id: str, message_id: str, text: str):
    """Enqueue the task of a bot for one message; return its AsyncResult."""
    from .tasks import answer_bot, pubsub_bot, stream_bot

    task = {"bot": answer_bot, "streambot": stream_bot, "pubsub": pubsub_bot}[bot]
    result = task.delay(conversation_id, message_id, text)
    log_event(
        logger,
        "message queued",
        conversation_id=conversation_id,
        message_id=message_id,
        task_id=result.id,
        task_name=task.name,
        queue=task.app.conf.task_default_queue,
    )
    return result
