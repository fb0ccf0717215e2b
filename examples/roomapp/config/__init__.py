"""The example room app's project package; loading it loads the Celery app."""

from .celery import app as celery_app

__all__ = ("celery_app",)
