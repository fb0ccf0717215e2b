"""Token auth: a JWT carried in ``Sec-WebSocket-Protocol`` (sockets) or ``Authorization`` (HTTP).

Browsers cannot set headers on a WebSocket, so the page offers two subprotocols,
``["bearer", "<jwt>"]``; the middleware reads the token from the second one and
the consumer accepts with the subprotocol ``bearer`` (never echoing the token).
Tokens are HS256 with ``sub`` (user id), ``name`` and ``exp``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import jwt
from channels.middleware import BaseMiddleware
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest

logger = logging.getLogger(__name__)

ALGORITHM = "HS256"
SUBPROTOCOL = "bearer"


@dataclass(frozen=True)
class TokenUser:
    """The user a token describes (no database row needed)."""

    id: str
    username: str
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def pk(self) -> str:
        return self.id


def user_from_token(token: str | None) -> TokenUser | AnonymousUser:
    """Return the token's user, or ``AnonymousUser`` for a missing/invalid/expired token."""
    if not token:
        return AnonymousUser()
    try:
        claims = jwt.decode(
            token, settings.ROOM_JWT_SECRET, algorithms=[ALGORITHM], options={"require": ["sub"]}
        )
    except jwt.InvalidTokenError as exc:
        logger.info("token refused: %s", exc)
        return AnonymousUser()
    return TokenUser(id=str(claims["sub"]), username=str(claims.get("name") or claims["sub"]))


def token_from_subprotocols(subprotocols: list[str]) -> str | None:
    """Return the token offered after the ``bearer`` subprotocol, if any."""
    for index, name in enumerate(subprotocols[:-1]):
        if name == SUBPROTOCOL:
            return subprotocols[index + 1]
    return None


def user_from_request(request: HttpRequest) -> TokenUser | AnonymousUser:
    """Return the user of an ``Authorization: Bearer <jwt>`` request."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return user_from_token(token.strip() if scheme.lower() == "bearer" else None)


class SubprotocolTokenMiddleware(BaseMiddleware):
    """Put ``scope["user"]`` from the subprotocol token; the consumer decides what to refuse."""

    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        scope["user"] = user_from_token(token_from_subprotocols(scope.get("subprotocols", [])))
        return await super().__call__(scope, receive, send)
