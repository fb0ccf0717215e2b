"""Raw Redis pub/sub streaming: the subscriber's read is a ws.deliver joined to its publish.

Each scenario runs in a fresh process with Django, the wstrace app, the
channels_redis pub/sub layer and a real redis-server; a real redis-py PubSub
subscribes, and for the consumer scenarios a real Channels consumer (through
``WebsocketCommunicator``) forwards each payload with ``self.send``. The spans
are read back from the store files.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio.client
import redis.client
from redis._parsers.encoders import Encoder
from wrapt import FunctionWrapper
from wsanalyze.demo.redis_server import RedisServer
from wstrace import conventions as c
from wstrace.instrumentors import RedisPublishInstrumentor, instrument_all, uninstrument_all
from wstrace.redis_wire import payload_hash

from .spans import Span, by_name, read_spans

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys, uuid
    import django
    from django.conf import settings

    trace_dir, redis_url, scenario, tracer_kind = sys.argv[1:5]
    if tracer_kind == "sdk":  # the app brought its provider: wstrace uses the SDK's tracer
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        trace.set_tracer_provider(TracerProvider())
    settings.configure(
        INSTALLED_APPS=["channels", "wstrace"],
        CHANNEL_LAYERS={"default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [redis_url]},
        }},
        WSTRACE={"FILE_DIR": trace_dir, "SERVICE_NAME": "web"},
    )
    django.setup()

    import redis
    import redis.asyncio as aioredis
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.layers import get_channel_layer
    from channels.routing import ProtocolTypeRouter, URLRouter
    from channels.testing import WebsocketCommunicator
    from django.urls import path
    from wstrace import carrier, current, provider, redis_pubsub

    MODE = scenario.split(":")[-1]
    results = {}


    def in_task(conversation, message_id=None):
        # What a Celery task of the conversation runs in: the ids as baggage.
        ids = carrier.with_ids(conversation_id=conversation, message_id=message_id)
        return current.attach(ids)


    async def read(pubsub, count):
        got = []
        while len(got) < count:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2.0)
            if message is not None:
                got.append(message)
        return got


    def as_text(value):
        return value.decode() if isinstance(value, bytes) else value


    async def hashes():
        channel = f"answer:{uuid.uuid4().hex}"
        publisher = aioredis.Redis.from_url(redis_url)
        raw = aioredis.Redis.from_url(redis_url).pubsub()
        decoded = aioredis.Redis.from_url(redis_url, decode_responses=True).pubsub()
        patterned = aioredis.Redis.from_url(redis_url).pubsub()
        sync = redis.Redis.from_url(redis_url).pubsub()
        await raw.subscribe(channel)
        await decoded.subscribe(channel)
        await patterned.psubscribe("answer:*")
        sync.subscribe(channel)
        token = in_task("conv-hash", "m-hash")
        payloads = ["héllo wörld", "bytes é".encode(), 42, 2.5]
        for payload in payloads:
            await publisher.publish(channel, payload)
        redis.Redis.from_url(redis_url).publish(channel, "from sync")
        current.detach(token)
        # The readers run in the conversation's context too (a task of it), one at a time.
        for name, pubsub in (("raw", raw), ("decoded", decoded), ("pattern", patterned)):
            token = in_task("conv-hash")
            results[name] = [as_text(m["data"]) for m in await read(pubsub, 5)]
            current.detach(token)
        token = in_task("conv-hash")
        got = []
        while len(got) < 5:
            message = sync.get_message(ignore_subscribe_messages=True, timeout=2.0)
            if message is not None:
                got.append(as_text(message["data"]))
        current.detach(token)
        results["sync"] = got
        results["channel"] = channel


    async def not_ours():
        publisher = aioredis.Redis.from_url(redis_url)
        outside = aioredis.Redis.from_url(redis_url).pubsub()
        celery = aioredis.Redis.from_url(redis_url).pubsub()
        await outside.subscribe("answer:outside")
        await celery.subscribe("celery-task-meta-abc")
        await publisher.publish("answer:outside", "nobody's")  # no context: no span
        token = in_task("conv-skip", "m-skip")
        await publisher.publish("celery-task-meta-abc", "result")
        await publisher.publish("answer:nobody", "sentinel")  # the one span expected
        # Read where a conversation is current: Celery's channel is still not evidence.
        results["celery"] = [as_text(m["data"]) for m in await read(celery, 1)]
        current.detach(token)
        results["outside"] = [as_text(m["data"]) for m in await read(outside, 1)]


    class Streamer(AsyncWebsocketConsumer):
        # Subscribes in connect; forwards each chunk of the answer with self.send.

        async def connect(self):
            self.conversation = self.scope["url_route"]["kwargs"]["conversation_id"]
            self.redis = aioredis.Redis.from_url(redis_url)
            self.pubsub = self.redis.pubsub()
            channel = f"answer:{self.conversation}"
            if MODE == "handler":
                await self.pubsub.subscribe(**{channel: self.forward})
            else:
                await self.pubsub.subscribe(channel)
            await self.channel_layer.group_add(f"chat_{self.conversation}", self.channel_name)
            self.reader = None
            if MODE != "inline":
                self.reader = asyncio.create_task(self.read_loop())
            await self.accept()

        async def read_loop(self):
            if MODE == "listen":
                async for message in self.pubsub.listen():
                    if message["type"] == "message":
                        await self.forward(message)
                return
            while True:
                message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message is not None:
                    await self.forward(message)

        async def forward(self, message):
            await self.send(text_data=as_text(message["data"]))

        async def receive(self, text_data=None, bytes_data=None):
            if text_data == "go":  # read the answer inside this handler, until "done"
                while True:
                    message = await self.pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=1
                    )
                    if message is not None:
                        await self.forward(message)
                        if message["data"] == b"done":
                            return
            await self.send(text_data=f"echo:{text_data}")

        async def chat_note(self, event):
            await self.send(text_data=event["text"])

        async def disconnect(self, code):
            if self.reader is not None:
                self.reader.cancel()
            await self.pubsub.aclose()
            await self.redis.aclose()


    async def stream():
        application = ProtocolTypeRouter({"websocket": URLRouter([
            path("ws/chat/<conversation_id>/", Streamer.as_asgi()),
        ])})
        conversation = f"conv-{MODE}-{uuid.uuid4().hex[:6]}"
        client = WebsocketCommunicator(application, f"/ws/chat/{conversation}/")
        connected, _ = await client.connect()
        assert connected
        if MODE == "inline":
            await client.send_to(text_data="go")
        publisher = aioredis.Redis.from_url(redis_url)
        token = in_task(conversation, "m-1")
        for chunk in ("one", "two", "done"):
            await publisher.publish(f"answer:{conversation}", chunk)
        frames = [await client.receive_from(timeout=5) for _ in range(3)]
        # The pub/sub channel layer reads through redis-py's PubSub too: not a raw delivery.
        await get_channel_layer().group_send(
            f"chat_{conversation}", {"type": "chat.note", "text": "note"}
        )
        frames.append(await client.receive_from(timeout=5))
        current.detach(token)
        await client.send_to(text_data="ping")  # a frame no delivery caused
        frames.append(await client.receive_from(timeout=5))
        await client.disconnect()
        results.update(frames=frames, conversation=conversation)


    def boom(*args, **kwargs):
        raise RuntimeError("hash broke")


    async def main():
        if scenario.startswith("broken"):
            redis_pubsub.payload_hash = boom
        if scenario == "hashes":
            await hashes()
        elif scenario == "not-ours":
            await not_ours()
        elif scenario.endswith("hashes"):
            await hashes()
        else:
            await stream()


    asyncio.run(main())
    provider.flush()
    print(json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def redis_url() -> Any:
    """A real redis-server for this module's scenarios."""
    with RedisServer() as server:
        yield server.url


