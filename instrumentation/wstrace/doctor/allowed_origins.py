"""``allowed_origins``: an origin validator guards the websocket route, with origins set.

None is needed when the route authenticates by token (JWT, query string, header,
subprotocol): a cross-site page cannot borrow a token. Without one, a route that
authenticates by session cookie is a warning (cross-site WebSocket hijacking).
"""

from __future__ import annotations

import re
from contextlib import suppress
from typing import Any

from ._asgi import is_auth, is_origin, label, walk
from .asgi_router import websocket_app
from .registry import Check, Item, Options, register
from .status import FAIL, PASS, SKIP, WARN

ALLOWED_ORIGINS = Item("allowed_origins")

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
    found = walk(ws)
    router = found[-1] if found and type(found[-1]).__name__ == "URLRouter" else None
    for route in getattr(router, "routes", None) or []:
        found += walk(getattr(route, "callback", None))
    session = [label(app) for app in found if _is_session_auth(app)]
    cookie = [f"{' → '.join(session)}: Django's session cookie"] if session else []
    token = []
    for app in found:
        if _is_session_auth(app) or not is_auth(app) or is_origin(app):
            continue
        own, module = _sources(app)
        if _COOKIE_CODE.search(module or own):
            cookie.append(f"{label(app)}: reads a cookie")
            continue
        places: dict[str, None] = {}
        for source in (own.lower(), module.lower()):  # the class first, then its helpers
            places = places or dict.fromkeys(t for w, t in _TOKEN_PLACES if w in source)
        kind = "JWT" if "jwt" in (own + module).lower() else "token"
        token.append(f"{label(app)}: {kind} from {' / '.join(places) or 'the handshake'}")
    if cookie:
        return "cookie", list(dict.fromkeys(cookie + token))
    if token:
        return "token", list(dict.fromkeys(token))
    return "none", []


def _without_validator(ws: Any, chain: list[Any], evidence: list[str]) -> Check:
    """No origin validator: a warning only when the route authenticates by cookie."""
    evidence.append("websocket chain: " + " → ".join(label(a) for a in chain))
    auth, how = _websocket_auth(ws)
    evidence += how
    if auth == "cookie":
        return ALLOWED_ORIGINS(
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
    return ALLOWED_ORIGINS(
        PASS,
        f"no origin validator, none needed: websocket auth is {what}, which a cross-site "
        "page cannot borrow (cross-site WebSocket hijacking needs cookie auth)",
        evidence,
    )


@register(ALLOWED_ORIGINS)
def check_allowed_origins(opts: Options) -> Check:
    from django.conf import settings

    ws, evidence, failed, _ = websocket_app()
    if failed:
        return ALLOWED_ORIGINS(SKIP, "no websocket route to inspect", failed.evidence)
    chain = walk(ws)
    validators = [a for a in chain if is_origin(a)]
    if not validators:
        return _without_validator(ws, chain, evidence)
    validator = validators[0]
    origins = list(getattr(validator, "allowed_origins", []) or [])
    evidence.append(f"{label(validator)} allowed_origins = {origins}")
    evidence.append(f"ALLOWED_HOSTS = {list(getattr(settings, 'ALLOWED_HOSTS', []))}")
    if not origins:
        return ALLOWED_ORIGINS(
            FAIL,
            "the origin validator allows no origin: every browser handshake is refused (403)",
            evidence,
            "Set the allowed origins (ALLOWED_HOSTS for AllowedHostsOriginValidator).",
        )
    if "*" in origins:
        return ALLOWED_ORIGINS(
            WARN,
            "the origin validator allows any origin ('*')",
            evidence,
            "List your site's origins instead of '*'.",
        )
    return ALLOWED_ORIGINS(PASS, f"origins allowed: {', '.join(map(str, origins))}", evidence)
