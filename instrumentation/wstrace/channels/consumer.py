"""The consumer: auth at entry, and one span around every message it dispatches.

``channels.consumer.await_many_dispatch`` is wrapped (rather than each
consumer class's ``dispatch``) so every consumer, sync or async, generic or
hand-written, is covered. Frames from the client become ``ws.receive``;
channel-layer events become ``ws.deliver`` under the publisher's context, with
the reserved carrier key removed before the handler sees the event.

The consumer's own channel-layer receive (every callable after the first that
``AsyncConsumer.__call__`` hands to ``await_many_dispatch``) is watched too: a
Redis connection or timeout error raised there ends the connection with
``ws.cause=channel_layer_unavailable`` rather than ``consumer_error``.

With ``RECORD_BODIES`` off, an exception raised while handling a client frame
(which may quote it: a ``ValidationError``, a ``ValueError`` with the input in
its message) is recorded as its type and the file:line of its frames only.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from wstrace import carrier, current, runtime
from wstrace import conventions as c
from wstrace.channels.bare_exceptions import exception_type, record_bare_exception
from wstrace.channels.connection import CURRENT, SEND_KEY, SEQ_KEY, Connection
from wstrace.channels.frames import (
    app_id_in,
    frame_type_in,
    message_id_in,
    parse_frame,
    scan_app_id,
)
from wstrace.runtime import STATE

Dispatch = Callable[[dict[str, Any]], Awaitable[Any]]


async def consumer_call(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    """Wrapper for ``AsyncConsumer.__call__``: the middleware is done, record auth."""
    conn = CURRENT.get()
    if conn is not None and runtime.active():
        scope = args[0] if args else kwargs.get("scope")
        if isinstance(scope, dict):
            runtime.shield("auth", conn.on_consumer, instance, scope)
    return await wrapped(*args, **kwargs)


async def many_dispatch(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    """Wrapper for ``await_many_dispatch(consumer_callables, dispatch)``."""
    conn = CURRENT.get()
    if len(args) >= 2:
        callables = _watched_layer(conn, args[0])
        return await wrapped(callables, traced_dispatch(args[1]), *args[2:], **kwargs)
    kwargs = dict(kwargs)
    if "consumer_callables" in kwargs:
        kwargs["consumer_callables"] = _watched_layer(conn, kwargs["consumer_callables"])
    elif args:
        args = (_watched_layer(conn, args[0]), *args[1:])
    if "dispatch" in kwargs:
        kwargs["dispatch"] = traced_dispatch(kwargs["dispatch"])
    return await wrapped(*args, **kwargs)


Receive = Callable[[], Awaitable[Any]]


def _watched_layer(conn: Connection | None, callables: Any) -> Any:
    """The consumer callables with each channel-layer receive remembering how it failed.

    Channels passes the ASGI ``receive`` first and the layer's receive after it;
    only those later ones are the layer. Anything else is passed through untouched.
    """
    if conn is None or not runtime.active() or type(callables) is not list or len(callables) < 2:
        return callables
    return [callables[0], *(_watch(conn, receive) for receive in callables[1:])]


def _watch(conn: Connection, receive: Receive) -> Receive:
    async def layer_receive() -> Any:
        try:
            return await receive()
        except Exception as exc:
            if layer_unavailable(exc):
                conn.layer_error = exc  # Connection.on_crash reads it when this ends the app
            raise

    return layer_receive


def layer_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the layer's Redis is unreachable or timed out (not a bug)."""
    if isinstance(exc, OSError | asyncio.TimeoutError):  # ConnectionError, TimeoutError too
        return True
    # redis-py's own ConnectionError / TimeoutError (not OSError subclasses), without
    # importing redis: the in-memory layer's apps need not have it.
    return any(
        klass.__name__ in _REDIS_FAILURES and (klass.__module__ or "").startswith("redis")
        for klass in type(exc).__mro__
    )


_REDIS_FAILURES = frozenset({"ConnectionError", "TimeoutError"})


def traced_dispatch(dispatch: Dispatch) -> Dispatch:
    """Run each dispatched message inside the span of its hop."""
    # One consumer's dispatch: the ws.deliver attributes that are the same for every
    # event of a type (hop, handler, this connection, the consumer's channel), made once.
    bases: dict[Any, dict[str, Any]] = {}

    async def traced(message: dict[str, Any]) -> Any:
        conn = CURRENT.get()
        if conn is None or not STATE["active"] or not isinstance(message, dict):
            return await dispatch(_strip(message))
        # runtime.shield, inlined: this runs for every message and chunk.
        try:
            started = _begin(conn, dispatch, message, bases)
        except Exception as exc:
            runtime.report_once("dispatch", exc)
            started = None
        if started is None:
            return await dispatch(_strip(message))
        span, ctx, message = started
        token = current.attach(ctx)
        try:
            return await dispatch(message)
        except Exception as exc:
            if type(exc).__name__ != "StopConsumer":  # the normal way a consumer ends
                runtime.shield("exception", _record_error, conn, span, exc, message)
            raise
        finally:
            current.detach(token)
            span.end()

    return traced