def run(tmp_path: Path, redis_url: str, scenario: str, tracer: str = "lean") -> tuple[dict, str]:
    """Run one scenario in a fresh process; its printed results and its stderr."""
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), redis_url, scenario, tracer],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "instrumentation")},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def raw_deliveries(spans: list[Span]) -> list[Span]:
    return [s for s in by_name(spans, "ws.deliver") if s.attributes[c.EVENT] == c.EV_REDIS_MESSAGE]


def raw_publishes(spans: list[Span]) -> list[Span]:
    return [s for s in by_name(spans, "ws.publish") if s.attributes[c.EVENT] == c.EV_REDIS_PUBLISH]


# --- the hash ----------------------------------------------------------------------------
@pytest.mark.parametrize("payload", ["héllo", b"\x00\xff", 42, -7, 2.5, 1e100, bytearray(b"ab")])
def test_payload_hash_covers_the_bytes_redis_py_sends(payload: Any) -> None:
    wire = Encoder("utf-8", "strict", False).encode(payload)

    assert payload_hash("answer:1", payload) == payload_hash(b"answer:1", bytes(wire))
    assert len(payload_hash("answer:1", payload) or "") == 16


def test_payload_hash_separates_channel_from_payload_and_refuses_what_redis_refuses() -> None:
    assert payload_hash("ab", "c") != payload_hash("a", "bc")
    assert payload_hash("a", True) is None  # redis-py raises DataError for a bool
    assert payload_hash("a", None) is None


