"""HTTP requests that start answers: Django's OpenTelemetry instrumentation, joined to the chain.

Many apps accept a message over REST (or re-run an answer from an edit
endpoint) and push the answer with ``group_send``, in the view or from a
Celery task. wstrace turns on ``opentelemetry-instrumentation-django`` (WSGI,
and ASGI under Daphne when ``opentelemetry-instrumentation-asgi`` is installed)
with hooks that make the request span the ``receive`` hop of a message:

* ``ws.event=http_request``, ``ws.route`` (the matched URL pattern, no values);
* ``ws.conversation_id`` from the URL kwarg named by ``CONVERSATION_KWARG``;
* for a request that starts a message (any method but GET/HEAD/OPTIONS/TRACE,
  or a URL naming a ``message_id``): ``ws.hop=receive`` and ``ws.message_id`` —
  the URL's ``message_id``, else an id field of a small JSON body (the
  ``MESSAGE_ID_FIELD``, ``id``, ``message_id``, ``client_id``), else a new one;
* the ids are baggage for the rest of the request, so the ``ws.enqueue``,
  ``ws.task`` and ``ws.publish`` the view causes carry them;
* with ``RECORD_BODIES`` off, an exception a view raises while handling a request
  body (any method but GET/HEAD/OPTIONS/TRACE, or a body sent anyway) is recorded
  as its type and where it was raised, as for a WebSocket frame: a validation
  error quoting the posted text must not carry it into the span.

Nothing is done when the app instrumented Django itself (its spans then stay
as it configured them) or when ``WSTRACE["HTTP_REQUESTS"]`` is False. Query
strings, Authorization headers and cookies are removed by wstrace's redaction
before any exporter sees the spans, as for every span.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import uuid
from contextlib import suppress
from typing import Any

from opentelemetry import baggage, context, trace
from opentelemetry.trace import Status, StatusCode

from wstrace import carrier, current, runtime
from wstrace import conventions as c
from wstrace.channels.bare_exceptions import exception_type, record_bare_exception

logger = logging.getLogger(__name__)

_MESSAGE_KWARG = "message_id"
_ID_FIELDS = ("id", "message_id", "client_id")
_ID_MAX = 128  # longer "ids" are content, not ids
_BODY_LIMIT = 64 * 1024  # bodies read for an id: small JSON only
# Requests that only read: not a message unless their URL names one.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_TOKEN = "_wstrace_context_token"  # request attribute holding our context token
_MIDDLEWARE = "opentelemetry.instrumentation.django.middleware.otel_middleware._DjangoMiddleware"
_state: dict[str, bool] = {"ours": False}


def instrument(config: Any) -> bool:
    """Instrument Django's request handling with wstrace's hooks; True when done here."""
    if _state["ours"] or not config.http_requests:
        return False
    try:
        from opentelemetry.instrumentation.django import DjangoInstrumentor
    except ImportError:
        logger.debug("wstrace: opentelemetry-instrumentation-django missing; HTTP not traced")
        return False
    instrumentor = DjangoInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry or _middleware_listed():
        # The app's own set-up wins: its hooks, its exclusions, its provider.
        logger.debug("wstrace: Django is instrumented by the app; its HTTP spans are left alone")
        return False
    instrumentor.instrument(
        tracer_provider=trace.get_tracer_provider(),
        request_hook=request_hook,
        response_hook=response_hook,
        skip_dep_check=True,
    )
    _state["ours"] = True
    _warn_without_asgi()
    return True


def uninstrument() -> None:
    """Undo ``instrument`` (only what wstrace itself turned on)."""
    if not _state["ours"]:
        return
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    DjangoInstrumentor().uninstrument()
    _state["ours"] = False


def _middleware_listed() -> bool:
    from django.conf import settings

    return _MIDDLEWARE in (getattr(settings, "MIDDLEWARE", None) or ())


def _warn_without_asgi() -> None:
    # The Django middleware silently skips ASGI requests without the ASGI package.
    from django.conf import settings

    served_by_asgi = bool(getattr(settings, "ASGI_APPLICATION", None))
    if served_by_asgi and importlib.util.find_spec("opentelemetry.instrumentation.asgi") is None:
        runtime.report_once(
            "HTTP requests served over ASGI are not traced: "
            "pip install opentelemetry-instrumentation-asgi"
        )


# --- hooks (called by the Django middleware) -------------------------------------------------
def request_hook(span: trace.Span, request: Any) -> None:
    """Enrich the request span; make its ids the baggage of the request."""
    if not runtime.active() or not runtime.config().http_requests:
        return
    token = runtime.shield("http request", _enter, span, request)
    if token is not None:
        setattr(request, _TOKEN, token)
    if not runtime.config().record_bodies and _carries_body(request):
        runtime.shield("http request", _record_bare_exceptions, span, request)


def response_hook(span: trace.Span, request: Any, response: Any) -> None:
    """Restore the context from before ``request_hook`` (before the middleware restores its own)."""
    token = getattr(request, _TOKEN, None)
    if token is not None:
        delattr(request, _TOKEN)
        current.detach(token)


def _enter(span: trace.Span, request: Any) -> object:
    config = runtime.config()
    match = _resolve(request)
    kwargs = getattr(match, "kwargs", None) or {}
    attributes: dict[str, Any] = {c.EVENT: c.EV_HTTP_REQUEST}
    route = getattr(match, "route", None)
    if route:
        attributes[c.ROUTE] = str(route)
    ids: dict[str, str] = {}
    conversation = _as_id(kwargs.get(config.conversation_kwarg))
    if conversation:
        ids["conversation_id"] = conversation
        attributes[c.CONVERSATION_SOURCE] = "route"
    app_id = _as_id(kwargs.get(_MESSAGE_KWARG)) or _body_id(request, config.message_id_field)
    if app_id or str(getattr(request, "method", "")).upper() not in _SAFE_METHODS:
        ids["message_id"] = app_id or uuid.uuid4().hex
        attributes[c.HOP] = c.HOP_RECEIVE
        if app_id:
            attributes[c.APP_MESSAGE_ID] = app_id
    if span.is_recording():
        span.set_attributes({**attributes, **{f"ws.{k}": v for k, v in ids.items()}})
    # a client's baggage never names ids: TRUST_CLIENT_CONTEXT trusts trace context only
    ctx = _without_client_ids(current.get())
    return current.attach(carrier.with_ids(ctx, **ids))


def _carries_body(request: Any) -> bool:
    if str(getattr(request, "method", "")).upper() not in _SAFE_METHODS:
        return True
    meta = getattr(request, "META", None) or {}
    return bool(
        meta.get("CONTENT_LENGTH") not in (None, "", "0") or meta.get("HTTP_TRANSFER_ENCODING")
    )


def _record_bare_exceptions(span: trace.Span, request: Any) -> None:
    """Make the middleware end the span with a raised exception's type only.

    The Django middleware ends the request span through the activation it keeps in
    ``request.META`` and hands it the view's exception, which ``use_span`` records
    with its message and puts in the status. Our stand-in records it the way a
    client frame's is recorded and ends the span as a clean exit would.
    """
    from opentelemetry.instrumentation.django.middleware.otel_middleware import (
        _DjangoMiddleware,
    )

    key = getattr(_DjangoMiddleware, "_environ_activation_key", None)
    activation = request.META.get(key) if key else None
    if activation is None:  # a middleware of another make: say so rather than leak quietly
        runtime.report_once(
            "with RECORD_BODIES off, the messages of exceptions HTTP views raise cannot be "
            "left out with this opentelemetry-instrumentation-django version"
        )
        return
    if not isinstance(activation, _BareExit):
        request.META[key] = _BareExit(activation, span)


class _BareExit:
    """The middleware's span activation; what the view raised is recorded bare."""

    __slots__ = ("_inner", "_span")

    def __init__(self, inner: Any, span: trace.Span) -> None:
        self._inner = inner
        self._span = span

    def __enter__(self) -> Any:
        return self._inner.__enter__()

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> Any:
        if not isinstance(exc, Exception):  # use_span lets BaseException through unrecorded
            return self._inner.__exit__(kind, exc, tb)
        if self._span.is_recording():
            runtime.shield("http exception", _record_bare, self._span, exc)
        # Never hand the exception on: use_span would record its message after all.
        return self._inner.__exit__(None, None, None)


