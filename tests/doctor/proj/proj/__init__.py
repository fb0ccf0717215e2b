"""A small Channels + Celery project whose settings switch misconfigurations on (see settings)."""

from .celery import app as celery_app

__all__ = ("celery_app",)
