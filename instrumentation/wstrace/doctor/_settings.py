"""What the checks read from the project's Django settings (imported when a check runs)."""

from __future__ import annotations

from typing import Any


def layer_settings() -> dict[str, Any] | None:
    """``CHANNEL_LAYERS['default']``, or None when there is none."""
    from django.conf import settings

    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    return layers.get("default")


def backend_name(config: dict[str, Any] | None) -> str:
    """The layer's BACKEND dotted path ('' without a layer)."""
    return str((config or {}).get("BACKEND", ""))


def celery_configured() -> str | None:
    """Why a Celery worker publishes from another process (a broker is set), or None."""
    from django.conf import settings

    for name in ("CELERY_BROKER_URL", "BROKER_URL"):
        if getattr(settings, name, None):
            return f"settings.{name} is set: a Celery worker publishes from another process"
    return None
