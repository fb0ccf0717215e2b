"""The example apps the demo and the tests run: what differs between them, and where they are.

Two apps (``APPS``): ``chatapp`` (one agent streaming answers to a conversation
group) and ``roomapp`` (group rooms, bots, a Stop button, HTTP posts, raw pub/sub
answers). Both have the same layout (``config.settings``, ``config.asgi:application``,
Celery app ``config``) and are configured by environment variables (see
``examples/<app>/config/settings.py``).

They ship inside the wheel (``wsanalyze/demo/examples/<app>``, see pyproject.toml)
and live in a clone of the repository under ``examples/<app>``;
``WSTRACE_EXAMPLE_APP`` points the chat app elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .processes import StackError

__all__ = [
    "APPS",
    "DEFAULT_JWT_SECRET",
    "EXAMPLE_APP_ENV",
    "ROOMAPP_JWT_SECRET",
    "AppSpec",
    "example_app_dir",
]

EXAMPLE_APP_ENV = "WSTRACE_EXAMPLE_APP"
DEFAULT_JWT_SECRET = "example-chatapp-jwt-secret-change-me-in-production"
ROOMAPP_JWT_SECRET = "example-roomapp-jwt-secret-change-me-in-production"

_HERE = Path(__file__).resolve()
# Where the apps are: inside an installed wheel, then in a clone of the repository.
_APP_ROOTS = (_HERE.parent / "examples", _HERE.parents[3] / "examples")


@dataclass(frozen=True)
class AppSpec:
    """What differs between the example apps: where they live and what their settings read."""

    name: str
    ws_path: str  # the conversation route, formatted with conversation_id
    env_prefix: str  # prefix of the app's own variables (CHAT_LAYER, ROOM_LAYER, ...)
    default_secret: str
    token_in_query: bool  # chatapp reads ?token=; roomapp a Sec-WebSocket-Protocol token
    worker_prefix: str


APPS: dict[str, AppSpec] = {
    "chatapp": AppSpec(
        "chatapp", "/ws/chat/{conversation_id}/", "CHAT", DEFAULT_JWT_SECRET, True, "chat"
    ),
    "roomapp": AppSpec(
        "roomapp", "/ws/rooms/{conversation_id}/", "ROOM", ROOMAPP_JWT_SECRET, False, "room"
    ),
}


def _is_app(path: Path) -> bool:
    return (path / "config" / "asgi.py").is_file()


def example_app_dir(app: str = "chatapp") -> Path:
    """Return the directory of an example app (``WSTRACE_EXAMPLE_APP`` overrides the chat app's)."""
    if app not in APPS:
        raise ValueError(f"app must be one of {tuple(APPS)}, not {app!r}")
    override = os.environ.get(EXAMPLE_APP_ENV) if app == "chatapp" else None
    if override:
        path = Path(override)
    else:
        found = [root / app for root in _APP_ROOTS if _is_app(root / app)]
        path = found[0] if found else _APP_ROOTS[-1] / app
    if not _is_app(path):
        raise StackError(f"no example app at {path}: set {EXAMPLE_APP_ENV} to examples/{app}")
    return path
