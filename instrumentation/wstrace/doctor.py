"""The classic checklist of a Channels + Celery + Redis chat backend, run inside the app.

    python manage.py wstrace doctor            # a table
    python manage.py wstrace doctor --json     # what `wsanalyze doctor` reads

Each check answers pass / fail / warn / skip with the evidence it saw and, when it
fails, the fix. The checks use the app's own settings, channel layer and Celery app,
so they see exactly what the web process sees:

``redis_reachable``   every Redis host of CHANNEL_LAYERS answers PING
``layer_roundtrip``   send + receive on a fresh channel of the layer
``group_roundtrip``   group_add, group_send, receive, group_discard
``asgi_router``       ASGI_APPLICATION is a ProtocolTypeRouter with a websocket route; the
                      auth middleware wraps the URLRouter (not inside a route). When
                      ASGI_APPLICATION cannot be imported but the project's asgi module
                      (``<settings package>.asgi.application``) can, it says so and checks that
``allowed_origins``   an origin validator guards the websocket route, with origins set; none
                      is needed when the route authenticates by token (JWT, query string,
                      header, subprotocol), a warning when it authenticates by session cookie
``layer_not_in_memory`` not InMemoryChannelLayer when another process (a Celery worker)
                      publishes to the layer
``celery_worker``     a worker answers ping and consumes every queue tasks are routed to,
                      with the tasks registered
``wstrace_active``    wstrace is installed, enabled, and a span it records reaches its store
                      (and is removed from it again)

The doctor's own probes (layer round trips, Celery pings) run with wstrace and every
OpenTelemetry instrumentation suppressed, so the user's store gets no spans from them.

``facts`` carries what other processes are compared against (the layer identity, the
same fingerprint wstrace writes as ``ws.layer``).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"
CHECK_NAMES = (
    "redis_reachable",
    "layer_roundtrip",
    "group_roundtrip",
    "asgi_router",
    "allowed_origins",
    "layer_not_in_memory",
    "celery_worker",
    "wstrace_active",
)


@dataclass
class Check:
    """One answer of the checklist."""

    name: str
    status: str
    summary: str
    evidence: list[str] = field(default_factory=list)
    fix: str | None = None


@dataclass
class Options:
    timeout: float = 5.0
    celery_app: str | None = None
    processes: int | None = None  # how many processes share the layer, when the user knows
    only: tuple[str, ...] = ()


# --- helpers -------------------------------------------------------------------------
def redact_url(url: str) -> str:
    """A URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def _layer_settings() -> dict[str, Any] | None:
    from django.conf import settings

    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    return layers.get("default")


def _backend_name(config: dict[str, Any] | None) -> str:
    return str((config or {}).get("BACKEND", ""))


def _redis_clients(config: dict[str, Any]) -> list[tuple[str, Callable[[float], Any] | None]]:
    """(label, factory(timeout) → redis.Redis) for every host of a channels_redis layer.

    Hosts are what channels_redis accepts: URL strings, (host, port) pairs, and dicts
    (``address`` URL or pair plus redis-py options such as ``socket_timeout``, or
    ``host``/``port``/``db``/``password``). Options a host sets win over the doctor's timeout.
    """
    import redis

    def options(t: float, given: dict[str, Any]) -> dict[str, Any]:
        return {"socket_timeout": t, "socket_connect_timeout": t, **given}

    hosts = (config.get("CONFIG") or {}).get("hosts") or [("localhost", 6379)]
    out: list[tuple[str, Callable[[float], Any] | None]] = []
    for host in hosts:
        if isinstance(host, str):
            out.append(
                (redact_url(host), lambda t, u=host: redis.Redis.from_url(u, **options(t, {})))
            )
            continue
        if isinstance(host, dict) and "master_name" in host:
            out.append((f"sentinel:{host['master_name']}", None))
            continue
        if isinstance(host, dict):
            extra = {k: v for k, v in host.items() if k != "address"}
            address = host.get("address")
            if isinstance(address, str):
                out.append(
                    (
                        redact_url(address),
                        lambda t, u=address, k=extra: redis.Redis.from_url(u, **options(t, k)),
                    )
                )
                continue
            if address is not None:
                extra = {"host": address[0], "port": address[1], **extra}
        else:
            extra = {"host": host[0], "port": host[1]}
        label = f"{extra.get('host', 'localhost')}:{extra.get('port', 6379)}/{extra.get('db', 0)}"
        out.append((label, lambda t, k=extra: redis.Redis(**options(t, k))))
    return out


