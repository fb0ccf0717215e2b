"""A JWT carried in a cookie: token-shaped, yet the browser sends it cross-site like a session."""

from http.cookies import SimpleCookie

from channels.middleware import BaseMiddleware


class JWTCookieAuthMiddleware(BaseMiddleware):
    """The ``access`` cookie's JWT becomes scope['user']."""

    async def __call__(self, scope, receive, send):
        raw = dict(scope.get("headers", [])).get(b"cookie", b"").decode("latin1")
        morsel = SimpleCookie(raw).get("access")
        scope = {**scope, "user": {"jwt": morsel.value if morsel else None}}
        return await super().__call__(scope, receive, send)