def test_payload_hash_encodes_str_as_the_client_is_configured() -> None:
    text = "naïve"

    assert payload_hash("c", text, "latin-1") == payload_hash("c", text.encode("latin-1"))
    assert payload_hash("c", text, "latin-1") != payload_hash("c", text)


# --- publish and deliver ---------------------------------------------------------------------
@pytest.mark.stack  # a real redis-server (redis_url)
def test_publish_and_deliver_carry_equal_hashes_for_str_bytes_and_numbers(
    tmp_path: Path, redis_url: str
) -> None:
    results, _ = run(tmp_path, redis_url, "hashes")
    spans = read_spans(tmp_path)

    assert results["raw"] == results["decoded"] == results["pattern"] == results["sync"]
    assert results["raw"] == ["héllo wörld", "bytes é", "42", "2.5", "from sync"]
    publishes = raw_publishes(spans)
    assert len(publishes) == 5
    published = [p.attributes[c.PAYLOAD_HASH] for p in publishes]
    assert len(set(published)) == 5
    delivers = raw_deliveries(spans)
    # Four subscribers (raw bytes, decode_responses, a pattern, a sync PubSub), five each.
    assert len(delivers) == 20
    for hash_ in published:
        assert len([d for d in delivers if d.attributes[c.PAYLOAD_HASH] == hash_]) == 4
    for deliver in delivers:
        assert deliver.kind == "CONSUMER" and deliver.hop == c.HOP_DELIVER
        assert deliver.attributes[c.CHANNEL] == results["channel"]  # pmessage: the real one
        assert deliver.attributes[c.CONVERSATION_ID] == "conv-hash"
        assert deliver.end_ns >= deliver.start_ns


@pytest.mark.stack  # a real redis-server (redis_url)
@pytest.mark.parametrize("tracer", ["lean", "sdk"])
@pytest.mark.parametrize("mode", ["get_message", "listen", "handler", "inline"])
def test_frames_a_consumer_forwards_are_children_of_their_raw_delivery(
    tmp_path: Path, redis_url: str, mode: str, tracer: str
) -> None:
    results, _ = run(tmp_path, redis_url, f"stream:{mode}", tracer)
    spans = read_spans(tmp_path)
    by_id = {s.span_id: s for s in spans}

    assert results["frames"] == ["one", "two", "done", "note", "echo:ping"]
    (connect,) = by_name(spans, "ws.connect")
    connection = connect.attributes[c.CONNECTION_ID]
    delivers = raw_deliveries(spans)
    assert len(delivers) == 3, [(s.name, s.attributes) for s in spans]
    publishes = raw_publishes(spans)
    assert [d.attributes[c.PAYLOAD_HASH] for d in delivers] == [
        p.attributes[c.PAYLOAD_HASH] for p in publishes
    ]
    for deliver in delivers:
        assert deliver.attributes[c.CONNECTION_ID] == connection
        assert deliver.attributes[c.CONVERSATION_ID] == results["conversation"]
        assert deliver.attributes[c.CHANNEL] == f"answer:{results['conversation']}"
        assert deliver.trace_id == connect.trace_id  # in the connection's trace
        assert by_id[deliver.parent_id].name in {"ws.connect", "ws.receive"}  # siblings
    sends = by_name(spans, "ws.send")
    chunk_sends = [s for s in sends if s.parent_id in {d.span_id for d in delivers}]
    assert sorted(s.parent_id for s in chunk_sends) == sorted(d.span_id for d in delivers)
    assert [s.attributes[c.FRAME_BYTES] for s in chunk_sends] == [3, 3, 4]
    for send in chunk_sends:
        assert send.attributes[c.CONNECTION_ID] == connection
        assert send.attributes[c.CONVERSATION_ID] == results["conversation"]
        assert c.SEQ not in send.attributes
    if mode == "inline":  # read inside the handler of the client's "go": its message id
        (go,) = [s for s in by_name(spans, "ws.receive") if s.attributes[c.FRAME_BYTES] == 2]
        message_id = go.attributes[c.MESSAGE_ID]
        assert all(d.parent_id == go.span_id for d in delivers)
        assert all(s.attributes[c.MESSAGE_ID] == message_id for s in delivers + chunk_sends)
    # The layer's own pub/sub reads are its ws.deliver, not raw ones; and nothing leaks:
    # the note is the layer delivery's frame, the echo the receive's.
    (note,) = [s for s in by_name(spans, "ws.deliver") if s.attributes[c.EVENT] == c.EV_DELIVER]
    frames = sorted(sends, key=lambda s: s.start_ns)
    assert frames[3].parent_id == note.span_id
    (ping,) = [s for s in by_name(spans, "ws.receive") if s.attributes[c.FRAME_BYTES] == 4]
    assert frames[4].parent_id == ping.span_id