# --- Redis and the channel layer -------------------------------------------------------
def check_redis_reachable(opts: Options) -> Check:
    config = _layer_settings()
    if not config:
        return Check(
            "redis_reachable",
            FAIL,
            "CHANNEL_LAYERS has no 'default' layer",
            ["settings.CHANNEL_LAYERS is empty or missing"],
            "Configure CHANNEL_LAYERS['default'] with channels_redis.core.RedisChannelLayer.",
        )
    if "redis" not in _backend_name(config).lower():
        return Check(
            "redis_reachable",
            SKIP,
            f"the layer is {_backend_name(config)}, not a Redis layer",
            [f"BACKEND = {_backend_name(config)}"],
        )
    evidence, failed = [], []
    for label, factory in _redis_clients(config):
        if factory is None:
            evidence.append(f"{label}: not checked (sentinel)")
            continue
        started = time.perf_counter()
        try:
            client = factory(opts.timeout)
            client.ping()
            evidence.append(
                f"PING {label} → PONG in {(time.perf_counter() - started) * 1e3:.1f} ms"
            )
            client.close()
        except Exception as exc:
            failed.append(label)
            evidence.append(f"PING {label} → {type(exc).__name__}: {exc}")
    if failed:
        return Check(
            "redis_reachable",
            FAIL,
            f"Redis of the channel layer unreachable: {', '.join(failed)}",
            evidence,
            "Start Redis or fix CHANNEL_LAYERS hosts. In Docker use the service name "
            "(redis://redis:6379), not localhost; check the port and password.",
        )
    return Check("redis_reachable", PASS, "every layer host answers PING", evidence)


async def _layer_roundtrips(timeout: float) -> tuple[Check, Check]:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        msg = "get_channel_layer() returned None: CHANNEL_LAYERS is not configured"
        fix = "Configure CHANNEL_LAYERS['default'] in the settings every process loads."
        return (
            Check("layer_roundtrip", FAIL, msg, [msg], fix),
            Check("group_roundtrip", FAIL, msg, [msg], fix),
        )
    backend = f"{type(layer).__module__}.{type(layer).__qualname__}"
    nonce = uuid.uuid4().hex
    # send / receive on a fresh channel
    try:
        channel = await asyncio.wait_for(layer.new_channel(), timeout)
        await asyncio.wait_for(layer.send(channel, {"type": "wstrace.doctor", "n": nonce}), timeout)
        got = await asyncio.wait_for(layer.receive(channel), timeout)
        ok = got.get("n") == nonce
        direct = Check(
            "layer_roundtrip",
            PASS if ok else FAIL,
            "send → receive on a fresh channel works" if ok else "received a different message",
            [f"{backend}: send({channel}) → receive → {got.get('type')} n={got.get('n')}"],
            None if ok else "Another consumer reads this channel: check the layer prefix.",
        )
    except Exception as exc:
        what = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        direct = Check(
            "layer_roundtrip",
            FAIL,
            f"send/receive on the layer failed ({what})",
            [f"{backend}: {what}"],
            "Make the layer's Redis reachable from this process (see redis_reachable); "
            "check hosts, password and TLS settings.",
        )
    # group_add / group_send / receive / group_discard
    group = f"wstrace-doctor-{nonce[:12]}"
    try:
        channel = await asyncio.wait_for(layer.new_channel(), timeout)
        await asyncio.wait_for(layer.group_add(group, channel), timeout)
        await asyncio.wait_for(
            layer.group_send(group, {"type": "wstrace.doctor", "n": nonce}), timeout
        )
        got = await asyncio.wait_for(layer.receive(channel), timeout)
        await asyncio.wait_for(layer.group_discard(group, channel), timeout)
        ok = got.get("n") == nonce
        grouped = Check(
            "group_roundtrip",
            PASS if ok else FAIL,
            "group_add → group_send → receive works" if ok else "received a different message",
            [f"{backend}: group {group} with {channel} → received n={got.get('n')}"],
        )
    except Exception as exc:
        what = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"
        grouped = Check(
            "group_roundtrip",
            FAIL,
            f"group round trip failed ({what})",
            [f"{backend}: group {group}: {what}"],
            "A group_send that never arrives means a member cannot receive: check the layer "
            "(hosts, prefix) and Redis eviction (noeviction) settings.",
        )
    return direct, grouped


def check_layer_roundtrips(opts: Options) -> list[Check]:
    return list(asyncio.run(_layer_roundtrips(opts.timeout)))


