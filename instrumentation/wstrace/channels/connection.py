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

import importlib
import inspect
import json
import re
import time
import traceback
import uuid
import weakref
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from wstrace import carrier, current, runtime
from wstrace import conventions as c

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


def _wraps(exc: BaseException | None, failure: BaseException | None) -> bool:
    """Whether ``exc`` is ``failure`` or wraps it (its cause or context, 8 levels down)."""
    seen = 0
    while exc is not None and failure is not None and seen < 8:
        if exc is failure:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


# --- exceptions that may quote a client frame ------------------------------------------
_MAX_FRAMES = 64  # innermost frames kept of each exception's traceback
_MAX_CHAIN = 8  # exceptions of a __cause__/__context__ chain kept
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def record_bare_exception(span: trace.Span, exc: BaseException) -> None:
    """Record ``exc`` on ``span`` as its type and where it was raised, never its message.

    What a client frame's handler raises may quote the frame (DRF's
    ``ValidationError``, ``ValueError(f"bad input {text}")``); with
    ``RECORD_BODIES`` off, the ``exception`` event keeps only ``exception.type``
    and a stack trace of file:line and function names (no message, no source
    line, no locals).
    """
    span.add_event(
        "exception",
        {
            "exception.type": exception_type(exc),
            "exception.stacktrace": bare_traceback(exc),
            "exception.escaped": "False",
        },
    )


def exception_type(exc: BaseException) -> str:
    """``module.QualName`` of the exception's class (just the name for builtins)."""
    kind = type(exc)
    module = kind.__module__
    return f"{module}.{kind.__qualname__}" if module and module != "builtins" else kind.__qualname__


def bare_traceback(exc: BaseException) -> str:
    """``traceback.format_exception(exc)`` without messages, source lines or notes."""
    # Newest first, each with the text printed between it and the newer one.
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    link = ""
    older: BaseException | None = exc
    while older is not None and id(older) not in seen and len(chain) < _MAX_CHAIN:
        seen.add(id(older))
        chain.append((older, link))
        if older.__cause__ is not None:
            link, older = _CAUSE, older.__cause__
        elif older.__context__ is not None and not older.__suppress_context__:
            link, older = _CONTEXT, older.__context__
        else:
            older = None
    return "".join(_bare_one(one) + link for one, link in reversed(chain))


def _bare_one(exc: BaseException) -> str:
    """One exception of a chain: its frames (innermost last) and its type."""
    frames = list(traceback.walk_tb(exc.__traceback__))
    lines = []
    if frames:
        lines.append("Traceback (most recent call last):\n")
        if len(frames) > _MAX_FRAMES:
            lines.append(f"  [{len(frames) - _MAX_FRAMES} frames left out]\n")
        for frame, lineno in frames[-_MAX_FRAMES:]:
            code = frame.f_code
            lines.append(f'  File "{code.co_filename}", line {lineno}, in {code.co_name}\n')
    lines.append(f"{exception_type(exc)}\n")
    return "".join(lines)


# --- frames: the app's own ids and frame types, never bodies -------------------------
_PARSE_LIMIT = 64 * 1024  # larger client frames are scanned, not parsed
_HEAD = 512  # what the bounded scan of a frame reads
_MAX_ID = 128  # an app id longer than this is not an id
_NESTS = ("data", "message", "payload")  # envelopes whose ids count, one level down
_TYPE_FALLBACKS = ("action", "event")


def parse_frame(text: Any) -> dict[str, Any] | None:
    """A client frame's JSON object, parsed only when it looks like one and is not huge."""
    if type(text) is not str or not text.startswith("{") or len(text) > _PARSE_LIMIT:
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return data if type(data) is dict else None


def message_id_in(data: Mapping[str, Any] | None, field: str) -> str | None:
    """The client's ``MESSAGE_ID_FIELD`` of a parsed frame (str or int), if any."""
    value = data.get(field) if data is not None else None
    return str(value) if isinstance(value, str | int) and str(value) else None


def _short(value: Any) -> str | None:
    if type(value) is str:
        return value if 0 < len(value) <= _MAX_ID else None
    return str(value) if type(value) is int else None


