"""The ASGI edge: connect, accept/close and every frame written to the client.

``ProtocolTypeRouter.__call__`` is wrapped because every Channels app has one
at its top; for ``websocket`` scopes the wrapper creates the ``Connection`` and
wraps ``receive``/``send`` so the handshake outcome and each frame are seen
exactly as the server sees them, whatever the consumer code does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode

from wstrace import carrier, current, runtime
from wstrace import conventions as c
from wstrace.channels.connection import CURRENT, SEND_KEY, SEQ_KEY, Connection
from wstrace.channels.frames import scan_app_id
from wstrace.runtime import STATE

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def router_call(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    """Wrapper for ``ProtocolTypeRouter.__call__(scope, receive, send)``."""
    scope, receive, send = _call_args(args, kwargs)
    if (
        not runtime.active()
        or not isinstance(scope, dict)
        or scope.get("type") != "websocket"
        or CURRENT.get() is not None  # a nested router: the outer one records
    ):
        return await wrapped(*args, **kwargs)
    conn = runtime.shield("connect", Connection, scope, instance)
    if conn is None:
        return await wrapped(*args, **kwargs)
    token = CURRENT.set(conn)
    try:
        return await wrapped(scope, _traced_receive(conn, receive), _traced_send(conn, send))
    except BaseException as exc:
        runtime.shield("application crash", conn.on_crash, exc)
        raise
    finally:
        runtime.shield("connection end", conn.on_exit)
        CURRENT.reset(token)


def _call_args(args: tuple, kwargs: dict) -> tuple[Any, Any, Any]:
    names = ("scope", "receive", "send")
    values = list(args) + [kwargs.get(n) for n in names[len(args) :]]
    return values[0], values[1], values[2]


def _traced_receive(conn: Connection, receive: Receive) -> Receive:
    async def traced_receive() -> dict[str, Any]:
        message = await receive()
        if isinstance(message, dict) and message.get("type") == "websocket.disconnect":
            code = message.get("code")
            conn.disconnect_code = code if isinstance(code, int) else conn.disconnect_code
        return message

    return traced_receive


def _traced_send(conn: Connection, send: Send) -> Send:
    async def traced_send(message: dict[str, Any]) -> None:
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "websocket.send" and STATE["active"]:
            # runtime.shield, inlined: this runs for every frame written to the client.
            try:
                span = _start_send_span(conn, message)
            except Exception as exc:
                runtime.report_once("send", exc)
                span = None
            if span is not None:
                try:
                    await send(message)
                except Exception as exc:
                    span.record_exception(exc)
                    span.set_attribute(c.CAUSE, "send_failed")
                    span.set_status(Status(StatusCode.ERROR, "send_failed"))
                    raise
                finally:
                    span.end()
                return
        elif kind == "websocket.accept" and runtime.active():
            runtime.shield("accept", conn.on_accept)
        elif kind == "websocket.close" and runtime.active():
            runtime.shield("close", conn.on_close, message.get("code"))
        await send(message)

    return traced_send


def _start_send_span(conn: Connection, message: dict[str, Any]) -> Any:
    payload = message.get("text")
    if payload is None:
        payload = message.get("bytes")
    ctx = current.get()
    prepared = ctx.get(SEND_KEY)
    if prepared is not None and prepared[2] is conn and ctx.get(current.SPAN_KEY) is prepared[0]:
        # Straight from a ws.deliver handler (the usual case): attributes made at delivery.
        _, spans, _, attributes = prepared
        attributes = attributes.copy()
        if payload is not None:
            attributes[c.FRAME_BYTES] = len(payload)
            if type(payload) is str and payload[:1] == "{":
                _add_app_id(attributes, payload)
        return spans.start_child(c.SPAN_SEND, ctx, SpanKind.INTERNAL, attributes)
    attributes = conn.ids()
    attributes[c.HOP] = c.HOP_SEND
    attributes[c.EVENT] = c.EV_SEND
    if payload is not None:
        attributes[c.FRAME_BYTES] = len(payload)
        if type(payload) is str and payload[:1] == "{":
            _add_app_id(attributes, payload)
    seq = ctx.get(SEQ_KEY)
    if seq is not None:
        attributes[c.SEQ] = seq
    if runtime.config().record_bodies and isinstance(payload, str):
        attributes[c.BODY] = payload[:4096]
    # Inside a handler (the usual case) the frame is its child, else the connection's
    # (``Connection.current_or_connect``); the ids missing so far are that context's baggage.
    parent = ctx if current.span_context(ctx).is_valid else conn.connect_ctx
    entries = carrier.baggage_of(parent)
    for key in c.BAGGAGE_KEYS:
        if key not in attributes:
            value = entries.get(key)
            if value:
                attributes[key] = str(value)
    return runtime.spans().start_child(c.SPAN_SEND, parent, SpanKind.INTERNAL, attributes)


def _add_app_id(attributes: dict[str, Any], text: str) -> None:
    """The app's own id of an outgoing JSON frame: a bounded scan, no parse per chunk."""
    fields = STATE["config"].app_id_fields
    if fields:
        app_id = scan_app_id(text, fields)
        if app_id is not None:
            attributes[c.APP_MESSAGE_ID] = app_id


def origin_valid(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    """Wrapper for ``OriginValidator.valid_origin``: remember the verdict."""
    result = wrapped(*args, **kwargs)
    conn = CURRENT.get()
    if conn is not None:
        conn.origin_allowed = bool(result)
    return result
