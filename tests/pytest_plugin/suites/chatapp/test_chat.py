"""The chat app's delivery tests: WebsocketCommunicator in process, Redis layer, a real worker.

Faults are planted with the app's own switches in the message text
(``fault:no_worker``, ``fault:consumer_gone``: see core/agents/consumers.py).
"""

import uuid

import pytest
from channels.testing import WebsocketCommunicator
from config.asgi import application
from core.agents.ws_connection_tokens import mint_token
from django.conf import settings

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("celery_worker_process")]


async def open_chat(conversation_id: str) -> WebsocketCommunicator:
    token = mint_token("u1", "alice", settings.CHAT_JWT_SECRET)
    chat = WebsocketCommunicator(application, f"/ws/chat/{conversation_id}/?token={token}")
    connected, _ = await chat.connect(timeout=5)
    assert connected
    return chat


async def ask(chat: WebsocketCommunicator, content: str, wait: float = 5.0) -> list[dict]:
    """Send one message; return the frames received until ``done`` or ``wait`` seconds of silence."""
    await chat.send_json_to({"type": "message", "id": uuid.uuid4().hex[:8], "content": content})
    frames: list[dict] = []
    while not frames or frames[-1]["type"] != "done":
        if await chat.receive_nothing(timeout=wait):
            break
        frames.append(await chat.receive_json_from())
    return frames


async def test_the_answer_streams_back(wstrace):
    chat = await open_chat("healthy")
    frames = await ask(chat, "What is the refund policy?")

    assert [f["type"] for f in frames] == [
        "ack",
        "chunk",
        "chunk",
        "chunk",
        "chunk",
        "chunk",
        "done",
    ]
    await wstrace.aassert_delivered()
    (message,) = wstrace.conversation("healthy").messages
    assert message.hops_seen[-1] == "send"
    await chat.disconnect()


async def test_a_queue_no_worker_consumes_fails_at_the_task(wstrace):
    chat = await open_chat("priority")
    frames = await ask(chat, "urgent fault:no_worker", wait=0.5)
    assert [f["type"] for f in frames] == ["ack"]

    with pytest.raises(AssertionError) as failed:
        await wstrace.aassert_delivered("priority")

    assert "hop=task  cause=no_worker" in str(failed.value)
    assert "agents-priority" in str(failed.value)
    assert wstrace.lost().lost == 1
    await chat.disconnect()


async def test_planted_consumer_gone_fails_the_delivery_assertion(wstrace):
    """Fails on purpose: the consumer leaves its group, the answer streams to nobody."""
    chat = await open_chat("gone")
    frames = await ask(chat, "hello fault:consumer_gone", wait=0.5)
    assert [f["type"] for f in frames] == ["ack"]

    await wstrace.aassert_delivered(timeout=15)