def app_id_in(data: Mapping[str, Any], fields: tuple[str, ...]) -> str | None:
    """The first of ``fields`` in the frame, else in its data/message/payload envelope."""
    for field in fields:
        found = _short(data.get(field))
        if found is not None:
            return found
    for nest in _NESTS:
        inner = data.get(nest)
        if type(inner) is dict:
            for field in fields:
                found = _short(inner.get(field))
                if found is not None:
                    return found
    return None


def frame_type_in(data: Mapping[str, Any], field: str) -> str | None:
    """The frame's type: ``FRAME_TYPE_FIELD``, else its "action" or "event" field."""
    for name in (field, *_TYPE_FALLBACKS):
        value = data.get(name)
        if type(value) is str and 0 < len(value) <= _MAX_ID:
            return value
    return None


_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {}  # '"id"' for "id": what str.find looks for
_VALUE = re.compile(rf'\s*:\s*(?:"([^"\\]{{1,{_MAX_ID}}})"|(-?\d{{1,40}})(?![\d.eE]))')
_NESTED_KEY = re.compile(r'"(data|message|payload)"\s*:\s*$')


def scan_app_id(text: str, fields: tuple[str, ...], nested: bool = True) -> str | None:
    """``app_id_in`` without parsing: ``str.find`` over the frame's first 512 characters.

    For what the server sends (once per streamed chunk, ~4 finds and a regex
    match at each hit) and oversized client frames. Nesting is judged by
    counting braces before the hit, so a brace inside an earlier string value
    can hide an id; it never invents one.
    """
    keys = _KEYS.get(fields)
    if keys is None:
        keys = tuple(f'"{field}"' for field in fields)
        if len(_KEYS) < 64:
            _KEYS[fields] = keys
    end = min(len(text), _HEAD)
    found_nested: str | None = None
    # app_id_in looks in the envelopes in _NESTS order, each for the fields in order
    nested_rank: tuple[int, int] | None = None
    for index, key in enumerate(keys):
        start = text.find(key, 0, end)
        while start != -1:
            value = _value_at(text, start + len(key), end)
            if value is not None:
                # No "{" between the opening one and the key (the usual case): top level.
                if text.find("{", 1, start) == -1:
                    return value
                depth = text.count("{", 0, start) - text.count("}", 0, start)
                if depth == 1:  # the first field, in order, at the top level
                    return value
                if depth == 2 and nested:
                    brace = text.rfind("{", 0, start)
                    envelope = _NESTED_KEY.search(text, max(0, brace - 40), brace)
                    if envelope:
                        rank = (_NESTS.index(envelope[1]), index)
                        if nested_rank is None or rank < nested_rank:
                            found_nested, nested_rank = value, rank
            start = text.find(key, start + 1, end)
    return found_nested


def _value_at(text: str, at: int, end: int) -> str | None:
    """The short string or int value after a key at ``at``; ``json.dumps`` spacing first."""
    if text.startswith(_SEPARATOR, at):  # '": "' as json.dumps writes it: no regex
        close = text.find('"', at + 3, min(end, at + 4 + _MAX_ID))
        if close > at + 3:
            value = text[at + 3 : close]
            return None if "\\" in value else value
    match = _VALUE.match(text, at, end)
    if match is None:
        return None
    return match[1] if match[1] is not None else match[2]


_SEPARATOR = ': "'


# --- the conversation resolver -------------------------------------------------------
_RESOLVERS: dict[Any, tuple[Callable[..., Any] | None, bool]] = {}
_MAX_CONVERSATION = 256  # longer "ids" are not ids: a resolver returned something else


def _resolver(setting: Any) -> tuple[Callable[..., Any] | None, bool]:
    """The CONVERSATION_RESOLVER callable and whether it takes the frame; imported once."""
    cached = _RESOLVERS.get(setting)
    if cached is not None:
        return cached
    resolver: Callable[..., Any] | None = None
    try:
        if isinstance(setting, str):
            module, _, name = setting.rpartition(".")
            resolver = getattr(importlib.import_module(module), name)
        else:
            resolver = setting
        if not callable(resolver):
            raise TypeError(f"{setting!r} is not callable")
    except Exception as exc:  # the user's module: any import-time error
        runtime.report_once(f"importing CONVERSATION_RESOLVER {setting!r}", exc)
        resolver = None
    entry = (resolver, resolver is not None and _takes_frame(resolver))
    _RESOLVERS[setting] = entry
    return entry


