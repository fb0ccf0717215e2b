"""Test settings of the notes project: in-memory channel layer, Celery eager, wstrace on."""

SECRET_KEY = "notes-test-key"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "channels",
    "notes",
    "wstrace",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
ASGI_APPLICATION = "notes.asgi.application"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = "memory://"
WSTRACE = {"SERVICE_NAME": "notes", "EXPORTERS": []}  # tests keep spans in memory only
