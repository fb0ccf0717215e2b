"""Which conversation a socket belongs to: the URL route, a pattern, or the app's resolver.

Routes are read from the app's ``URLRouter`` tables once (nested routers included)
and matched against the path; ``CONVERSATION_RESOLVER`` is imported once and called
with the scope, and with the first client frame when it takes one.
"""

from __future__ import annotations

import importlib
import inspect
import re
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wstrace import runtime

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