# --- the ASGI application ----------------------------------------------------------------
_NEXT = ("inner", "application", "app", "__wrapped__")


def _next(app: Any) -> Any:
    for attr in _NEXT:
        try:
            candidate = getattr(app, attr, None)
        except Exception:
            candidate = None
        if candidate is not None and candidate is not app and not isinstance(candidate, str | dict):
            return candidate
    return None


def _label(app: Any) -> str:
    kind = app if isinstance(app, type) else type(app)
    if kind.__name__ in ("function", "method"):
        return getattr(app, "__qualname__", repr(app))
    return f"{kind.__module__}.{kind.__qualname__}"


def _is_auth(app: Any) -> bool:
    try:
        from channels.auth import AuthMiddleware

        if isinstance(app, AuthMiddleware):
            return True
    except ImportError:
        pass
    name = type(app).__name__.lower()
    return any(word in name for word in ("auth", "token", "jwt"))


def _is_origin(app: Any) -> bool:
    try:
        from channels.security.websocket import OriginValidator

        if isinstance(app, OriginValidator):
            return True
    except ImportError:
        pass
    return "origin" in type(app).__name__.lower()


def _walk(app: Any, limit: int = 40) -> list[Any]:
    chain = []
    while app is not None and len(chain) < limit:
        chain.append(app)
        if type(app).__name__ == "URLRouter":
            break
        app = _next(app)
    return chain


def _asgi_candidates(path: str) -> list[str]:
    """Where a project's ASGI application usually is, when ASGI_APPLICATION points elsewhere.

    The ``application`` of ASGI_APPLICATION's own module, then ``asgi`` and ``routing`` modules
    of the settings package and its parents (``config.settings.prod`` → ``config.settings.asgi``,
    ``config.asgi``), only when such a module exists.
    """
    from importlib.util import find_spec

    module = path.rpartition(".")[0]
    names = [f"{module}.application"] if module else []
    settings_module = os.environ.get("DJANGO_SETTINGS_MODULE", "")
    package = settings_module.rpartition(".")[0]
    while package:
        names += [f"{package}.asgi.application", f"{package}.routing.application"]
        package = package.rpartition(".")[0]
    if settings_module and "." not in settings_module:  # a top-level settings.py: its neighbours
        names += ["asgi.application", "routing.application"]
    out = []
    for name in dict.fromkeys(names):
        if name == path:
            continue
        try:
            found = find_spec(name.rpartition(".")[0]) is not None
        except (ImportError, ValueError):
            found = False
        if found:
            out.append(name)
    return out


def _import_asgi(path: str) -> tuple[Any, str, str | None]:
    """(application, the path that worked, why ASGI_APPLICATION itself did not) or raise."""
    from django.utils.module_loading import import_string

    try:
        return import_string(path), path, None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        for candidate in _asgi_candidates(path):
            try:
                app = import_string(candidate)
            except Exception:
                continue
            if app is not None:
                return (
                    app,
                    candidate,
                    f"ASGI_APPLICATION = {path!r} cannot be imported: {error}; {candidate} "
                    f"works: set ASGI_APPLICATION = {candidate!r}",
                )
        raise


def _websocket_app() -> tuple[Any, list[str], Check | None, str | None]:
    """(the websocket app, evidence, a failing check, a note that ASGI_APPLICATION is wrong)."""
    from django.conf import settings

    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        return (
            None,
            [],
            Check(
                "asgi_router",
                FAIL,
                "ASGI_APPLICATION is not set",
                ["settings.ASGI_APPLICATION missing"],
                "Set ASGI_APPLICATION = 'config.asgi.application' (your asgi module).",
            ),
            None,
        )
    try:
        app, path, wrong = _import_asgi(path)
    except Exception as exc:
        return (
            None,
            [],
            Check(
                "asgi_router",
                FAIL,
                f"ASGI_APPLICATION = {path!r} cannot be imported: {type(exc).__name__}: {exc}",
                [f"{type(exc).__name__}: {exc}"],
                "Point ASGI_APPLICATION at your asgi module's application "
                "('config.asgi.application') and fix the import error it raises.",
            ),
            None,
        )
    evidence = [wrong, f"checked {path} → {_label(app)}"] if wrong else []
    evidence = evidence or [f"ASGI_APPLICATION = {path} → {_label(app)}"]
    router = app
    while router is not None and type(router).__name__ != "ProtocolTypeRouter":
        router = _next(router)
    if router is None:
        return (
            None,
            evidence,
            Check(
                "asgi_router",
                FAIL,
                "the ASGI application is not a ProtocolTypeRouter",
                evidence,
                "Wrap the app: ProtocolTypeRouter({'http': django_asgi_app, 'websocket': "
                "AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))}).",
            ),
            wrong,
        )
    mapping = getattr(router, "application_mapping", {}) or {}
    evidence.append(f"ProtocolTypeRouter protocols: {', '.join(sorted(mapping)) or '(none)'}")
    if "websocket" not in mapping:
        return (
            None,
            evidence,
            Check(
                "asgi_router",
                FAIL,
                "the ProtocolTypeRouter has no 'websocket' route",
                evidence,
                "Add 'websocket': AuthMiddlewareStack(URLRouter(websocket_urlpatterns)).",
            ),
            wrong,
        )
    return mapping["websocket"], evidence, None, wrong


