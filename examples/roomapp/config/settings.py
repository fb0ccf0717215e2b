"""Settings of the example room app: group chat rooms, a bot, notifications.

Everything is configurable through the environment (sane defaults for a laptop):

REDIS_URL              Redis for the channel layer, the Celery broker and results,
                       the raw pub/sub answers and the room bookkeeping
ROOM_LAYER             ``core`` (RedisChannelLayer, default) or ``pubsub``
                       (RedisPubSubChannelLayer)
ROOM_LAYER_URL         Redis of the channel layer only (overrides REDIS_URL there)
ROOM_LAYER_PREFIX      channel-layer key prefix (default ``asgi``)
ROOM_LAYER_SOCKET_TIMEOUT  redis-py socket timeout of the layer's connections in
                       seconds, or ``none`` (see examples/chatapp/README.md for why
                       the harness sets ``none``); unset keeps redis-py's default
ROOM_JWT_SECRET        HS256 secret of the tokens (WebSocket subprotocol and HTTP)
ROOM_STREAM_CHUNKS     chunks of a streamed answer (@streambot, @pubsub; 5)
ROOM_STREAM_DELAY      seconds between streamed chunks (0.05)
ROOM_PUBSUB_START_DELAY  seconds the pub/sub task waits before its first chunk
                       under ``fault:slow_start`` (1.0)
ROOM_BOT_FAULT         a fault every bot task plays (see rooms/faults.py), for
                       faults chosen per worker rather than per message
ROOM_DB_PATH           sqlite file (nothing is stored there; the usual shape)
"""

import importlib.util
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-roomapp-insecure-key")
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "channels",
    "rooms",
]
# The instrumentation is optional and configured by the environment only
# (WSTRACE_DIR, WSTRACE_SERVICE, WSTRACE_ENABLED): the app runs the same without it.
if importlib.util.find_spec("wstrace") and importlib.util.find_spec("wstrace.apps"):
    INSTALLED_APPS.append("wstrace")

MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("ROOM_DB_PATH", str(BASE_DIR / "db.sqlite3")),
    }
}
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
ROOM_LAYER = os.environ.get("ROOM_LAYER", "core")
ROOM_LAYER_URL = os.environ.get("ROOM_LAYER_URL") or REDIS_URL
ROOM_LAYER_PREFIX = os.environ.get("ROOM_LAYER_PREFIX") or "asgi"
_socket_timeout = os.environ.get("ROOM_LAYER_SOCKET_TIMEOUT", "")
if _socket_timeout:
    _timeout = None if _socket_timeout.lower() == "none" else float(_socket_timeout)
    ROOM_LAYER_HOSTS = [{"address": ROOM_LAYER_URL, "socket_timeout": _timeout}]
else:
    ROOM_LAYER_HOSTS = [ROOM_LAYER_URL]

if ROOM_LAYER == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": ROOM_LAYER_HOSTS, "prefix": ROOM_LAYER_PREFIX},
        }
    }
elif ROOM_LAYER == "core":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": ROOM_LAYER_HOSTS, "prefix": ROOM_LAYER_PREFIX},
        }
    }
else:
    raise ValueError(f"ROOM_LAYER must be 'core' or 'pubsub', not {ROOM_LAYER!r}")

ROOM_JWT_SECRET = os.environ.get(
    "ROOM_JWT_SECRET", "example-roomapp-jwt-secret-change-me-in-production"
)
ROOM_STREAM_CHUNKS = _env_int("ROOM_STREAM_CHUNKS", 5)
ROOM_STREAM_DELAY = _env_float("ROOM_STREAM_DELAY", 0.05)
ROOM_PUBSUB_START_DELAY = _env_float("ROOM_PUBSUB_START_DELAY", 1.0)
ROOM_BOT_FAULT = os.environ.get("ROOM_BOT_FAULT", "")

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

# The app's own events are JSON lines (config/jsonlog.py, the shape python-json-logger
# writes) carrying the conversation and, where known, the message and task ids, so
# `wsanalyze --logs` joins them exactly.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "config.jsonlog.JsonFormatter"}},
    "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json"}},
    "loggers": {"rooms": {"level": "INFO", "handlers": ["json"], "propagate": False}},
}
