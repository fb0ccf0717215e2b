"""The clients of ``bench_load_proof.py``: many chat-app connections, each recording the truth.

A connection sends its messages one after the other and keeps reading every frame
the server sends until it closes, so an answer that completes late (after the
client moved on to its next message) still counts as received. What the client
*read* is the ground truth the analyzer's verdicts are scored against: a message
is fully received when its ``done`` frame and every chunk ``1..done.chunks``
arrived on the socket.

Losses are planted with the chat app's own fault switches (``fault:<name>`` in the
text, see ``examples/chatapp/core/agents/tasks.py``); nothing here writes evidence.
Pacing only decides when the next message goes out:

* a healthy message: when its ``done`` arrives (at most ``answer_timeout``);
* ``task_failed`` / ``consumer_gone``: when Celery stored the task's result (read
  from the result backend with the task id of the ack), plus ``settle``;
* ``no_worker``: ``fault_wait`` after the ack (its task never runs);
* ``client_disconnected``: the client closes after two chunks of a long answer;
* ``consumer_error``: the server closes the socket (1011).

The three faults that end the connection (or leave the consumer out of its group
until the task is over) are always the connection's last message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

__all__ = [
    "FAULT_KINDS",
    "ClientRecord",
    "ConnectionPlan",
    "Pacing",
    "make_plans",
    "run_client",
]

# Faults that end the conversation's usefulness for later messages: planted last.
LAST_ONLY = ("client_disconnected", "consumer_error", "consumer_gone")
FAULT_KINDS = ("task_failed", "client_disconnected", "no_worker", "consumer_gone", "consumer_error")
RESULT_KEY = "celery-task-meta-{}"
POLL_S = 0.2


@dataclass(frozen=True)
class ConnectionPlan:
    """One connection: its conversation and its messages as (message id, text, planted fault)."""

    index: int
    conversation_id: str
    messages: tuple[tuple[str, str, str | None], ...]


@dataclass(frozen=True)
class Pacing:
    """How long a client waits before it sends its next message (never what it records)."""

    answer_timeout: float = 180.0
    fault_wait: float = 2.0
    settle: float = 0.5
    open_timeout: float = 120.0
    disconnect_after_chunks: int = 2


@dataclass
class ClientRecord:
    """What one connection sent and read."""

    conversation_id: str
    planted: dict[str, str] = field(default_factory=dict)  # message id -> fault
    connected: bool = False
    opened_at: float | None = None  # time.monotonic() once the handshake succeeded
    error: str | None = None
    sent: list[str] = field(default_factory=list)
    sent_at: dict[str, float] = field(default_factory=dict)  # time.monotonic()
    acks: dict[str, str | None] = field(default_factory=dict)  # message id -> task id
    chunks: dict[str, set[int]] = field(default_factory=dict)
    duplicate_chunks: int = 0
    done: dict[str, int | None] = field(default_factory=dict)  # message id -> announced chunks
    done_at: dict[str, float] = field(default_factory=dict)
    gave_up: list[str] = field(default_factory=list)  # healthy messages past answer_timeout
    close_code: int | None = None
    closed_by: str | None = None
    unexpected: int = 0
    ended: float = 0.0

    def fully_received(self, message_id: str) -> bool:
        """The ``done`` frame and every chunk it announces were read on the socket."""
        if message_id not in self.done:
            return False
        announced = self.done[message_id]
        if not isinstance(announced, int):
            return False
        return set(range(1, announced + 1)) <= self.chunks.get(message_id, set())

    def record(self, raw: str | bytes) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            self.unexpected += 1
            return
        if not isinstance(frame, dict):
            self.unexpected += 1
            return
        kind = frame.get("type")
        if kind == "ack" and "id" in frame:
            self.acks[str(frame["id"])] = frame.get("task_id")
        elif kind == "chunk" and "message_id" in frame and "seq" in frame:
            seqs = self.chunks.setdefault(str(frame["message_id"]), set())
            if frame["seq"] in seqs:
                self.duplicate_chunks += 1
            seqs.add(frame["seq"])
        elif kind == "done" and "message_id" in frame:
            message_id = str(frame["message_id"])
            self.done[message_id] = frame.get("chunks")
            self.done_at.setdefault(message_id, time.monotonic())
        else:
            self.unexpected += 1


def make_plans(
    run_id: str, connections: int, messages: int, fault_every: int, seed: int = 7
) -> list[ConnectionPlan]:
    """Every ``fault_every``-th connection gets one planted fault, the kinds taken in turn."""
    rng = random.Random(seed)
    plans = []
    planted = 0
    for index in range(connections):
        fault = None
        if fault_every and index % fault_every == fault_every - 1:
            fault = FAULT_KINDS[planted % len(FAULT_KINDS)]
            planted += 1
        at = -1
        if fault is not None:
            at = messages - 1 if fault in LAST_ONLY else rng.randrange(messages)
        conversation_id = f"load-{run_id}-{index:04d}"
        items = []
        for position in range(messages):
            message_id = f"{run_id}-{index:04d}-{position:02d}"
            if position == at:
                items.append((message_id, f"please fail: fault:{fault}", fault))
            else:
                items.append((message_id, f"question {position} of connection {index}", None))
        plans.append(ConnectionPlan(index, conversation_id, tuple(items)))
    return plans


class _Reader:
    """Reads every frame of one socket into the record; wakes whoever waits for a change."""

    def __init__(self, ws: Any, record: ClientRecord) -> None:
        self.ws = ws
        self.record = record
        self.changed = asyncio.Event()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for raw in self.ws:
                self.record.record(raw)
                self.changed.set()
        except ConnectionClosed:
            pass
        finally:
            if self.record.closed_by is None:
                self.record.closed_by = "server"
            self.record.close_code = self.ws.close_code
            self.changed.set()

    @property
    def closed(self) -> bool:
        return self.task.done()

    async def wait_until(self, condition: Any, timeout: float) -> bool:
        """Wait until ``condition()`` holds (True) or the socket closed / time is up (False)."""
        deadline = time.monotonic() + timeout
        while not condition():
            left = deadline - time.monotonic()
            if self.closed or left <= 0:
                return bool(condition())
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))
        return True


async def _task_over(redis: Any, task_id: str | None, timeout: float) -> bool:
    """Wait until Celery stored the task's final state in the result backend."""
    if task_id is None:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        raw = await redis.get(RESULT_KEY.format(task_id))
        if raw is not None and json.loads(raw).get("status") in ("SUCCESS", "FAILURE", "REVOKED"):
            return True
        await asyncio.sleep(POLL_S)
    return False