def check_asgi_router(opts: Options) -> Check:
    ws, evidence, failed, wrong = _websocket_app()
    if failed:
        return failed
    chain = _walk(ws)
    evidence.append("websocket chain: " + " → ".join(_label(a) for a in chain))
    router = chain[-1] if chain and type(chain[-1]).__name__ == "URLRouter" else None
    auth_outside = (
        [a for a in chain[:-1] if _is_auth(a)] if router else [a for a in chain if _is_auth(a)]
    )
    if router is None:
        return Check(
            "asgi_router",
            FAIL,
            "no URLRouter found under the websocket route",
            evidence,
            "Route websockets with URLRouter(websocket_urlpatterns) inside the auth middleware.",
        )
    routes = getattr(router, "routes", []) or []
    patterns = [
        str(getattr(getattr(r, "pattern", None), "_regex", None) or getattr(r, "pattern", r))
        for r in routes
    ]
    evidence.append(f"URLRouter routes: {', '.join(patterns) or '(none)'}")
    inside = []
    for route in routes:
        for inner in _walk(getattr(route, "callback", None)):
            if _is_auth(inner):
                inside.append(f"{_label(inner)} inside route {getattr(route, 'pattern', route)}")
    if inside:
        evidence += inside
    if not routes:
        return Check(
            "asgi_router",
            FAIL,
            "the URLRouter has no routes",
            evidence,
            "Add re_path(r'ws/chat/(?P<conversation_id>[^/]+)/$', ChatConsumer.as_asgi()).",
        )
    if not auth_outside:
        where = "inside the URLRouter's routes" if inside else "nowhere on the websocket route"
        return Check(
            "asgi_router",
            FAIL,
            f"the auth middleware is {where}, not around the URLRouter",
            evidence,
            "Wrap the router: AuthMiddlewareStack(URLRouter(...)) (or your token middleware), "
            "so scope['user'] is set before routing and for every route.",
        )
    shape = f"ProtocolTypeRouter → websocket → {_label(auth_outside[0])} → URLRouter ({len(routes)} routes)"
    if wrong:
        return Check(
            "asgi_router",
            WARN,
            wrong,
            [*evidence[1:], f"the application itself is fine: {shape}"],
            "Fix ASGI_APPLICATION: `manage.py runserver` (Daphne) and "
            "channels.routing.get_default_application() load the app from it.",
        )
    return Check("asgi_router", PASS, shape, evidence)


_COOKIE_CODE = re.compile(
    r"""["'](?:cookie|sessionid)["']|\.COOKIES\b|SESSION_COOKIE_NAME|SimpleCookie|cookies\[""",
    re.IGNORECASE,
)
_TOKEN_PLACES = (
    ("sec-websocket-protocol", "the Sec-WebSocket-Protocol header"),
    ("subprotocol", "the Sec-WebSocket-Protocol header"),
    ("authorization", "an Authorization header"),
    ("query_string", "the query string"),
)


def _sources(app: Any) -> tuple[str, str]:
    """The source of ``app``'s class and of its module (each '' when unavailable)."""
    import inspect
    import sys

    found = ["", ""]
    for i, thing in enumerate((type(app), sys.modules.get(type(app).__module__))):
        with suppress(Exception):
            found[i] = inspect.getsource(thing)
    return found[0], found[1]


def _is_session_auth(app: Any) -> bool:
    """Channels' cookie/session stack (what AuthMiddlewareStack builds), or a subclass of it."""
    try:
        from channels.auth import AuthMiddleware
        from channels.sessions import CookieMiddleware, SessionMiddleware
    except ImportError:
        return False
    return isinstance(app, CookieMiddleware | SessionMiddleware) or type(app) is AuthMiddleware


