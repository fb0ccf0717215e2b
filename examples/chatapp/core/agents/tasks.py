"""The agent task: a simulated LangGraph agent streaming its answer over the channel layer.

The consumer enqueues ``run_agent``; the worker streams the answer chunk by
chunk to the conversation's group with ``async_to_sync(group_send)`` and ends
with a ``chat.done``. Events are plain dicts (msgpack cannot pack UUIDs,
datetimes or LangGraph objects).

Fault switches, written anywhere in the message text as ``fault:<name>``:

* ``task_failed``: two chunks, then the agent's tool raises.
* ``consumer_error``: the second chunk is a tool-call chunk without ``content``;
  the consumer's handler raises ``KeyError`` and Daphne closes with 1011.
* ``channel_full``: 3 x capacity chunks with no delay; the first asks the
  consumer's handler to stall until this task is over, so the consumer's
  channel fills up (capacity) and channels_redis drops the rest, ``done``
  included. The client normally receives chunks 1 .. capacity + 1.
* ``long_stream`` / ``client_disconnected``: CHAT_LONG_CHUNKS chunks (about a
  second) so a client can leave mid-stream.
"""

from __future__ import annotations

import logging
import re
import time

from asgiref.sync import async_to_sync
from celery import shared_task
from channels.layers import get_channel_layer
from config.logfmt import log_event
from django.conf import settings

logger = logging.getLogger(__name__)

FAULT_RE = re.compile(r"fault:([a-z_]+)")
ANSWER = [
    "Let",
    "me",
    "look",
    "into",
    "that.",
    "I",
    "checked",
    "the",
    "knowledge",
    "base",
    "and",
    "the",
    "recent",
    "tickets;",
    "the",
    "short",
    "answer",
    "is",
    "yes,",
    "and",
    "here",
    "is",
    "how",
    "to",
    "do",
    "it",
    "step",
    "by",
    "step,",
    "with",
    "the",
    "caveats",
    "that",
    "matter",
    "in",
    "production",
    "and",
    "a",
    "link",
    "to",
    "the",
    "runbook.",
]


class AgentToolError(RuntimeError):
    """A tool the agent called failed (what a LangGraph ToolNode re-raises)."""


def fault_in(content: str) -> str | None:
    """Return the fault switch named in a message text, if any."""
    match = FAULT_RE.search(content or "")
    return match.group(1) if match else None


def group_name(conversation_id: str) -> str:
    """Return the channel-layer group of one conversation."""
    return f"chat_{conversation_id}"


def answer_chunks(count: int) -> list[str]:
    """Split the canned answer into ``count`` pieces (repeating it when needed)."""
    words = ANSWER * (count // len(ANSWER) + 1)
    size = max(1, len(ANSWER) // max(count, 1))
    return [" ".join(words[i * size : (i + 1) * size]) + " " for i in range(count)]


def stream_plan(fault: str | None) -> tuple[int, float, float]:
    """Return (chunks, delay between chunks, consumer delay per chunk) for a fault."""
    if fault == "channel_full":
        return 3 * settings.CHAT_CHANNEL_CAPACITY, 0.0, settings.CHAT_SLOW_HANDLER
    if fault in ("long_stream", "client_disconnected"):
        return settings.CHAT_LONG_CHUNKS, settings.CHAT_CHUNK_DELAY, 0.0
    return settings.CHAT_CHUNKS, settings.CHAT_CHUNK_DELAY, 0.0


def chunk_event(message_id: str, seq: int, text: str, fault: str | None, slow: float) -> dict:
    """Build the channel-layer event of one streamed chunk."""
    if fault == "consumer_error" and seq == 2:
        # A tool-call chunk: no "content" key, which the consumer does not expect.
        tool_call = {"name": "web_search", "args": {"query": text.strip()}}
        return {"type": "chat.chunk", "message_id": message_id, "seq": seq, "tool_call": tool_call}
    event = {"type": "chat.chunk", "message_id": message_id, "seq": seq, "content": text}
    if fault == "channel_full" and seq == 1:
        event["stall"] = True
    if slow:
        event["slow"] = slow
    return event


def _stream_answer(conversation_id: str, message_id: str, content: str) -> int:
    """Stream the answer chunk by chunk to the conversation's group; return the chunk count."""
    fault = fault_in(content)
    count, delay, slow = stream_plan(fault)
    group = group_name(conversation_id)
    group_send = async_to_sync(get_channel_layer().group_send)
    for seq, text in enumerate(answer_chunks(count), start=1):
        if fault == "task_failed" and seq == 3:
            raise AgentToolError("tool 'web_search' failed: upstream search API returned HTTP 502")
        group_send(group, chunk_event(message_id, seq, text, fault, slow))
        if delay:
            time.sleep(delay)
    group_send(group, {"type": "chat.done", "message_id": message_id, "chunks": count})
    return count


@shared_task(name="core.agents.tasks.run_agent")
def run_agent(conversation_id: str, message_id: str, content: str) -> dict:
    """Run the agent for one message and stream its answer to the conversation."""
    ids = {"conv": conversation_id, "message_id": message_id, "task": run_agent.request.id}
    log_event(logger, "task started", **ids)
    try:
        count = _stream_answer(conversation_id, message_id, content)
    except Exception:
        log_event(logger, "task raised", level=logging.ERROR, exc_info=True, **ids)
        raise
    log_event(logger, "task finished", chunks=count, **ids)
    return {"conversation_id": conversation_id, "message_id": message_id, "published": count}