def _record_error(conn: Connection, span: trace.Span, exc: Exception, message: Any) -> None:
    """What a handler raised, on its span; a client frame's, with bodies off, without its text.

    The message of an exception raised while handling a client frame may quote
    the frame; only its type and where it was raised are kept (and the
    connection remembers it, so the disconnect it causes records it the same way).
    """
    if message.get("type") == "websocket.receive" and not runtime.config().record_bodies:
        conn.frame_error = exc
        record_bare_exception(span, exc)
        span.set_status(Status(StatusCode.ERROR, exception_type(exc)))  # the type, no text
        return
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


def _strip(message: Any) -> Any:
    carrier.PARKED.claim(message)
    clean, _ = carrier.take_from_message(message)
    return clean


def _begin(
    conn: Connection,
    dispatch: Dispatch,
    message: dict[str, Any],
    bases: dict[Any, dict[str, Any]],
) -> tuple[trace.Span, context.Context, dict[str, Any]] | None:
    kind = message.get("type")
    if kind == "websocket.receive":
        return _begin_receive(conn, message, _handler_name(kind))
    if kind == "websocket.connect":
        # connect() runs inside the connect span so group_add etc. hang under it.
        span = trace.NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)
        return span, conn.connect_ctx, message
    if kind == "websocket.disconnect":
        span = conn.disconnect_span(message)
        return span, trace.set_span_in_context(span, conn.connect_ctx), message
    # Usually parked by the layer's receive(); else still in the message (another layer).
    carried = carrier.PARKED.claim(message)
    if carried is None:
        clean, carried = carrier.take_from_message(message)
    else:
        clean = message
    base = bases.get(kind) if type(kind) is str else None
    if base is None or base[c.CONNECTION_ID] != conn.connection_id:
        base = _deliver_base(conn, dispatch, kind)
        if type(kind) is str and len(bases) < 64:  # a consumer handles a handful of types
            bases[kind] = base
    attributes = base.copy()
    seq = None
    if type(carried) is dict:
        try:
            seq = int(carried.get(carrier.SEQ_FIELD))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            pass
        else:
            attributes[c.SEQ] = seq
    if type(carried) is dict and "baggage" not in carried:
        return _begin_own_delivery(conn, carried, attributes, seq, clean)
    # The receiving connection is this one, whoever published; the conversation is
    # the publisher's when it said so.
    own = {c.CONNECTION_ID: conn.connection_id}
    fallback = {c.CONVERSATION_ID: conn.conversation_id} if conn.conversation_id else None
    if isinstance(carried, dict) and "baggage" not in carried:
        parent = carrier.extract_message(carried, fallback, own)
    else:
        parent = carrier.extract(carried) if carried else conn.current_or_connect()
        ids = current.ids(parent)
        parent = carrier.with_ids(
            parent,
            conversation_id=ids.get(c.CONVERSATION_ID) or conn.conversation_id,
            connection_id=conn.connection_id,
        )
    if seq is not None:
        parent = context.set_value(SEQ_KEY, seq, parent)
    # The conversation and message ids come from the parent's baggage (IdsFromBaggage
    # for SDK spans, the lean tracer itself otherwise).
    span = runtime.tracer().start_span(
        c.SPAN_DELIVER, context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    )
    return span, trace.set_span_in_context(span, parent), clean


def _deliver_base(conn: Connection, dispatch: Dispatch, kind: Any) -> dict[str, Any]:
    """The ws.deliver attributes every event of type ``kind`` shares on this consumer."""
    attributes: dict[str, Any] = {
        c.HOP: c.HOP_DELIVER,
        c.EVENT: c.EV_DELIVER,
        c.MESSAGE_TYPE: str(kind),
        c.HANDLER: _handler_name(kind),
        c.CONNECTION_ID: conn.connection_id,
    }
    channel = getattr(getattr(dispatch, "__self__", None), "channel_name", None)
    if channel:
        attributes[c.CHANNEL] = str(channel)
    return attributes