def _websocket_auth(ws: Any) -> tuple[str, list[str]]:
    """How the websocket route authenticates: 'cookie', 'token' or 'none', with the evidence.

    Channels' session stack means cookies. Another auth middleware is a token one unless
    its module reads cookies; where it takes the token from is read from that module.
    """
    found = _walk(ws)
    router = found[-1] if found and type(found[-1]).__name__ == "URLRouter" else None
    for route in getattr(router, "routes", None) or []:
        found += _walk(getattr(route, "callback", None))
    session = [_label(app) for app in found if _is_session_auth(app)]
    cookie = [f"{' → '.join(session)}: Django's session cookie"] if session else []
    token = []
    for app in found:
        if _is_session_auth(app) or not _is_auth(app) or _is_origin(app):
            continue
        own, module = _sources(app)
        if _COOKIE_CODE.search(module or own):
            cookie.append(f"{_label(app)}: reads a cookie")
            continue
        places: dict[str, None] = {}
        for source in (own.lower(), module.lower()):  # the class first, then its helpers
            places = places or dict.fromkeys(t for w, t in _TOKEN_PLACES if w in source)
        kind = "JWT" if "jwt" in (own + module).lower() else "token"
        token.append(f"{_label(app)}: {kind} from {' / '.join(places) or 'the handshake'}")
    if cookie:
        return "cookie", list(dict.fromkeys(cookie + token))
    if token:
        return "token", list(dict.fromkeys(token))
    return "none", []


def check_allowed_origins(opts: Options) -> Check:
    from django.conf import settings

    ws, evidence, failed, _ = _websocket_app()
    if failed:
        return Check("allowed_origins", SKIP, "no websocket route to inspect", failed.evidence)
    chain = _walk(ws)
    validators = [a for a in chain if _is_origin(a)]
    if not validators:
        evidence.append("websocket chain: " + " → ".join(_label(a) for a in chain))
        auth, how = _websocket_auth(ws)
        evidence += how
        if auth == "cookie":
            return Check(
                "allowed_origins",
                WARN,
                "no origin validator, and websocket auth rides on cookies: any website a "
                "logged-in user visits can open a socket as that user, because the browser "
                "sends your cookies with it (cross-site WebSocket hijacking, CSWSH)",
                evidence,
                "Wrap the websocket app: AllowedHostsOriginValidator(AuthMiddlewareStack("
                "URLRouter(...))) (origins from ALLOWED_HOSTS), or OriginValidator(app, "
                "['https://your.site']).",
            )
        what = "by token" if auth == "token" else "not by cookie"
        evidence.append(
            "add AllowedHostsOriginValidator if this route ever authenticates by session cookie"
        )
        return Check(
            "allowed_origins",
            PASS,
            f"no origin validator, none needed: websocket auth is {what}, which a cross-site "
            "page cannot borrow (cross-site WebSocket hijacking needs cookie auth)",
            evidence,
        )
    validator = validators[0]
    origins = list(getattr(validator, "allowed_origins", []) or [])
    evidence.append(f"{_label(validator)} allowed_origins = {origins}")
    evidence.append(f"ALLOWED_HOSTS = {list(getattr(settings, 'ALLOWED_HOSTS', []))}")
    if not origins:
        return Check(
            "allowed_origins",
            FAIL,
            "the origin validator allows no origin: every browser handshake is refused (403)",
            evidence,
            "Set the allowed origins (ALLOWED_HOSTS for AllowedHostsOriginValidator).",
        )
    if "*" in origins:
        return Check(
            "allowed_origins",
            WARN,
            "the origin validator allows any origin ('*')",
            evidence,
            "List your site's origins instead of '*'.",
        )
    return Check(
        "allowed_origins", PASS, f"origins allowed: {', '.join(map(str, origins))}", evidence
    )


# --- more than one process --------------------------------------------------------------
def _celery_app(opts: Options) -> Any:
    """The project's Celery app: --celery-app, else <settings package>.celery, else current_app."""
    candidates = []
    if opts.celery_app:
        candidates.append(opts.celery_app)
    settings_module = os.environ.get("DJANGO_SETTINGS_MODULE", "")
    if "." in settings_module:
        candidates.append(settings_module.rsplit(".", 1)[0] + ".celery")
    from celery import Celery

    for spec in candidates:
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if attr:
            return getattr(module, attr)
        for name in ("app", "celery_app", "celery"):
            value = getattr(module, name, None)
            if isinstance(value, Celery):
                return value
        for value in vars(module).values():
            if isinstance(value, Celery):
                return value
    from celery import current_app

    return current_app._get_current_object()