def _takes_frame(resolver: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(resolver).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: scope only
        return False
    positional = 0
    for parameter in parameters:
        if parameter.kind is parameter.VAR_POSITIONAL:
            return True
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2


def _call_resolver(resolver: Callable[..., Any], args: tuple[Any, ...]) -> str | None:
    """The resolver's answer as an id, or None; a resolver that raises is reported once."""
    try:
        found = resolver(*args)
    except Exception as exc:  # user code: reported once, then it is as if it said None
        runtime.report_once("CONVERSATION_RESOLVER", exc)
        return None
    if found is None or isinstance(found, bool) or not isinstance(found, str | int):
        return None
    text = str(found)
    return text if 0 < len(text) <= _MAX_CONVERSATION else None


# --- routes ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Route:
    """One entry of a URLRouter: its Django pattern, default kwargs, a nested router's routes."""

    pattern: Any
    defaults: Mapping[str, Any]
    text: str
    children: tuple[_Route, ...] | None


_UNKNOWN: Any = object()
_MAX_DEPTH = 16  # middleware layers / nested routers followed before giving up
_ROUTE_TABLES: weakref.WeakKeyDictionary[Any, tuple[_Route, ...] | None] = (
    weakref.WeakKeyDictionary()
)


def match_route(app: Any, path: str, root_path: str = "") -> tuple[str, dict[str, Any]] | None:
    """(route pattern text, kwargs) of the URLRouter route ``path`` reaches in ``app``, if any."""
    try:
        routes = _ROUTE_TABLES.get(app, _UNKNOWN)
    except TypeError:  # an application that cannot be weakly referenced: walk it each time
        routes = _routes_of(app, 0)
    else:
        if routes is _UNKNOWN:
            routes = _ROUTE_TABLES[app] = _routes_of(app, 0)
    if not routes:
        return None
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    return _match(routes, path)


def _routes_of(app: Any, depth: int) -> tuple[_Route, ...] | None:
    """The routes of the first URLRouter reached from ``app`` through middleware ``.inner``."""
    for _ in range(_MAX_DEPTH):
        if app is None:
            return None
        if getattr(app, "_path_routing", False) is True:  # channels.routing.URLRouter
            routes = getattr(app, "routes", None) or ()
            return tuple(r for r in (_route_of(x, depth) for x in routes) if r is not None)
        mapping = getattr(app, "application_mapping", None)  # ProtocolTypeRouter
        if isinstance(mapping, Mapping):
            app = mapping.get("websocket")
            continue
        # BaseMiddleware keeps .inner, OriginValidator .application, others .app/__wrapped__.
        app = next(
            (
                inner
                for inner in (getattr(app, name, None) for name in _INNER)
                if inner is not None and inner is not app
            ),
            None,
        )
    return None


_INNER = ("inner", "application", "app", "__wrapped__")


def _route_of(entry: Any, depth: int) -> _Route | None:
    pattern = getattr(entry, "pattern", None)
    if pattern is None or not callable(getattr(pattern, "match", None)):
        return None
    children = None
    if depth < _MAX_DEPTH:
        children = _routes_of(getattr(entry, "callback", None), depth + 1)
    defaults = getattr(entry, "default_args", None)
    return _Route(
        pattern, defaults if isinstance(defaults, Mapping) else {}, str(pattern), children
    )


def _match(routes: tuple[_Route, ...], path: str) -> tuple[str, dict[str, Any]] | None:
    """What ``URLRouter.__call__`` does to find the route, nested routers included."""
    path = path.lstrip("/")
    for route in routes:
        try:
            found = route.pattern.match(path)
        except Exception:  # URLRouter treats a failing converter as no match (Resolver404)
            continue
        if not found:
            continue
        rest, _, kwargs = found
        kwargs = {**kwargs, **route.defaults}
        if route.children is None:
            return route.text, kwargs
        inner = _match(route.children, rest)
        if inner is not None:
            return route.text + _ANCHOR.sub("", inner[0], count=1), {**kwargs, **inner[1]}
    return None


_ANCHOR = re.compile(r"^\^")  # an inner regex's "^" means nothing once joined to its prefix


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
