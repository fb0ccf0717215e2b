"""`celery -A proj worker`."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
app = Celery("proj", include=["proj.tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")
