"""The room app's delivery tests: eager Celery on the in-memory layer, and a real worker on Redis.

Bots answer when mentioned (``@bot``, ``@streambot``); ``fault:task_failed`` in
the text makes the bot's task raise (see rooms/bots.py).
"""

import time

import jwt
import pytest
from channels.testing import WebsocketCommunicator
from config.asgi import application
from config.celery import app as celery_app
from django.conf import settings as django_settings

pytestmark = pytest.mark.asyncio


@pytest.fixture
def eager(settings):
    """Tasks run inline (task_always_eager) and the channel layer is in memory."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


async def join(room: str, user: str = "alice") -> WebsocketCommunicator:
    claims = {"sub": user, "name": user, "exp": int(time.time()) + 300}
    token = jwt.encode(claims, django_settings.ROOM_JWT_SECRET, algorithm="HS256")
    socket = WebsocketCommunicator(
        application, f"/ws/rooms/{room}/", subprotocols=["bearer", token]
    )
    connected, _ = await socket.connect(timeout=5)
    assert connected
    return socket


async def frames_until(socket: WebsocketCommunicator, last: str, wait: float = 3.0) -> list[dict]:
    """Frames received until one of type ``last`` or ``wait`` seconds of silence."""
    frames: list[dict] = []
    while not frames or frames[-1]["type"] != last:
        if await socket.receive_nothing(timeout=wait):
            break
        frames.append(await socket.receive_json_from())
    return frames


async def test_a_message_reaches_both_sockets_of_the_room(wstrace, eager):
    tab, phone = await join("lobby"), await join("lobby")
    await tab.send_json_to({"type": "message", "id": "hello-1", "text": "hello"})

    assert (await frames_until(tab, "message"))[-1]["text"] == "hello"
    assert (await frames_until(phone, "message"))[-1]["text"] == "hello"
    await wstrace.aassert_delivered("lobby")
    (message,) = wstrace.conversation("lobby").messages
    assert message.chunks.delivered == 2  # one per socket
    await tab.disconnect()
    await phone.disconnect()


async def test_an_eager_bot_that_raises_fails_at_the_task(wstrace, eager):
    tab = await join("help")
    await tab.send_json_to({"type": "message", "id": "ask-1", "text": "@bot fault:task_failed"})
    await frames_until(tab, "message")

    with pytest.raises(AssertionError) as failed:
        await wstrace.aassert_delivered()

    assert "message ask-1: LOST  hop=task  cause=task_failed" in str(failed.value)
    assert "BotError" in str(failed.value)
    await tab.disconnect()


@pytest.mark.usefixtures("celery_worker_process")
async def test_a_streamed_bot_answer_arrives(wstrace):
    tab = await join("stream")
    await tab.send_json_to({"type": "message", "id": "ask-2", "text": "@streambot go"})

    frames = await frames_until(tab, "done")
    assert [f["type"] for f in frames].count("chunk") == 5
    await wstrace.aassert_delivered()
    await tab.disconnect()


@pytest.mark.usefixtures("celery_worker_process")
async def test_a_worker_task_that_raises_mid_stream_fails_at_the_task(wstrace):
    tab = await join("broken")
    await tab.send_json_to(
        {"type": "message", "id": "ask-3", "text": "@streambot fault:task_failed"}
    )
    await frames_until(tab, "done", wait=1.0)

    with pytest.raises(AssertionError) as failed:
        await wstrace.aassert_delivered("broken")

    text = str(failed.value)
    assert "message ask-3: LOST  hop=task  cause=task_failed" in text
    assert "BotError" in text  # RECORD_BODIES off: the type and place, not the message
    assert [m.cause for m in wstrace.conversation("broken").messages] == ["task_failed"]
    await tab.disconnect()