def _celery_configured(opts: Options) -> str | None:
    from django.conf import settings

    for name in ("CELERY_BROKER_URL", "BROKER_URL"):
        if getattr(settings, name, None):
            return f"settings.{name} is set: a Celery worker publishes from another process"
    return None


def check_layer_not_in_memory(opts: Options) -> Check:
    config = _layer_settings()
    backend = _backend_name(config)
    evidence = [f"CHANNEL_LAYERS['default']['BACKEND'] = {backend or '(none)'}"]
    if "InMemory" not in backend:
        return Check(
            "layer_not_in_memory", PASS, f"the layer is {backend.rsplit('.', 1)[-1]}", evidence
        )
    others = _celery_configured(opts)
    if opts.processes and opts.processes > 1:
        others = f"{opts.processes} processes share the layer (--processes)"
    if others:
        evidence.append(others)
        return Check(
            "layer_not_in_memory",
            FAIL,
            "InMemoryChannelLayer with more than one process: messages published by the "
            "worker never reach the web process",
            evidence,
            "Use channels_redis.core.RedisChannelLayer in every process (same settings module).",
        )
    return Check(
        "layer_not_in_memory",
        WARN,
        "InMemoryChannelLayer: fine for one process and tests only",
        evidence,
        "Use channels_redis.core.RedisChannelLayer before running a second process.",
    )


