"""One WebSocket connection's evidence: its ids, its connect span, what happened to it.

A ``Connection`` lives in a context variable for the lifetime of the ASGI
application instance, so every wrapper below the router (origin validator,
consumer, dispatch, send) finds it without touching the user's scope.

A connection belongs to a conversation only when something names it
(``ws.conversation_source``): the URLRouter resolved ``CONVERSATION_KWARG``
(``route``); ``CONVERSATION_PATTERN``, when the user set one, matches the path
(``pattern``); ``CONVERSATION_RESOLVER`` returned an id, from the scope or the
first client frame (``resolver``); or a handshake refused before routing has a
path that a routed pattern with the kwarg matches (``path``). A notification
socket at ``/ws/user/5/`` therefore has no conversation, only its ``ws.route``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from wstrace import carrier, current, runtime
from wstrace import conventions as c
from wstrace.channels.bare_exceptions import _looks_like_auth, _wraps, record_bare_exception
from wstrace.channels.routes import _call_resolver, _resolver, match_route

CURRENT: ContextVar[Connection | None] = ContextVar("wstrace_connection", default=None)
SEQ_KEY = context.create_key("wstrace.seq")
# In a ws.deliver handler's context: (deliver span, the ChildSpans that made it,
# connection, the ws.send attributes), so each frame the handler writes starts its span
# from them.
SEND_KEY = context.create_key("wstrace.send")


class Connection:
    """Bookkeeping and span emission for one WebSocket connection."""

    def __init__(self, scope: dict[str, Any], app: Any = None) -> None:
        cfg = runtime.config()
        self.connection_id = uuid.uuid4().hex
        self.app = app  # the ASGI application (its URLRouter routes name conversations)
        self.path = str(scope.get("path") or "")
        self.root_path = str(scope.get("root_path") or "")
        self.conversation_id: str | None = None
        self.conversation_source: str | None = None
        self.route: str | None = None
        # Set while CONVERSATION_RESOLVER waits for the first client frame: (resolver, scope).
        self.frame_resolver: tuple[Callable[..., Any], dict[str, Any]] | None = None
        self.layer_error: BaseException | None = None  # raised by the consumer's layer receive
        # Raised by a client frame's handler while bodies are off: recorded without its text.
        self.frame_error: BaseException | None = None
        if cfg.conversation_pattern is not None:
            match = cfg.conversation_pattern.search(self.path)
            if match and match.group("conversation_id"):
                self.conversation_id = current.capped_id(match.group("conversation_id"))
                self.conversation_source = "pattern"
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
        if cfg.trust_client_context:  # the client's trace, never the ids in its baggage
            parent = carrier.extract_trace(_headers(scope))
        attributes = {
            c.HOP: c.HOP_CONNECT,
            c.EVENT: c.EV_CONNECT,
            c.CONNECTION_ID: self.connection_id,
            c.PATH: self.path,
        }
        if self.conversation_id:
            attributes[c.CONVERSATION_ID] = self.conversation_id
            attributes[c.CONVERSATION_SOURCE] = str(self.conversation_source)
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

    def name_conversation(self, conversation_id: str, source: str) -> None:
        """From now on this connection's spans and contexts carry ``conversation_id``."""
        conversation_id = current.capped_id(conversation_id)
        self.conversation_id = conversation_id
        self.conversation_source = source
        # Every later context (receive, deliver, send, the group_send of a handler) is
        # built from connect_ctx, so its baggage is where the id must be.
        self.connect_ctx = carrier.with_ids(self.connect_ctx, conversation_id=conversation_id)

    def _describe_connect(self) -> None:
        """Put the conversation and the route on the connect span while it is open."""
        span = self.connect_span
        if span is None:
            return
        attributes: dict[str, Any] = self.ids()
        if self.conversation_source:
            attributes[c.CONVERSATION_SOURCE] = self.conversation_source
        if self.route:
            attributes[c.ROUTE] = self.route
        span.set_attributes(attributes)

    def _name_from_scope(self, scope: dict[str, Any]) -> None:
        """A routed connection: its route, then the kwarg or the resolver names it."""
        cfg = runtime.config()
        url_route = scope.get("url_route")
        if not isinstance(url_route, Mapping):
            url_route = {}
        elif self.app is not None:
            found = match_route(self.app, self.path, self.root_path)
            self.route = found[0] if found else None
        kwargs = url_route.get("kwargs")
        conversation = kwargs.get(cfg.conversation_kwarg) if isinstance(kwargs, Mapping) else None
        if conversation is not None and str(conversation):
            self.name_conversation(str(conversation), "route")
        elif self.conversation_id is None and cfg.conversation_resolver is not None:
            self._resolve_from_scope(cfg.conversation_resolver, scope)

    def _resolve_from_scope(self, setting: Any, scope: dict[str, Any]) -> None:
        resolver, takes_frame = _resolver(setting)
        if resolver is None:
            return
        found = _call_resolver(resolver, (scope, None) if takes_frame else (scope,))
        if found:
            self.name_conversation(found, "resolver")
        elif takes_frame:
            self.frame_resolver = (resolver, scope)

    def resolve_from_frame(self, frame: Any) -> bool:
        """Ask the resolver about the first client frame; True when it named the conversation."""
        pending, self.frame_resolver = self.frame_resolver, None
        if pending is None or frame is None:
            return False
        resolver, scope = pending
        found = _call_resolver(resolver, (scope, frame))
        if found and self.conversation_id is None:
            self.name_conversation(found, "resolver")
            return True
        return False

    def _name_from_path(self) -> None:
        """Refused before routing: the path names a conversation only through a routed pattern."""
        if self.conversation_id is not None or self.app is None:
            return
        found = match_route(self.app, self.path, self.root_path)
        if found is None:
            return
        self.route = found[0]
        conversation = found[1].get(runtime.config().conversation_kwarg)
        if conversation is not None and str(conversation):
            self.name_conversation(str(conversation), "path")

    # --- hops ---------------------------------------------------------------------
    def on_consumer(self, consumer: Any, scope: dict[str, Any]) -> None:
        """The middleware stack handed the connection to a consumer: record auth."""
        if self.consumer_entered:
            return
        self.consumer_entered = True
        denied = type(consumer).__name__ == "WebsocketDenier"
        if denied:
            self._name_from_path()  # an origin validator refused before the URLRouter ran
        else:
            self._name_from_scope(scope)
        self._describe_connect()
        consumer_name = f"{type(consumer).__module__}.{type(consumer).__qualname__}"
        if self.connect_span is not None:
            self.connect_span.set_attribute(c.CONSUMER, consumer_name)
        if denied:
            return  # no auth happened
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
        if not self.consumer_entered:
            self._name_from_path()  # a middleware refused before routing
            self._describe_connect()
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
            self._record_exception(span, exc)
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
        if self.conversation_source:
            attributes[c.CONVERSATION_SOURCE] = self.conversation_source
        return runtime.tracer().start_span(
            c.SPAN_DISCONNECT, context=self.connect_ctx, attributes=attributes
        )

    def on_crash(self, exc: BaseException) -> None:
        """The application raised out of the router: Daphne answers 500/403 or closes 1011."""
        layer_down = self._layer_failed(exc)
        if not self.accepted:
            if not self.consumer_entered:
                self._name_from_path()
                self._describe_connect()
                cause = "auth_rejected" if _looks_like_auth(exc) else "handshake_rejected"
                self._point(
                    c.SPAN_AUTH,
                    self.connect_ctx,
                    {c.HOP: c.HOP_AUTH, c.EVENT: c.EV_AUTH, c.CAUSE: cause},
                    error=True,
                    exc=exc,
                )
            else:
                cause = "channel_layer_unavailable" if layer_down else "consumer_error"
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
            cause = "channel_layer_unavailable" if layer_down else "consumer_error"
            attributes.update({c.CLOSE_CODE: 1011, c.CAUSE: cause})
        if self.conversation_source:
            attributes[c.CONVERSATION_SOURCE] = self.conversation_source
        self._point(c.SPAN_DISCONNECT, self.connect_ctx, attributes, error=True, exc=exc)

    def _layer_failed(self, exc: BaseException) -> bool:
        """Whether ``exc`` (or what it wraps) is what the consumer's layer receive raised."""
        return _wraps(exc, self.layer_error)

    def _record_exception(self, span: trace.Span, exc: BaseException) -> None:
        """``span.record_exception``, without the text when a client frame's handler raised it."""
        if _wraps(exc, self.frame_error):
            record_bare_exception(span, exc)
        else:
            span.record_exception(exc)

    def on_exit(self) -> None:
        """The application instance finished: close whatever is still open."""
        if self.connect_span is not None:
            if not self.consumer_entered:
                self._name_from_path()
                self._describe_connect()
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
            self._record_exception(span, exc)
        if error:
            span.set_status(Status(StatusCode.ERROR, str(attributes.get(c.CAUSE) or name)))
        span.end()


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value.decode("latin1")
    return None


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin1"): v.decode("latin1") for k, v in scope.get("headers") or ()}
