"""A real WebSocket client for the example chat app, recording everything it sees.

::

    transcript = asyncio.run(converse(url, ["hello", "fault:task_failed"], token=token))
    transcript.done_for(transcript.message_ids[0])   # the "done" frame, or None
    transcript.seqs(transcript.message_ids[1])       # [1, 2]

The client speaks the app's frame protocol (``{"type": "message", "id", "content"}``
out; ``ack`` / ``chunk`` / ``done`` in) and imports no Django. ``make_token``
mints the app's connection tokens (same claims as
``core/agents/ws_connection_tokens.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jwt
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

__all__ = ["Transcript", "converse", "make_token"]

TOKEN_ALGORITHM = "HS256"
TOKEN_TTL = 300


def make_token(
    user_id: int | str, name: str, secret: str, *, expired: bool = False, ttl: int = TOKEN_TTL
) -> str:
    """Mint a connection token (JWT HS256: ``sub``, ``name``, ``typ=ws``, ``iat``, ``exp``)."""
    now = int(time.time())
    issued = now - 2 * ttl if expired else now
    claims = {"sub": str(user_id), "name": name, "typ": "ws", "iat": issued, "exp": issued + ttl}
    return jwt.encode(claims, secret, algorithm=TOKEN_ALGORITHM)


@dataclass
class Transcript:
    """What one client connection saw, in order."""

    url: str  # without the token
    connected: bool = False
    handshake_status: int | None = None  # HTTP status when the handshake was refused (403)
    error: str | None = None  # connection error other than a refused handshake
    close_code: int | None = None  # code of the closing handshake (1006: none received)
    close_reason: str = ""
    closed_by: str | None = None  # "server" | "client" | None (never connected)
    timed_out: bool = False  # gave up waiting for the answers
    message_ids: list[str] = field(default_factory=list)  # ids of the messages sent, in order
    sent: list[str] = field(default_factory=list)  # every raw frame sent
    frames: list[dict[str, Any]] = field(default_factory=list)  # every JSON frame received
    acks: dict[str, dict[str, Any]] = field(default_factory=dict)
    chunks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)  # raw frames outside the protocol
    started: float = 0.0  # time.monotonic() at the start
    ended: float = 0.0  # time.monotonic() when the connection was over
    ended_at: float = 0.0  # time.time() when the connection was over

    def seqs(self, message_id: str) -> list[int]:
        """Sequence numbers of the chunks received for a message, in arrival order."""
        return [chunk["seq"] for chunk in self.chunks.get(message_id, [])]

    def text(self, message_id: str) -> str:
        """The answer text received for a message."""
        return "".join(chunk.get("content", "") for chunk in self.chunks.get(message_id, []))

    def done_for(self, message_id: str) -> dict[str, Any] | None:
        return self.done.get(message_id)

    def task_id(self, message_id: str) -> str | None:
        """The Celery task id the server acknowledged the message with."""
        return self.acks.get(message_id, {}).get("task_id")

    @property
    def all_done(self) -> bool:
        return bool(self.message_ids) and all(mid in self.done for mid in self.message_ids)

    @property
    def chunk_count(self) -> int:
        return sum(len(chunks) for chunks in self.chunks.values())

    @property
    def duration(self) -> float:
        return self.ended - self.started

    def record(self, raw: str | bytes) -> None:
        """File one received frame under acks / chunks / done, or as unexpected."""
        try:
            frame = json.loads(raw)
        except (TypeError, ValueError):
            self.unexpected.append(raw if isinstance(raw, str) else raw.decode("latin1"))
            return
        if not isinstance(frame, dict):
            self.unexpected.append(str(raw))
            return
        self.frames.append(frame)
        kind = frame.get("type")
        if kind == "ack" and "id" in frame:
            self.acks[str(frame["id"])] = frame
        elif kind == "chunk" and "message_id" in frame and "seq" in frame:
            self.chunks.setdefault(str(frame["message_id"]), []).append(frame)
        elif kind == "done" and "message_id" in frame:
            self.done[str(frame["message_id"])] = frame
        else:
            self.unexpected.append(raw if isinstance(raw, str) else raw.decode("latin1"))


def _without_token(url: str) -> str:
    """The URL with any ``token`` query parameter removed (transcripts get written out)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "token"]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _with_token(url: str, token: str | None) -> str:
    if not token:
        return url
    return f"{url}{'&' if urlsplit(url).query else '?'}{urlencode({'token': token})}"


