"""Settings of the example chat app: a Django Channels + Celery + Redis backend.

Everything is configurable through the environment (sane defaults for a laptop):

REDIS_URL              Redis for the channel layer, the Celery broker and results
CHAT_LAYER             ``core`` (RedisChannelLayer, default) or ``pubsub``
                       (RedisPubSubChannelLayer)
CHAT_LAYER_URL         Redis of the channel layer only (overrides REDIS_URL there)
CHAT_LAYER_PREFIX      channel-layer key prefix (default ``asgi``)
CHAT_CHANNEL_CAPACITY  per-channel capacity of the core layer (default 100)
CHAT_LAYER_SOCKET_TIMEOUT  redis-py socket timeout of the layer's connections in
                       seconds, or ``none``; unset keeps redis-py's default (5 s
                       in redis-py 8, with which cancelling a layer receive is
                       occasionally lost: see README)
CHAT_JWT_SECRET        HS256 secret of the connection tokens
CHAT_ALLOWED_ORIGINS   comma-separated browser origins allowed to open a socket
                       (``*`` for any); requests without an Origin header pass
CHAT_RATE_LIMIT        frames allowed per CHAT_RATE_WINDOW seconds (10 per 10)
CHAT_CHUNKS            chunks of a streamed answer (5)
CHAT_CHUNK_DELAY       seconds between chunks (0.05)
CHAT_LONG_CHUNKS       chunks of a long answer (``fault:long_stream``; 20)
CHAT_SLOW_HANDLER      extra seconds the consumer sleeps per chunk under
                       ``fault:channel_full`` (0)
CHAT_TASK_QUEUE        queue the agent task goes to (``celery``)
CHAT_PRIORITY_QUEUE    queue ``fault:no_worker`` routes to (``agents-priority``)
WSTRACE_SERVICE        wstrace service name (``web``); WSTRACE_DIR its file store
"""

import importlib.util
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name) or default)


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-chatapp-insecure-key")
DEBUG = os.environ.get("DJANGO_DEBUG", "0") == "1"
ALLOWED_HOSTS = _env_list("DJANGO_ALLOWED_HOSTS", "*")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "channels",
    "core.agents",
]
# The instrumentation is optional: the app runs the same without it.
if importlib.util.find_spec("wstrace") and importlib.util.find_spec("wstrace.apps"):
    INSTALLED_APPS.append("wstrace")

MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

# Nothing reads the database (users come from the token); sqlite keeps the usual shape.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("CHAT_DB_PATH", str(BASE_DIR / "db.sqlite3")),
    }
}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CHAT_LAYER = os.environ.get("CHAT_LAYER", "core")
CHAT_LAYER_URL = os.environ.get("CHAT_LAYER_URL") or REDIS_URL
CHAT_LAYER_PREFIX = os.environ.get("CHAT_LAYER_PREFIX") or "asgi"
CHAT_CHANNEL_CAPACITY = _env_int("CHAT_CHANNEL_CAPACITY", 100)
CHAT_LAYER_SOCKET_TIMEOUT = os.environ.get("CHAT_LAYER_SOCKET_TIMEOUT", "")
if CHAT_LAYER_SOCKET_TIMEOUT:
    _timeout = (
        None if CHAT_LAYER_SOCKET_TIMEOUT.lower() == "none" else float(CHAT_LAYER_SOCKET_TIMEOUT)
    )
    CHAT_LAYER_HOSTS = [{"address": CHAT_LAYER_URL, "socket_timeout": _timeout}]
else:
    CHAT_LAYER_HOSTS = [CHAT_LAYER_URL]

if CHAT_LAYER == "pubsub":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": CHAT_LAYER_HOSTS, "prefix": CHAT_LAYER_PREFIX},
        }
    }
elif CHAT_LAYER == "core":
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": CHAT_LAYER_HOSTS,
                "prefix": CHAT_LAYER_PREFIX,
                "capacity": CHAT_CHANNEL_CAPACITY,
            },
        }
    }
else:
    raise ValueError(f"CHAT_LAYER must be 'core' or 'pubsub', not {CHAT_LAYER!r}")

CHAT_JWT_SECRET = os.environ.get(
    "CHAT_JWT_SECRET", "example-chatapp-jwt-secret-change-me-in-production"
)
CHAT_ALLOWED_ORIGINS = _env_list(
    "CHAT_ALLOWED_ORIGINS", "http://localhost:8000,http://127.0.0.1:8000"
)
CHAT_RATE_LIMIT = _env_int("CHAT_RATE_LIMIT", 10)
CHAT_RATE_WINDOW = _env_float("CHAT_RATE_WINDOW", 10.0)
CHAT_CHUNKS = _env_int("CHAT_CHUNKS", 5)
CHAT_CHUNK_DELAY = _env_float("CHAT_CHUNK_DELAY", 0.05)
CHAT_LONG_CHUNKS = _env_int("CHAT_LONG_CHUNKS", 20)
CHAT_SLOW_HANDLER = _env_float("CHAT_SLOW_HANDLER", 0.0)
CHAT_PRIORITY_QUEUE = os.environ.get("CHAT_PRIORITY_QUEUE", "agents-priority")

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CHAT_TASK_QUEUE", "celery")
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

WSTRACE = {
    "SERVICE_NAME": os.environ.get("WSTRACE_SERVICE") or "web",
    "FILE_DIR": os.environ.get("WSTRACE_DIR") or str(BASE_DIR / ".wstrace"),
}

# Containers run in UTC; so do Daphne's local-time access stamps then.
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "UTC")

# The app's own events are logfmt lines (config/logfmt.py) carrying the conversation
# and, where known, the message and task ids, so `wsanalyze --logs` joins them exactly;
# with wstrace installed they also carry trace_id/span_id/connection_id.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"logfmt": {"()": "config.logfmt.LogfmtFormatter"}},
    "handlers": {"logfmt": {"class": "logging.StreamHandler", "formatter": "logfmt"}},
    "loggers": {
        # "N of M channels over capacity in group ..." is logged at INFO.
        "channels_redis": {"level": "INFO"},
        "core": {"level": "INFO", "handlers": ["logfmt"], "propagate": False},
    },
}
