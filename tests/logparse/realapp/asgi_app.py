"""A raw ASGI app served by the real Daphne: each path provokes one kind of log line.

/ws/chat/<id>/          accept; text "boom" raises (Daphne: Exception inside application),
                        "close" closes 4001 after accept, "overcap" overfills a channel
                        (channels_redis: "... over capacity in group ..."), "trace" logs a
                        line carrying trace_id/span_id/conversation_id fields.
/ws/reject/<id>/        close before accept (Daphne: WSREJECT, HTTP 403)
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger("chat.app")


class _TraceFields(logging.Filter):
    """Adds the fields wstrace's logging filter adds, so the line looks as in a traced app."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = f"{record.msg} trace_id={'ab' * 16} span_id={'cd' * 8} conversation_id=c-trace"
        return True


logger.addFilter(_TraceFields())


async def _overfill(conversation: str) -> None:
    from channels_redis.core import RedisChannelLayer

    layer = RedisChannelLayer(hosts=[os.environ["REDIS_URL"]], capacity=2)
    channel = await layer.new_channel()
    group = f"chat_{conversation}"
    await layer.group_add(group, channel)
    for i in range(4):
        await layer.group_send(group, {"type": "chat.chunk", "seq": i})
    await layer.flush()


async def application(scope, receive, send):
    if scope["type"] != "websocket":
        return
    path = scope["path"]
    conversation = path.rstrip("/").rsplit("/", 1)[-1]
    event = await receive()
    assert event["type"] == "websocket.connect"
    if path.startswith("/ws/reject/"):
        await send({"type": "websocket.close", "code": 4003})
        return
    await send({"type": "websocket.accept"})
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            return
        text = event.get("text")
        if text == "boom":
            raise KeyError("chat_chunk")
        if text == "close":
            await send({"type": "websocket.close", "code": 4001})
        elif text == "overcap":
            await _overfill(conversation)
            await send({"type": "websocket.send", "text": "done"})
        elif text == "trace":
            logger.warning("streaming reply")
            await send({"type": "websocket.send", "text": "done"})
        else:
            await send({"type": "websocket.send", "text": text or ""})
