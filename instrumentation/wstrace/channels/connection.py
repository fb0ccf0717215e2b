"""One WebSocket connection's evidence: its ids, its connect span, what happened to it.

A ``Connection`` lives in a context variable for the lifetime of the ASGI
application instance, so every wrapper below the router (origin validator,
consumer, dispatch, send) finds it without touching the user's scope.
"""

from __future__ import annotations

import json
import time
import uuid
from contextvars import ContextVar
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from wstrace import carrier, runtime
from wstrace import conventions as c

CURRENT: ContextVar[Connection | None] = ContextVar("wstrace_connection", default=None)
SEQ_KEY = context.create_key("wstrace.seq")
# In a ws.deliver handler's context: (deliver span, its tracer, connection, the ws.send
# attributes), so each frame the handler writes starts its span from them.
SEND_KEY = context.create_key("wstrace.send")


class Connection:
    """Bookkeeping and span emission for one WebSocket connection."""

    def __init__(self, scope: dict[str, Any]) -> None:
        cfg = runtime.config()
        self.connection_id = uuid.uuid4().hex
        self.path = str(scope.get("path") or "")
        self.conversation_id = _conversation_from_path(self.path)
        self.origin = _header(scope, b"origin")
        self.started_ns = time.time_ns()
        self.accepted = False
        self.server_close_code: int | None = None
        self.disconnect_code: int | None = None
        self.disconnect_emitted = False
        self.consumer_entered = False
        self.origin_allowed: bool | None = None
        self.user_authenticated: bool | None = None
        parent = context.Context()
        if cfg.trust_client_context:
            parent = carrier.extract(_headers(scope))
        attributes = {
            c.HOP: c.HOP_CONNECT,
            c.EVENT: c.EV_CONNECT,
            c.CONNECTION_ID: self.connection_id,
            c.PATH: self.path,
        }
        if self.conversation_id:
            attributes[c.CONVERSATION_ID] = self.conversation_id
        if self.origin:
            attributes[c.ORIGIN] = self.origin
        self.connect_span: trace.Span | None = runtime.tracer().start_span(
            c.SPAN_CONNECT,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,
            start_time=self.started_ns,
        )
        self.connect_ctx = self._context_for(self.connect_span, parent)
        self._connect_span_ref = self.connect_span

    # --- ids and contexts -------------------------------------------------------
    def _context_for(self, span: trace.Span, parent: context.Context) -> context.Context:
        ctx = carrier.with_ids(
            parent, conversation_id=self.conversation_id, connection_id=self.connection_id
        )
        return trace.set_span_in_context(span, ctx)

    def ids(self) -> dict[str, str]:
        """Attributes naming this connection (and its conversation, once known)."""
        ids = {c.CONNECTION_ID: self.connection_id}
        if self.conversation_id:
            ids[c.CONVERSATION_ID] = self.conversation_id
        return ids

    def current_or_connect(self) -> context.Context:
        """The current context if a span of ours is active, else the connection's."""
        current = context.get_current()
        if trace.get_current_span(current).get_span_context().is_valid:
            return current
        return self.connect_ctx

    # --- hops ---------------------------------------------------------------------
    def on_consumer(self, consumer: Any, scope: dict[str, Any]) -> None:
        """The middleware stack handed the connection to a consumer: record auth."""
        if self.consumer_entered:
            return
        self.consumer_entered = True
        kwargs = (scope.get("url_route") or {}).get("kwargs") or {}
        conversation = kwargs.get(runtime.config().conversation_kwarg)
        if conversation:
            self.conversation_id = str(conversation)
            self.connect_ctx = self._context_for(self._connect_span_ref, context.Context())
        consumer_name = f"{type(consumer).__module__}.{type(consumer).__qualname__}"
        if self.connect_span is not None:
            self.connect_span.set_attributes({**self.ids(), c.CONSUMER: consumer_name})
        if type(consumer).__name__ == "WebsocketDenier":
            return  # an origin validator refused: no auth happened
        user = scope.get("user")
        authenticated = bool(getattr(user, "is_authenticated", False))
        self.user_authenticated = authenticated
        attributes: dict[str, Any] = {
            **self.ids(),
            c.HOP: c.HOP_AUTH,
            c.EVENT: c.EV_AUTH,
            c.USER_AUTHENTICATED: authenticated,
        }
        user_id = getattr(user, "pk", None) if authenticated else None
        if user_id is not None:
            attributes[c.USER_ID] = str(user_id)
        span = runtime.tracer().start_span(
            c.SPAN_AUTH, context=self.connect_ctx, attributes=attributes, start_time=self.started_ns
        )
        span.end()

    def on_accept(self) -> None:
        """The app accepted the handshake."""
        self.accepted = True
        self._point(c.SPAN_ACCEPT, self.connect_ctx, {c.HOP: c.HOP_ACCEPT, c.EVENT: c.EV_ACCEPT})
        if self.connect_span is not None:
            self.connect_span.end()
            self.connect_span = None

    def on_close(self, code: int | None) -> None:
        """The app closed (or, before accept, refused) the connection."""
        code = 1000 if code is None else int(code)
        self.server_close_code = code
        if not self.accepted:
            self._reject(code)
            return
        attributes: dict[str, Any] = {
            c.HOP: c.HOP_DISCONNECT,
            c.EVENT: c.EV_CLOSE,
            c.CLOSE_CODE: code,
            c.CLOSED_BY: "server",
            c.ACCEPTED: True,
        }
        mapped = runtime.config().close_codes.get(code)
        if mapped:
            attributes[c.CAUSE] = mapped[0]
        self._point(c.SPAN_CLOSE, self.current_or_connect(), attributes, error=bool(mapped))

    def _reject(self, code: int) -> None:
        if self.origin_allowed is False:
            cause = "origin_rejected"
        elif self.user_authenticated is False:
            cause = "auth_rejected"
        else:
            mapped = runtime.config().close_codes.get(code)
            cause = mapped[0] if mapped else "handshake_rejected"
        attributes: dict[str, Any] = {
            c.HOP: c.HOP_CONNECT,
            c.EVENT: c.EV_REJECT,
            c.CLOSE_CODE: code,
            c.CLOSED_BY: "server",
            c.ACCEPTED: False,
            c.HANDSHAKE_REJECTED: True,
            c.CAUSE: cause,
        }
        self._point(c.SPAN_CLOSE, self.connect_ctx, attributes, error=True)
        self._fail_connect(cause, "handshake rejected: the client sees HTTP 403 / close 1006")

    def _fail_connect(self, cause: str, description: str, exc: BaseException | None = None) -> None:
        span = self.connect_span
        if span is None:
            return
        span.set_attributes({c.HANDSHAKE_REJECTED: True, c.CAUSE: cause})
        if self.origin_allowed is not None:
            span.set_attribute(c.ORIGIN_ALLOWED, self.origin_allowed)
        if exc is not None:
            span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, description))
        span.end()
        self.connect_span = None

    def disconnect_span(self, message: dict[str, Any]) -> trace.Span:
        """Start the span for a ``websocket.disconnect`` the consumer is about to handle."""
        self.disconnect_emitted = True
        if self.connect_span is not None and self.server_close_code is None:
            # Neither accepted nor refused by the app: the server gave up on the handshake.
            self._fail_connect(
                "handshake_timeout", "the handshake ended before the app accepted or refused it"
            )
        code = message.get("code")
        self.disconnect_code = int(code) if isinstance(code, int) else None
        attributes: dict[str, Any] = {
            **self.ids(),
            c.HOP: c.HOP_DISCONNECT,
            c.EVENT: c.EV_DISCONNECT,
            c.CLOSED_BY: "server" if self.server_close_code is not None else "client",
            c.ACCEPTED: self.accepted,
        }
        close_code = self.server_close_code if self.server_close_code is not None else code
        if isinstance(close_code, int):
            attributes[c.CLOSE_CODE] = close_code
        return runtime.tracer().start_span(
            c.SPAN_DISCONNECT, context=self.connect_ctx, attributes=attributes
        )

    def on_crash(self, exc: BaseException) -> None:
        """The application raised out of the router: Daphne answers 500/403 or closes 1011."""
        if not self.accepted:
            if not self.consumer_entered:
                cause = "auth_rejected" if _looks_like_auth(exc) else "handshake_rejected"
                self._point(
                    c.SPAN_AUTH,
                    self.connect_ctx,
                    {c.HOP: c.HOP_AUTH, c.EVENT: c.EV_AUTH, c.CAUSE: cause},
                    error=True,
                    exc=exc,
                )
            else:
                cause = "consumer_error"
            self._fail_connect(
                cause, f"application raised before accept: {type(exc).__name__}", exc
            )
            self.disconnect_emitted = True
            return
        if self.disconnect_emitted:
            return
        self.disconnect_emitted = True
        attributes: dict[str, Any] = {
            c.HOP: c.HOP_DISCONNECT,
            c.EVENT: c.EV_DISCONNECT,
            c.CLOSED_BY: "server",
            c.ACCEPTED: True,
        }
        if isinstance(exc, Exception):
            attributes.update({c.CLOSE_CODE: 1011, c.CAUSE: "consumer_error"})
        self._point(c.SPAN_DISCONNECT, self.connect_ctx, attributes, error=True, exc=exc)

    def on_exit(self) -> None:
        """The application instance finished: close whatever is still open."""
        if self.connect_span is not None:
            self._fail_connect("handshake_rejected", "application ended before accepting")
        if not self.disconnect_emitted and (self.accepted or self.disconnect_code is not None):
            self.disconnect_emitted = True
            self.disconnect_span({"code": self.disconnect_code}).end()

    # --- helpers --------------------------------------------------------------------
    def _point(
        self,
        name: str,
        parent: context.Context,
        attributes: dict[str, Any],
        *,
        error: bool = False,
        exc: BaseException | None = None,
    ) -> None:
        span = runtime.tracer().start_span(
            name, context=parent, attributes={**self.ids(), **attributes}
        )
        if exc is not None:
            span.record_exception(exc)
        if error:
            span.set_status(Status(StatusCode.ERROR, str(attributes.get(c.CAUSE) or name)))
        span.end()


def message_id_of(text: str | None, field: str) -> str | None:
    """The client's own id for a frame, when it is a JSON object carrying one."""
    if not text or f'"{field}"' not in text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    value = data.get(field) if isinstance(data, dict) else None
    return str(value) if isinstance(value, str | int) and str(value) else None


def _conversation_from_path(path: str) -> str | None:
    match = runtime.config().conversation_pattern.search(path)
    return match.group("conversation_id") if match else None


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value.decode("latin1")
    return None


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin1"): v.decode("latin1") for k, v in scope.get("headers") or ()}


def _looks_like_auth(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    text = f"{type(exc).__name__} {exc}".lower()
    return module.startswith(("jwt", "rest_framework_simplejwt", "jose")) or any(
        word in text for word in ("token", "signature", "jwt", "auth")
    )
