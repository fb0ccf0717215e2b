"""Token authentication the way chat backends do it, one middleware per place the token rides.

None of them reads a cookie, so a cross-site page cannot borrow a user's session through them.
"""

from urllib.parse import parse_qs

from channels.middleware import BaseMiddleware


def _user(token: str | None) -> dict:
    return {"token": token, "is_authenticated": bool(token)}


class QueryTokenAuthMiddleware(BaseMiddleware):
    """``?token=...`` on the websocket URL."""

    async def __call__(self, scope, receive, send):
        query = parse_qs(scope.get("query_string", b"").decode("latin1"))
        scope = {**scope, "user": _user((query.get("token") or [None])[0])}
        return await super().__call__(scope, receive, send)


class HeaderTokenAuthMiddleware(BaseMiddleware):
    """``Authorization: Bearer ...`` (native clients)."""

    async def __call__(self, scope, receive, send):
        value = dict(scope.get("headers", [])).get(b"authorization", b"").decode("latin1")
        scope = {**scope, "user": _user(value.removeprefix("Bearer ") or None)}
        return await super().__call__(scope, receive, send)


class SubprotocolTokenAuthMiddleware(BaseMiddleware):
    """The token as a Sec-WebSocket-Protocol value (``subprotocols`` in the scope)."""

    async def __call__(self, scope, receive, send):
        protocols = scope.get("subprotocols") or []
        scope = {**scope, "user": _user(protocols[-1] if protocols else None)}
        return await super().__call__(scope, receive, send)