async def _pace(
    reader: _Reader, record: ClientRecord, message_id: str, fault: str | None, pacing: Pacing, redis
) -> bool:
    """Wait as this message's kind needs; False when the connection is over."""
    if fault is None:
        answered = await reader.wait_until(lambda: message_id in record.done, pacing.answer_timeout)
        if not answered and not reader.closed:
            record.gave_up.append(message_id)
        return not reader.closed
    if fault == "client_disconnected":
        need = pacing.disconnect_after_chunks
        await reader.wait_until(
            lambda: len(record.chunks.get(message_id, ())) >= need, pacing.answer_timeout
        )
        return False  # the client leaves now
    if fault == "consumer_error":
        await reader.wait_until(lambda: reader.closed, pacing.answer_timeout)
        return not reader.closed
    await reader.wait_until(lambda: message_id in record.acks, pacing.answer_timeout)
    if fault == "no_worker":
        await asyncio.sleep(pacing.fault_wait)
    else:  # task_failed, consumer_gone: over once the worker stored the task's end
        await _task_over(redis, record.acks.get(message_id), pacing.answer_timeout)
        await asyncio.sleep(pacing.settle)
    return not reader.closed


async def run_client(
    url: str,
    plan: ConnectionPlan,
    pacing: Pacing,
    redis: Any,
    on_sent: Any = None,
    start_delay: float = 0.0,
) -> ClientRecord:
    """Play one connection's plan; return what it sent and read. Never raises for the socket."""
    record = ClientRecord(plan.conversation_id)
    record.planted = {mid: fault for mid, _, fault in plan.messages if fault}
    if start_delay:
        await asyncio.sleep(start_delay)
    try:
        async with connect(
            url,
            open_timeout=pacing.open_timeout,
            close_timeout=10,
            max_size=None,
            # The client's own keepalive must not close a socket because the shared
            # two-core machine was slow to answer a ping: that would plant a loss.
            ping_interval=None,
        ) as ws:
            record.connected = True
            record.opened_at = time.monotonic()
            reader = _Reader(ws, record)
            for message_id, content, fault in plan.messages:
                if reader.closed:
                    break
                frame = {"type": "message", "id": message_id, "content": content}
                try:
                    await ws.send(json.dumps(frame))
                except ConnectionClosed:
                    break
                record.sent.append(message_id)
                record.sent_at[message_id] = time.monotonic()
                if on_sent is not None:
                    on_sent()
                if not await _pace(reader, record, message_id, fault, pacing, redis):
                    break
            if not reader.closed:
                # late frames of anything still streaming count as read
                await asyncio.sleep(pacing.settle)
                record.closed_by = "client"
                await ws.close()
            with contextlib.suppress(asyncio.CancelledError):
                await reader.task
    except (InvalidHandshake, OSError, TimeoutError) as exc:
        if not record.connected:
            record.error = f"{type(exc).__name__}: {exc}"
    record.ended = time.monotonic()
    return record
