"""WebSocket middleware: JWT authentication and the browser origin check."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import parse_qs, urlparse

import jwt
from channels.middleware import BaseMiddleware
from channels.security.websocket import OriginValidator
from config.logfmt import log_event
from django.conf import settings
from django.contrib.auth.models import AnonymousUser

from .ws_connection_tokens import verify_token

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenUser:
    """The authenticated user a connection token describes (no database row needed)."""

    id: str
    username: str
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def pk(self) -> str:
        return self.id

    def __str__(self) -> str:
        return self.username


def token_from_scope(scope: dict) -> str | None:
    """Return the token of ``?token=`` or of an ``Authorization: Bearer`` header."""
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    if query.get("token"):
        return query["token"][0]
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
    return None


def user_from_token(token: str | None) -> TokenUser | AnonymousUser:
    """Return the token's user, or ``AnonymousUser`` for a missing/invalid/expired token."""
    if not token:
        return AnonymousUser()
    try:
        claims = verify_token(token, settings.CHAT_JWT_SECRET)
    except jwt.InvalidTokenError as exc:
        logger.info("websocket token refused: %s", exc)
        return AnonymousUser()
    return TokenUser(id=claims["sub"], username=str(claims.get("name") or claims["sub"]))


class TokenAuthMiddleware(BaseMiddleware):
    """Put ``scope["user"]`` from the connection token; the consumer decides what to refuse."""

    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        scope["user"] = user_from_token(token_from_scope(scope))
        return await super().__call__(scope, receive, send)


class BrowserOriginValidator(OriginValidator):
    """Refuse browsers from other sites; let non-browser clients (no Origin header) in.

    A refusal is logged with its reason: Daphne's access log only says ``WSREJECT``.
    """

    async def __call__(self, scope, receive, send):
        origin = dict(scope.get("headers", [])).get(b"origin")
        parsed = urlparse(origin.decode("latin1")) if origin is not None else None
        if not self.valid_origin(parsed):
            log_event(
                logger,
                "ws rejected",
                level=logging.WARNING,
                reason="origin not allowed",
                origin=origin.decode("latin1") if origin is not None else None,
                path=scope.get("path"),
            )
        return await super().__call__(scope, receive, send)

    def valid_origin(self, parsed_origin):
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)