@pytest.mark.stack  # a real redis-server (redis_url)
def test_celery_channels_and_reads_outside_a_conversation_make_no_span(
    tmp_path: Path, redis_url: str
) -> None:
    results, _ = run(tmp_path, redis_url, "not-ours")
    spans = read_spans(tmp_path)

    assert results == {"celery": ["result"], "outside": ["nobody's"]}
    assert not by_name(spans, "ws.deliver")
    (sentinel,) = by_name(spans, "ws.publish")  # the store was written: absence is evidence
    assert sentinel.attributes[c.CHANNEL] == "answer:nobody"
    assert sentinel.attributes[c.RECEIVERS] == 0


# --- never break the app ---------------------------------------------------------------------
@pytest.mark.stack  # a real redis-server (redis_url)
def test_a_broken_hash_costs_the_span_not_the_message(tmp_path: Path, redis_url: str) -> None:
    results, stderr = run(tmp_path, redis_url, "broken:hashes")
    spans = read_spans(tmp_path)

    assert results["raw"] == results["decoded"] == results["pattern"] == results["sync"]
    assert results["raw"] == ["héllo wörld", "bytes é", "42", "2.5", "from sync"]
    assert not raw_deliveries(spans)
    assert stderr.count("wstrace: redis message failed (RuntimeError: hash broke)") == 1


@pytest.mark.stack  # a real redis-server (redis_url)
def test_a_broken_hash_leaves_a_streaming_consumer_untouched(
    tmp_path: Path, redis_url: str
) -> None:
    results, _ = run(tmp_path, redis_url, "broken:get_message")

    assert results["frames"] == ["one", "two", "done", "note", "echo:ping"]
    assert not raw_deliveries(read_spans(tmp_path))


# --- the instrumentor ------------------------------------------------------------------------
SUBSCRIBER_TARGETS = [
    (redis.client.PubSub, "handle_message"),
    (redis.asyncio.client.PubSub, "handle_message"),
]


@pytest.fixture
def originals() -> Any:
    """Start and end uninstrumented; yield the original subscriber-side functions."""
    uninstrument_all()
    yield {target: vars(target[0])[target[1]] for target in SUBSCRIBER_TARGETS}
    uninstrument_all()


def _layer_reader() -> Any:
    import channels_redis.pubsub

    return channels_redis.pubsub.RedisSingleShardConnection


def test_subscriber_side_is_wrapped_once_and_restored(originals: dict) -> None:
    reader = vars(_layer_reader())["_do_receiving"]

    instrument_all()
    wrapped = {target: vars(target[0])[target[1]] for target in SUBSCRIBER_TARGETS}
    RedisPublishInstrumentor().instrument(skip_dep_check=True)  # warns, wraps nothing more

    for (owner, name), original in originals.items():
        assert isinstance(vars(owner)[name], FunctionWrapper)
        assert vars(owner)[name] is wrapped[(owner, name)]
        assert vars(owner)[name].__wrapped__ is original
    assert vars(_layer_reader())["_do_receiving"].__wrapped__ is reader
    uninstrument_all()
    uninstrument_all()
    for (owner, name), original in originals.items():
        assert vars(owner)[name] is original
    assert vars(_layer_reader())["_do_receiving"] is reader
