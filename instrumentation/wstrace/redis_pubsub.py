"""Raw Redis pub/sub, subscriber side: each message a conversation reads is a ``ws.deliver``.

Many apps stream an answer without the channel layer: a Celery task
``PUBLISH``es each chunk to a channel of its own (``answer:<message_id>``), the
consumer ``SUBSCRIBE``s with redis-py and forwards every payload with
``self.send``. The publish side is ``ws.publish`` (event ``redis_publish``, see
``wstrace.channels.layers``); this module records the other end.

redis-py's ``PubSub.handle_message`` (``redis.client`` and ``redis.asyncio.client``)
is wrapped: ``get_message()``, ``listen()`` and ``run()`` all parse each reply
through it. For a ``message``/``pmessage`` read where a wstrace connection or
conversation context is current (inside a Channels consumer, or a task that
carries the ids), a ``ws.deliver`` span is made at once (kind CONSUMER, event
``redis_message``, ``ws.channel``, ``ws.payload_hash``: the digest the
publisher recorded, so the analyzer can pair the two, since a raw payload
carries no trace context). Its context then becomes current in the reading
task, so the frames the consumer sends next are ``ws.send`` children of that
delivery, until the next reply read replaces it (a subscribe confirmation or a
skipped channel restores the context from before; a ``get_message`` that times
out reads nothing and changes nothing). A message consumed by a subscription
handler is handled inside that context, which is then left.

The delivery context is set without a token, on purpose: the reader is a loop
that returns each message to its caller, so there is no scope to close. It
never outlives its reader: a consumer handler's context is reset when the
handler returns (``channels.consumer`` wrapper), and a task started for the
loop has a context of its own. Each new delivery is built on the context that
was current before the first one (kept under ``DELIVERY_KEY``), so
deliveries are siblings, never a chain.

Not recorded: Celery's own channels (events, results, pidbox), reads outside
any conversation, and the pub/sub channel layer's own receive loop (its
messages are the layer's ``ws.deliver`` already).
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind

from wstrace import carrier, current, runtime
from wstrace import conventions as c
from wstrace.channels.connection import CURRENT, SEND_KEY, SEQ_KEY, Connection
from wstrace.redis_wire import is_infrastructure, payload_hash, wire_encoding
from wstrace.runtime import STATE
from wstrace.tracer_fit import ChildSpans

# In a delivery's context: the context current before the reader's first delivery.
DELIVERY_KEY = context.create_key("wstrace.redis_delivery")
# True inside channels_redis' pub/sub layer receive loop (see ``layer_reader``).
LAYER_READER: ContextVar[bool] = ContextVar("wstrace_layer_reader", default=False)

_MESSAGE = ("message", b"message")
_PMESSAGE = ("pmessage", b"pmessage")


def handle_message(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    """Wrapper for ``redis.client.PubSub.handle_message(response, ...)``."""
    if not STATE["active"] or LAYER_READER.get():
        return wrapped(*args, **kwargs)
    prepared = _prepare_shielded(instance, args, kwargs)
    if prepared is None:
        return wrapped(*args, **kwargs)
    delivery, base = prepared
    current.attach(delivery)
    try:
        message = wrapped(*args, **kwargs)
    except BaseException:
        current.attach(base)
        raise
    if message is None:  # consumed by a subscription handler, or ignored
        current.attach(base)
    return message


async def handle_message_async(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    """Wrapper for ``redis.asyncio.client.PubSub.handle_message(response, ...)``.

    Awaited in the reader's own task, so the context it sets is the reader's.
    """
    if not STATE["active"] or LAYER_READER.get():
        return await wrapped(*args, **kwargs)
    prepared = _prepare_shielded(instance, args, kwargs)
    if prepared is None:
        return await wrapped(*args, **kwargs)
    delivery, base = prepared
    current.attach(delivery)
    try:
        message = await wrapped(*args, **kwargs)
    except BaseException:
        current.attach(base)
        raise
    if message is None:
        current.attach(base)
    return message


async def layer_reader(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    """Wrapper for channels_redis ``RedisSingleShardConnection._do_receiving``.

    That loop runs in a task started from whichever consumer subscribed first, so
    it would look like that consumer reading; its messages are the layer's, recorded
    as the layer's deliveries when a consumer receives them.
    """
    token = LAYER_READER.set(True)
    try:
        return await wrapped(*args, **kwargs)
    finally:
        LAYER_READER.reset(token)


def _prepare_shielded(
    instance: Any, args: tuple, kwargs: dict
) -> tuple[context.Context, context.Context] | None:
    # runtime.shield, inlined: this runs for every message read.
    try:
        response = args[0] if args else kwargs.get("response")
        return _prepare(instance, response)
    except Exception as exc:
        runtime.report_once("redis message", exc)
        return None


def _prepare(instance: Any, response: Any) -> tuple[context.Context, context.Context] | None:
    """(the context for this message, the one to fall back to), or None: leave it be."""
    ctx = current.get()
    base = ctx.get(DELIVERY_KEY)
    if base is None:
        base = ctx
    delivery = _deliver(instance, response, base)
    if delivery is not None:
        return delivery, base
    # Not a delivery (a subscribe confirmation, a skipped channel): the previous
    # delivery's scope ends with this read all the same.
    return (base, base) if base is not ctx else None


def _deliver(instance: Any, response: Any, base: context.Context) -> context.Context | None:
    """Record the ``ws.deliver`` of a raw message; its context, or None when not ours."""
    if (type(response) is not list and not isinstance(response, tuple)) or len(response) < 3:
        return None
    kind = response[0]
    if kind in _MESSAGE:
        channel, payload = response[1], response[2]
    elif kind in _PMESSAGE and len(response) >= 4:
        channel, payload = response[2], response[3]
    else:
        return None
    conn = CURRENT.get()
    ids = current.ids(base)
    if conn is not None:
        ids.update(conn.ids())  # the receiving connection is this one
    elif not ids:
        return None  # a pub/sub read outside any conversation
    if is_infrastructure(channel):
        return None
    name = channel.decode("utf-8", "replace") if isinstance(channel, bytes) else str(channel)
    attributes: dict[str, Any] = {
        **ids,
        c.HOP: c.HOP_DELIVER,
        c.EVENT: c.EV_REDIS_MESSAGE,
        c.CHANNEL: name,
    }
    digest = payload_hash(channel, payload, *wire_encoding(instance))
    if digest is not None:
        attributes[c.PAYLOAD_HASH] = digest
    parent = base
    if conn is not None and not current.span_context(base).is_valid:
        parent = conn.connect_ctx  # keep it in the connection's trace
    spans = runtime.spans()
    span = spans.start_child(c.SPAN_DELIVER, parent, SpanKind.CONSUMER, attributes)
    span.end()
    return _delivery_context(base, span, ids, _prepared_send(spans, conn, span, ids))


def _prepared_send(
    spans: ChildSpans, conn: Connection | None, span: trace.Span, ids: dict[str, str]
) -> tuple[trace.Span, ChildSpans, Connection, dict[str, Any]] | None:
    """The ``SEND_KEY`` entry asgi's ``_start_send_span`` starts each frame from, if it can."""
    if conn is None or runtime.config().record_bodies:
        return None
    # What _start_send_span derives otherwise: Connection.ids() first, then the baggage.
    send: dict[str, Any] = conn.ids()
    for key in c.BAGGAGE_KEYS:
        if key not in send and key in ids:
            send[key] = ids[key]
    send[c.HOP] = c.HOP_SEND
    send[c.EVENT] = c.EV_SEND
    return span, spans, conn, send


def _delivery_context(
    base: context.Context, span: trace.Span, ids: dict[str, str], send: Any
) -> context.Context:
    """``base`` with the delivery as current span, its ids as baggage, and our keys.

    ``SEQ_KEY`` is cleared: a chunk number of an enclosing layer delivery is not this one's.
    """
    values = {DELIVERY_KEY: base, SEND_KEY: send, SEQ_KEY: None}
    if current.SPAN_KEY is not None and current.BAGGAGE_KEY is not None:
        entries = {**carrier.baggage_of(base), **ids}
        return context.Context(
            {**base, current.SPAN_KEY: span, current.BAGGAGE_KEY: entries, **values}
        )
    named = {key.removeprefix("ws."): value for key, value in ids.items()}
    ctx = trace.set_span_in_context(span, carrier.with_ids(base, **named))
    for key, value in values.items():
        ctx = context.set_value(key, value, ctx)
    return ctx