def _record_bare(span: trace.Span, exc: Exception) -> None:
    record_bare_exception(span, exc)
    span.set_status(Status(StatusCode.ERROR, exception_type(exc)))  # the type, no text


def _resolve(request: Any) -> Any:
    """The URL match of the request (the middleware runs before Django resolves it)."""
    from django.urls import Resolver404, resolve

    try:
        return resolve(request.path_info, getattr(request, "urlconf", None))
    except Resolver404:
        return None


def _body_id(request: Any, field: str) -> str | None:
    """The id field of a small JSON body, read only when that cannot disturb the view."""
    if getattr(request, "content_type", None) != "application/json":
        return None  # multipart uploads and streams are never touched
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if not 0 < length <= _body_limit():
        return None
    if getattr(request, "_read_started", False) and not hasattr(request, "_body"):
        return None  # someone streamed it already: .body would raise
    data: Any = None
    # Best effort: a body Django refuses or that is not JSON names no id. Django keeps
    # what .body read, so the view reads the same bytes again.
    with suppress(Exception):
        data = json.loads(request.body)
    if not isinstance(data, dict):
        return None
    for name in dict.fromkeys((field, *_ID_FIELDS)):
        found = _as_id(data.get(name))
        if found:
            return found
    return None


def _body_limit() -> int:
    from django.conf import settings

    # Never make .body raise RequestDataTooBig where the view would not have.
    allowed = getattr(settings, "DATA_UPLOAD_MAX_MEMORY_SIZE", None)
    return _BODY_LIMIT if allowed is None else min(_BODY_LIMIT, int(allowed))


def _as_id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text if 0 < len(text) <= _ID_MAX else None


def _without_client_ids(ctx: context.Context) -> context.Context:
    """Drop ws ids a client sent as baggage: client context is not trusted by default."""
    for key in list(carrier.baggage_of(ctx)):
        if isinstance(key, str) and key.startswith("ws."):
            ctx = baggage.remove_baggage(key, ctx)
    return ctx