def layer_identity() -> dict[str, str] | None:
    """This process's layer identity, as wstrace writes it in ws.layer / ws.layer_desc."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return None
    try:
        from wstrace.channels.layers import identity

        return dict(identity(layer))
    except Exception:  # wstrace not importable: a plain description
        return {"ws.layer_backend": f"{type(layer).__module__}.{type(layer).__qualname__}"}


def _route_queue(app: Any, task_name: str) -> str:
    try:
        route = app.amqp.router.route({}, task_name)
        queue = route.get("queue")
        return getattr(queue, "name", None) or str(queue)
    except Exception:
        return app.conf.task_default_queue or "celery"


def check_celery_worker(opts: Options) -> Check:
    if not _celery_configured(opts) and not opts.celery_app:
        return Check(
            "celery_worker", SKIP, "no Celery broker configured", ["CELERY_BROKER_URL unset"]
        )
    try:
        app = _celery_app(opts)
    except Exception as exc:
        return Check(
            "celery_worker",
            FAIL,
            "the Celery app cannot be loaded",
            [f"{type(exc).__name__}: {exc}"],
            "Pass --celery-app module:attr.",
        )
    broker = redact_url(str(app.conf.broker_url or ""))
    evidence = [f"Celery app {app.main!r}, broker {broker}"]
    try:
        app.loader.import_default_modules()
    except Exception as exc:
        evidence.append(f"importing task modules: {type(exc).__name__}: {exc}")
    tasks = sorted(n for n in app.tasks if not n.startswith("celery."))
    routed: dict[str, list[str]] = {}
    for name in tasks:
        routed.setdefault(_route_queue(app, name), []).append(name)
    try:
        replies = app.control.ping(timeout=min(opts.timeout, 2.0))  # waits the whole timeout
    except Exception as exc:
        evidence.append(f"ping: {type(exc).__name__}: {exc}")
        return Check(
            "celery_worker",
            FAIL,
            "the broker cannot be reached",
            evidence,
            "Start the broker or fix CELERY_BROKER_URL (in Docker: the service name).",
        )
    workers = sorted(name for reply in replies for name in reply)
    if not workers:
        evidence.append(f"ping: no reply within {min(opts.timeout, 2.0):g}s")
        evidence += [f"{q}: {', '.join(ts)}" for q, ts in sorted(routed.items())]
        return Check(
            "celery_worker",
            FAIL,
            "no Celery worker answered: enqueued tasks will never run",
            evidence,
            f"Start a worker: celery -A {app.main or 'proj'} worker -Q {','.join(sorted(routed)) or 'celery'}",
        )
    inspect = app.control.inspect(timeout=opts.timeout, destination=workers, limit=len(workers))
    active = inspect.active_queues() or {}
    registered = inspect.registered() or {}
    consumed: dict[str, list[str]] = {}
    for worker, queues in active.items():
        for queue in queues or []:
            consumed.setdefault(queue.get("name"), []).append(worker)
    evidence.append(f"workers: {', '.join(workers)}")
    evidence.append(
        "queues consumed: "
        + ", ".join(f"{q} ({', '.join(ws)})" for q, ws in sorted(consumed.items()))
        or "none"
    )
    problems = []
    for queue, names in sorted(routed.items()):
        if queue not in consumed:
            problems.append(f"queue {queue!r} (tasks {', '.join(names)}) is consumed by no worker")
            continue
        known = {t for w in consumed[queue] for t in registered.get(w, [])}
        missing = [n for n in names if registered and n not in known]
        if missing:
            problems.append(f"{', '.join(missing)} not registered in the workers of {queue!r}")
        evidence.append(f"{queue}: {', '.join(names)} → {', '.join(consumed[queue])}")
    if problems:
        evidence += problems
        return Check(
            "celery_worker",
            FAIL,
            "; ".join(problems),
            evidence,
            "Align task_routes with the worker's -Q list (celery -A proj worker -Q "
            f"{','.join(sorted(routed))}) and make the worker import the task modules.",
        )
    return Check(
        "celery_worker",
        PASS,
        f"{len(workers)} worker(s) answer and consume every routed queue",
        evidence,
    )


# --- wstrace itself ---------------------------------------------------------------------
def check_wstrace_active(opts: Options) -> Check:
    from django.conf import settings

    apps = [a for a in settings.INSTALLED_APPS if a == "wstrace" or a.startswith("wstrace.")]
    evidence = [f"INSTALLED_APPS has {apps[0]}" if apps else "wstrace not in INSTALLED_APPS"]
    if not apps:
        return Check(
            "wstrace_active",
            FAIL,
            "wstrace is not installed in this app",
            evidence,
            "Add 'wstrace' to INSTALLED_APPS (in the settings web and worker load).",
        )
    from wstrace import provider, runtime

    config = runtime.config()
    env = os.environ.get("WSTRACE_ENABLED")
    evidence.append(
        f"enabled={config.enabled} (WSTRACE_ENABLED={env!r}), exporters={list(config.exporters)}"
    )
    if not runtime.active():
        return Check(
            "wstrace_active",
            FAIL,
            "wstrace is installed but disabled",
            evidence,
            "Unset WSTRACE_ENABLED=0 (or set it to 1) and check WSTRACE settings.",
        )
    if "file" not in config.exporters:
        return Check(
            "wstrace_active", PASS, "wstrace is active (no file exporter to check)", evidence
        )
    directory = Path(config.file_dir)
    evidence.append(f"FILE_DIR = {directory.resolve()}")
    before = {p: p.stat().st_size for p in directory.glob("*.jsonl")} if directory.is_dir() else {}
    with runtime.tracer().start_as_current_span("wstrace.doctor") as span:
        span.set_attribute("wstrace.doctor", True)
        trace_id = f"{span.get_span_context().trace_id:032x}"
    provider.flush(int(opts.timeout * 1000))
    written = [
        p
        for p in (sorted(directory.glob("*.jsonl")) if directory.is_dir() else [])
        if trace_id in _appended(p, before.get(p, 0))
    ]
    if not written:
        evidence.append(f"{len(before)} file(s) there, none written by the test span")
        return Check(
            "wstrace_active",
            FAIL,
            "wstrace is active but nothing reached its store",
            evidence,
            f"Make {directory} writable by the app (a volume in Docker) and check the logs "
            "for 'wstrace:' warnings.",
        )
    for path in written:
        _remove_probe(path, before.get(path), trace_id)
    evidence.append(f"a test span reached {written[0].name}, and was removed from it again")
    return Check("wstrace_active", PASS, "wstrace is active and writing", evidence)


def _appended(path: Path, offset: int) -> str:
    """What was appended to ``path`` past ``offset`` ('' when it cannot be read)."""
    with suppress(OSError), path.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode("utf-8", "replace")
    return ""


def _without_trace(line: str, trace_id: str) -> str | None:
    """One OTLP/JSON line without the spans of ``trace_id`` (None when none are left)."""
    if trace_id not in line:
        return line
    try:
        request = json.loads(line)
    except ValueError:
        return line
    kept = []
    for resource in request.get("resourceSpans") or []:
        scopes = []
        for scope in resource.get("scopeSpans") or []:
            spans = [x for x in scope.get("spans") or [] if x.get("traceId") != trace_id]
            if spans:
                scopes.append({**scope, "spans": spans})
        if scopes:
            kept.append({**resource, "scopeSpans": scopes})
    return json.dumps({**request, "resourceSpans": kept}, separators=(",", ":")) if kept else None


def _file_exporters() -> list[Any]:
    """wstrace's file exporters on the global provider (best effort: SDK internals)."""
    from opentelemetry import trace

    from wstrace.store import FileSpanExporter

    processors = getattr(
        getattr(trace.get_tracer_provider(), "_active_span_processor", None),
        "_span_processors",
        (),
    )
    found = []
    for processor in processors:
        exporter = getattr(processor, "span_exporter", None) or getattr(
            getattr(processor, "_batch_processor", None), "_exporter", None
        )
        if isinstance(exporter, FileSpanExporter):
            found.append(exporter)
    return found