async def converse(
    url: str,
    messages: list[str],
    *,
    token: str | None = None,
    bearer: bool = False,
    origin: str | None = None,
    message_ids: list[str] | None = None,
    raw_frames: list[str] | None = None,
    gap: float = 0.0,
    close_after_chunks: int | None = None,
    settle: float | None = None,
    settle_once_streaming: bool = False,
    timeout: float = 10.0,
) -> Transcript:
    """Open one connection, send the messages, collect frames until every message is done.

    ``token`` goes in ``?token=`` (or an ``Authorization: Bearer`` header with
    ``bearer=True``); ``origin`` sets the Origin header (none by default, as a
    non-browser client). ``raw_frames`` are sent verbatim before the messages
    (e.g. ``"not json"``). Messages go out back to back (a burst), or ``gap``
    seconds apart while frames keep being read. The client closes (code 1000)
    after ``close_after_chunks`` chunks in total, once every message got its
    ``done``, after ``settle`` seconds without a frame once everything was
    sent (with ``settle_once_streaming``: once a chunk arrived), or at
    ``timeout`` (``timed_out``); a server close ends it too.
    """
    transcript = Transcript(url=_without_token(url), started=time.monotonic())
    ids = list(message_ids or [])
    ids += [uuid.uuid4().hex for _ in range(len(messages) - len(ids))]
    headers = {"Authorization": f"Bearer {token}"} if token and bearer else None
    target = url if bearer else _with_token(url, token)
    plan = _Plan(
        list(zip(ids, messages, strict=True)),
        raw_frames or [],
        gap,
        settle_once_streaming=settle_once_streaming,
    )
    try:
        async with connect(
            target,
            origin=origin,
            additional_headers=headers,
            open_timeout=timeout,
            close_timeout=2,
            max_size=None,
        ) as ws:
            transcript.connected = True
            await _talk(
                ws, transcript, plan, close_after_chunks, settle, transcript.started + timeout
            )
    except InvalidStatus as exc:
        transcript.handshake_status = exc.response.status_code
        transcript.error = str(exc)
    except (InvalidHandshake, OSError, TimeoutError) as exc:
        if not transcript.connected:
            transcript.error = f"{type(exc).__name__}: {exc}"
    transcript.ended = time.monotonic()
    transcript.ended_at = time.time()
    return transcript


@dataclass
class _Plan:
    messages: list[tuple[str, str]]
    raw_frames: list[str]
    gap: float
    finished: bool = False
    settle_once_streaming: bool = False


async def _send_all(ws: Any, transcript: Transcript, plan: _Plan) -> None:
    for raw in plan.raw_frames:
        transcript.sent.append(raw)
        await ws.send(raw)
    for index, (message_id, content) in enumerate(plan.messages):
        if index and plan.gap:
            await asyncio.sleep(plan.gap)
        raw = json.dumps({"type": "message", "id": message_id, "content": content})
        transcript.message_ids.append(message_id)
        transcript.sent.append(raw)
        await ws.send(raw)
    plan.finished = True


async def _talk(
    ws: Any,
    transcript: Transcript,
    plan: _Plan,
    close_after_chunks: int | None,
    settle: float | None,
    deadline: float,
) -> None:
    sender = asyncio.create_task(_send_all(ws, transcript, plan))
    try:
        while not (plan.finished and transcript.all_done):
            if close_after_chunks is not None and transcript.chunk_count >= close_after_chunks:
                break
            if sender.done() and sender.exception() is not None:
                raise sender.exception()
            now = time.monotonic()
            wait = deadline - now
            settling = settle is not None and plan.finished
            if plan.settle_once_streaming and not transcript.chunk_count:
                settling = False
            if settling:
                wait = min(wait, settle)
            if wait <= 0:
                transcript.timed_out = True
                break
            try:
                raw = await asyncio.wait_for(ws.recv(), wait if settling else min(wait, 0.1))
            except TimeoutError:
                if time.monotonic() >= deadline:
                    transcript.timed_out = True
                    break
                if settling:
                    break
                continue
            transcript.record(raw)
    except ConnectionClosed as exc:
        transcript.closed_by = "server"
        transcript.close_code = exc.rcvd.code if exc.rcvd else 1006
        transcript.close_reason = exc.rcvd.reason if exc.rcvd else ""
        return
    finally:
        if not sender.done():
            sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await sender  # also retrieves a send that failed because the server closed
    transcript.closed_by = "client"
    await ws.close()
    transcript.close_code = ws.close_code
    transcript.close_reason = ws.close_reason or ""
