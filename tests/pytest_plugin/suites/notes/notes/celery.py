"""The project's Celery app."""

from celery import Celery

app = Celery("notes")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["notes"])
