"""Walking an ASGI application's middleware chain down to the websocket URLRouter.

Middleware keeps the app it wraps under one of a few attribute names; the walk follows
them, and names what it passes by class (auth, origin validation) or, for the user's own
middleware, by the words in the class name.
"""

from __future__ import annotations

from typing import Any

_NEXT = ("inner", "application", "app", "__wrapped__")


def next_app(app: Any) -> Any:
    """The application ``app`` wraps, or None."""
    for attr in _NEXT:
        try:
            candidate = getattr(app, attr, None)
        except Exception:  # a property of the user's middleware may raise
            candidate = None
        if candidate is not None and candidate is not app and not isinstance(candidate, str | dict):
            return candidate
    return None


def label(app: Any) -> str:
    """``module.Class`` of an app instance (a function's qualified name for a function)."""
    kind = app if isinstance(app, type) else type(app)
    if kind.__name__ in ("function", "method"):
        return getattr(app, "__qualname__", repr(app))
    return f"{kind.__module__}.{kind.__qualname__}"


def is_auth(app: Any) -> bool:
    """Channels' AuthMiddleware, or middleware named for auth, tokens or JWT."""
    try:
        from channels.auth import AuthMiddleware

        if isinstance(app, AuthMiddleware):
            return True
    except ImportError:
        pass
    name = type(app).__name__.lower()
    return any(word in name for word in ("auth", "token", "jwt"))


def is_origin(app: Any) -> bool:
    """Channels' OriginValidator (AllowedHostsOriginValidator builds one), or one by name."""
    try:
        from channels.security.websocket import OriginValidator

        if isinstance(app, OriginValidator):
            return True
    except ImportError:
        pass
    return "origin" in type(app).__name__.lower()


def walk(app: Any, limit: int = 40) -> list[Any]:
    """``app`` and what it wraps, down to (and with) the first URLRouter."""
    chain = []
    while app is not None and len(chain) < limit:  # the limit: a chain that loops back
        chain.append(app)
        if type(app).__name__ == "URLRouter":
            break
        app = next_app(app)
    return chain