def _begin_own_delivery(
    conn: Connection,
    carried: dict[str, Any],
    attributes: dict[str, Any],
    seq: int | None,
    clean: dict[str, Any],
) -> tuple[trace.Span, context.Context, dict[str, Any]]:
    """The usual case, once per streamed chunk: a carrier ``message_carrier`` wrote.

    Same span and same handler context as the general path, built directly: the
    parent from ``traceparent``, the ids from the carrier (the conversation falls
    back to the connection's, the connection is always this one), so the span
    starts with every id and skips the baggage merge, whichever tracer makes it.
    """
    conversation = carried.get(c.CONVERSATION_ID)
    if not (type(conversation) is str and conversation):
        conversation = conn.conversation_id
    elif len(conversation) > current.ID_LIMIT:  # a publisher that did not cap it
        conversation = current.capped_id(conversation)
    entries: dict[str, str] = (
        {c.CONVERSATION_ID: conversation, c.CONNECTION_ID: conn.connection_id}
        if conversation
        else {c.CONNECTION_ID: conn.connection_id}
    )
    message_id = carried.get(c.MESSAGE_ID)
    if type(message_id) is str and message_id:
        if len(message_id) > current.ID_LIMIT:
            message_id = current.capped_id(message_id)
        entries[c.MESSAGE_ID] = message_id
    attributes.update(entries)
    values: dict[str, Any] = {SEQ_KEY: seq} if seq is not None else {}
    # The context the general path would extract: the SDK's sampler and processors see it.
    remote = carrier.parent_of(carried)
    parent = carrier.context_for(
        trace.NonRecordingSpan(remote) if remote is not None else trace.INVALID_SPAN,
        entries,
        values,
    )
    spans = runtime.spans()
    span = spans.start_child(c.SPAN_DELIVER, parent, SpanKind.CONSUMER, attributes)
    if runtime.config().record_bodies:
        return span, current.with_span(span, parent), clean
    # What _start_send_span would derive for each frame this handler writes:
    # Connection.ids() (its conversation first), then the delivery's ids.
    send: dict[str, Any] = {c.CONNECTION_ID: conn.connection_id}
    conversation = conn.conversation_id or conversation
    if conversation:
        send[c.CONVERSATION_ID] = conversation
    if c.MESSAGE_ID in entries:
        send[c.MESSAGE_ID] = message_id
    send[c.HOP] = c.HOP_SEND
    send[c.EVENT] = c.EV_SEND
    if seq is not None:
        send[c.SEQ] = seq
    return span, current.with_span(span, parent, {SEND_KEY: (span, spans, conn, send)}), clean


def _begin_receive(
    conn: Connection, message: dict[str, Any], handler: str
) -> tuple[trace.Span, context.Context, dict[str, Any]]:
    cfg = runtime.config()
    text = message.get("text")
    payload = text if text is not None else message.get("bytes")
    data = parse_frame(text)
    # Before the context is built: a conversation named by this frame is in its baggage.
    resolved = conn.frame_resolver is not None and conn.resolve_from_frame(
        data if data is not None else _any_json(text)
    )
    if data is not None:
        message_id = message_id_in(data, cfg.message_id_field)
    elif type(text) is str and text.startswith("{"):  # too large to parse: scan its head
        message_id = scan_app_id(text, (cfg.message_id_field,), nested=False)
    else:
        message_id = None
    # A long client id is carried as its short form, the same in every process.
    message_id = current.capped_id(message_id) if message_id else uuid.uuid4().hex
    ctx = carrier.with_ids(conn.connect_ctx, message_id=message_id)
    attributes: dict[str, Any] = {
        **conn.ids(),
        c.MESSAGE_ID: message_id,
        c.HOP: c.HOP_RECEIVE,
        c.EVENT: c.EV_RECEIVE,
        c.HANDLER: handler,
    }
    if resolved:
        attributes[c.CONVERSATION_SOURCE] = "resolver"
    _describe_frame(attributes, data, text, cfg)
    if payload is not None:
        attributes[c.FRAME_BYTES] = len(payload)
    if cfg.record_bodies and isinstance(text, str):
        attributes[c.BODY] = text[:4096]
    span = runtime.tracer().start_span(
        c.SPAN_RECEIVE, context=ctx, kind=SpanKind.SERVER, attributes=attributes
    )
    return span, trace.set_span_in_context(span, ctx), message


def _describe_frame(attributes: dict[str, Any], data: Any, text: Any, cfg: Any) -> None:
    """The frame's type, whether it must be answered, and the app's own id for it."""
    frame_type = app_id = None
    if data is not None:
        frame_type = frame_type_in(data, cfg.frame_type_field)
        app_id = app_id_in(data, cfg.app_id_fields) if cfg.app_id_fields else None
    elif type(text) is str and text.startswith("{"):  # too large to parse: scan its head
        fields = (cfg.frame_type_field, "action", "event")
        frame_type = scan_app_id(text, tuple(dict.fromkeys(fields)), nested=False)
        app_id = scan_app_id(text, cfg.app_id_fields) if cfg.app_id_fields else None
    if frame_type is not None:
        attributes[c.FRAME_TYPE] = frame_type
    if cfg.answered_types is not None:
        attributes[c.EXPECTS_ANSWER] = frame_type in cfg.answered_types
    if app_id is not None:
        attributes[c.APP_MESSAGE_ID] = app_id


def _any_json(text: Any) -> Any:
    """A first frame that is JSON but not an object (a list, a string), for the resolver."""
    if type(text) is not str or not text or len(text) > 64 * 1024:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _handler_name(kind: Any) -> str:
    name = _HANDLERS.get(kind) if type(kind) is str else None
    if name is not None:
        return name
    name = str(kind).replace(".", "_") if kind else ""
    if type(kind) is str and len(_HANDLERS) < 1024:  # a consumer has a handful of types
        _HANDLERS[kind] = name
    return name


_HANDLERS: dict[str, str] = {}