def _remove_probe(path: Path, size_before: int | None, trace_id: str) -> None:
    """Take the doctor's test span out of ``path``: what it appended, and nothing else.

    The file is this process's own (one file per process), so no other writer appends
    meanwhile. A file the probe created and that is left empty is deleted, after its
    exporter let go of it (it reopens the path if it exports again).
    """
    offset = size_before or 0
    lines = _appended(path, offset).splitlines()
    kept = [line for line in (_without_trace(x, trace_id) for x in lines if x) if line]
    with path.open("r+b") as handle:
        handle.truncate(offset)
        handle.seek(offset)
        handle.write("".join(f"{line}\n" for line in kept).encode())
    if size_before is None and not kept:
        owners = [e for e in _file_exporters() if e.path == path]
        for exporter in owners:
            exporter.shutdown()  # closes the file only; the next export opens it anew
        if owners and path.stat().st_size == 0:
            path.unlink()


@contextmanager
def _quiet() -> Iterator[None]:
    """Probes that leave no spans: wstrace's wrappers and OpenTelemetry instrumentations off."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    from wstrace import runtime

    was_active = runtime.active()
    if was_active:
        runtime.deactivate()
    try:
        with suppress_instrumentation():
            yield
    finally:
        if was_active:
            runtime.activate(runtime.config())


# --- running ----------------------------------------------------------------------------
def run_checks(opts: Options | None = None) -> dict[str, Any]:
    """Every check (or `opts.only`), with the facts other processes are compared with."""
    opts = opts or Options()
    wanted = set(opts.only or CHECK_NAMES)
    steps: list[tuple[tuple[str, ...], Callable[[Options], Check | list[Check]]]] = [
        (("redis_reachable",), check_redis_reachable),
        (("layer_roundtrip", "group_roundtrip"), check_layer_roundtrips),
        (("asgi_router",), check_asgi_router),
        (("allowed_origins",), check_allowed_origins),
        (("layer_not_in_memory",), check_layer_not_in_memory),
        (("celery_worker",), check_celery_worker),
        (("wstrace_active",), check_wstrace_active),
    ]
    checks: list[Check] = []
    for names, step in steps:
        if not wanted.intersection(names):
            continue
        try:
            if step is check_wstrace_active:  # it must see wstrace as the app does
                result = step(opts)
            else:
                with _quiet():  # the doctor's probes are no evidence of the app
                    result = step(opts)
        except Exception as exc:  # a check must never take the others down
            result = [
                Check(n, FAIL, f"the check itself failed: {type(exc).__name__}: {exc}", [repr(exc)])
                for n in names
            ]
        results = result if isinstance(result, list) else [result]
        checks += [c for c in results if c.name in wanted]
    facts: dict[str, Any] = {
        "settings": os.environ.get("DJANGO_SETTINGS_MODULE"),
        "pid": os.getpid(),
    }
    try:
        facts["layer"] = layer_identity()
    except Exception as exc:
        facts["layer"] = None
        facts["layer_error"] = f"{type(exc).__name__}: {exc}"
    return {"checks": [asdict(c) for c in checks], "facts": facts}


def render_text(report: dict[str, Any]) -> Iterable[str]:
    marks = {PASS: "PASS", FAIL: "FAIL", WARN: "WARN", SKIP: "skip"}
    for check in report["checks"]:
        yield f"[{marks.get(check['status'], check['status'])}] {check['name']}: {check['summary']}"
        for line in check["evidence"]:
            yield f"       {line}"
        if check["status"] in (FAIL, WARN) and check.get("fix"):
            yield f"       fix: {check['fix']}"


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, default=str)
