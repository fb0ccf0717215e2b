"""Short-lived WebSocket connection tokens (JWT, HS256).

The page asks the HTTP API for a token, then opens
``wss://host/ws/chat/<conversation_id>/?token=<jwt>``. The token carries the
user id (``sub``) and display name (``name``) so the socket needs no database.
This module imports no Django, so scripts and test clients can mint tokens too.
"""

from __future__ import annotations

import time
from typing import Any

import jwt

ALGORITHM = "HS256"
TOKEN_TYPE = "ws"
DEFAULT_TTL = 300


def mint_token(
    user_id: int | str,
    name: str,
    secret: str,
    *,
    ttl: float = DEFAULT_TTL,
    now: float | None = None,
) -> str:
    """Return a signed connection token for one user, valid ``ttl`` seconds."""
    issued = int(time.time() if now is None else now)
    claims = {"sub": str(user_id), "name": name, "typ": TOKEN_TYPE, "iat": issued}
    claims["exp"] = issued + int(ttl)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(token: str, secret: str) -> dict[str, Any]:
    """Return the claims of a valid token; raise ``jwt.InvalidTokenError`` otherwise."""
    claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]})
    if claims.get("typ") != TOKEN_TYPE:
        raise jwt.InvalidTokenError("not a websocket connection token")
    return claims
