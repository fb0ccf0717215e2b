"""Settings driven by environment variables, one per misconfiguration the doctor must find.

REDIS_URL            Redis of the layer and the broker
DOCTOR_LAYER         redis (default) | memory
DOCTOR_PREFIX        channel-layer prefix (asgi)
DOCTOR_HOSTS_FORM    url (default) | dict (address + socket_timeout) | pair (host, port)
DOCTOR_ASGI          the websocket stack's shape (see proj/asgi.py)
DOCTOR_ASGI_APPLICATION  ASGI_APPLICATION (proj.asgi.application)
DOCTOR_AGENT_QUEUE   queue proj.tasks.agent is routed to (celery)
DOCTOR_ALLOWED_HOSTS ALLOWED_HOSTS, comma-separated (localhost,127.0.0.1)
DOCTOR_NO_WSTRACE    1: wstrace not in INSTALLED_APPS
WSTRACE_DIR          wstrace's store; WSTRACE_ENABLED=0 turns it off
"""

import os

SECRET_KEY = "doctor-tests"
DEBUG = False
ALLOWED_HOSTS = [
    h for h in os.environ.get("DOCTOR_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",") if h
]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "channels",
    "proj",
]
if os.environ.get("DOCTOR_NO_WSTRACE") != "1":
    INSTALLED_APPS.append("wstrace")
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
ROOT_URLCONF = "proj.urls"
ASGI_APPLICATION = os.environ.get("DOCTOR_ASGI_APPLICATION", "proj.asgi.application")

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
if os.environ.get("DOCTOR_LAYER", "redis") == "memory":
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
else:
    from urllib.parse import urlsplit

    _url = urlsplit(REDIS_URL)
    HOSTS = {
        "url": [REDIS_URL],
        "dict": [{"address": REDIS_URL, "socket_timeout": 5}],
        "pair": [(_url.hostname, _url.port)],
    }[os.environ.get("DOCTOR_HOSTS_FORM", "url")]
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": HOSTS, "prefix": os.environ.get("DOCTOR_PREFIX", "asgi")},
        }
    }

CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = 0
CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 0}
CELERY_TASK_ROUTES = {"proj.tasks.agent": {"queue": os.environ.get("DOCTOR_AGENT_QUEUE", "celery")}}

WSTRACE = {"SERVICE_NAME": "web", "FILE_DIR": os.environ.get("WSTRACE_DIR", "/tmp/doctor-wstrace")}
