"""``asgi_router``: ASGI_APPLICATION is a ProtocolTypeRouter with a websocket route.

The auth middleware must wrap the URLRouter (not sit inside a route). When
ASGI_APPLICATION cannot be imported but the project's asgi module
(``<settings package>.asgi.application``) can, the check says so and checks that one.
"""

from __future__ import annotations

import os
from typing import Any

from ._asgi import is_auth, label, next_app, walk
from .registry import Check, Item, Options, register
from .status import FAIL, PASS, WARN

ASGI_ROUTER = Item("asgi_router")


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


def websocket_app() -> tuple[Any, list[str], Check | None, str | None]:
    """(the websocket app, evidence, a failing check, a note that ASGI_APPLICATION is wrong)."""
    from django.conf import settings

    path = getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        return (
            None,
            [],
            ASGI_ROUTER(
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
            ASGI_ROUTER(
                FAIL,
                f"ASGI_APPLICATION = {path!r} cannot be imported: {type(exc).__name__}: {exc}",
                [f"{type(exc).__name__}: {exc}"],
                "Point ASGI_APPLICATION at your asgi module's application "
                "('config.asgi.application') and fix the import error it raises.",
            ),
            None,
        )
    evidence = [wrong, f"checked {path} → {label(app)}"] if wrong else []
    evidence = evidence or [f"ASGI_APPLICATION = {path} → {label(app)}"]
    router = app
    while router is not None and type(router).__name__ != "ProtocolTypeRouter":
        router = next_app(router)
    if router is None:
        return (
            None,
            evidence,
            ASGI_ROUTER(
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
            ASGI_ROUTER(
                FAIL,
                "the ProtocolTypeRouter has no 'websocket' route",
                evidence,
                "Add 'websocket': AuthMiddlewareStack(URLRouter(websocket_urlpatterns)).",
            ),
            wrong,
        )
    return mapping["websocket"], evidence, None, wrong


@register(ASGI_ROUTER)
def check_asgi_router(opts: Options) -> Check:
    ws, evidence, failed, wrong = websocket_app()
    if failed:
        return failed
    chain = walk(ws)
    evidence.append("websocket chain: " + " → ".join(label(a) for a in chain))
    router = chain[-1] if chain and type(chain[-1]).__name__ == "URLRouter" else None
    auth_outside = (
        [a for a in chain[:-1] if is_auth(a)] if router else [a for a in chain if is_auth(a)]
    )
    if router is None:
        return ASGI_ROUTER(
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
        for inner in walk(getattr(route, "callback", None)):
            if is_auth(inner):
                inside.append(f"{label(inner)} inside route {getattr(route, 'pattern', route)}")
    if inside:
        evidence += inside
    if not routes:
        return ASGI_ROUTER(
            FAIL,
            "the URLRouter has no routes",
            evidence,
            "Add re_path(r'ws/chat/(?P<conversation_id>[^/]+)/$', ChatConsumer.as_asgi()).",
        )
    if not auth_outside:
        where = "inside the URLRouter's routes" if inside else "nowhere on the websocket route"
        return ASGI_ROUTER(
            FAIL,
            f"the auth middleware is {where}, not around the URLRouter",
            evidence,
            "Wrap the router: AuthMiddlewareStack(URLRouter(...)) (or your token middleware), "
            "so scope['user'] is set before routing and for every route.",
        )
    shape = f"ProtocolTypeRouter → websocket → {label(auth_outside[0])} → URLRouter ({len(routes)} routes)"
    if wrong:
        return ASGI_ROUTER(
            WARN,
            wrong,
            [*evidence[1:], f"the application itself is fine: {shape}"],
            "Fix ASGI_APPLICATION: `manage.py runserver` (Daphne) and "
            "channels.routing.get_default_application() load the app from it.",
        )
    return ASGI_ROUTER(PASS, shape, evidence)
