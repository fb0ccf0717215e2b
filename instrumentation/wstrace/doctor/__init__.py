"""The classic checklist of a Channels + Celery + Redis chat backend, run inside the app.

    python manage.py wstrace doctor            # a table
    python manage.py wstrace doctor --json     # what `wsanalyze doctor` reads

Each check answers pass / fail / warn / skip with the evidence it saw and, when it
fails, the fix. The checks use the app's own settings, channel layer and Celery app,
so they see exactly what the web process sees:

``redis_reachable``   every Redis host of CHANNEL_LAYERS answers PING
``layer_roundtrip``   send + receive on a fresh channel of the layer
``group_roundtrip``   group_add, group_send, receive, group_discard
``asgi_router``       ASGI_APPLICATION is a ProtocolTypeRouter with a websocket route; the
                      auth middleware wraps the URLRouter (not inside a route). When
                      ASGI_APPLICATION cannot be imported but the project's asgi module
                      (``<settings package>.asgi.application``) can, it says so and checks that
``allowed_origins``   an origin validator guards the websocket route, with origins set; none
                      is needed when the route authenticates by token (JWT, query string,
                      header, subprotocol), a warning when it authenticates by session cookie
``layer_not_in_memory`` not InMemoryChannelLayer when another process (a Celery worker)
                      publishes to the layer
``celery_worker``     a worker answers ping and consumes every queue tasks are routed to,
                      with the tasks registered
``wstrace_active``    wstrace is installed, enabled, and a span it records reaches its store
                      (and is removed from it again)

The doctor's own probes (layer round trips, Celery pings) run with wstrace and every
OpenTelemetry instrumentation suppressed, so the user's store gets no spans from them.

``facts`` carries what other processes are compared against (the layer identity, the
same fingerprint wstrace writes as ``ws.layer``).

Layout: one module per check (``redis_reachable``, ``roundtrips`` for both round trips,
``asgi_router``, ``allowed_origins``, ``layer_not_in_memory``, ``celery_worker``,
``wstrace_active``); each registers itself in ``registry``, and ``runner`` runs the
registry in order. The answers' words are in ``status``, which the analyzer imports.
Importing this package loads neither Django nor the OpenTelemetry SDK: the checks
import what they probe when they run.
"""

from __future__ import annotations

# The check modules register themselves when imported, so this order is the order they
# run in (and of CHECK_NAMES): kept by hand, out of isort's reach, imported for that alone.
# isort: off
from . import redis_reachable, roundtrips, asgi_router, allowed_origins  # noqa: F401
from . import layer_not_in_memory, celery_worker, wstrace_active  # noqa: F401

# isort: on
from wstrace.redact import redact_url

from .allowed_origins import check_allowed_origins
from .asgi_router import check_asgi_router
from .celery_worker import check_celery_worker
from .layer_not_in_memory import check_layer_not_in_memory
from .redis_reachable import check_redis_reachable
from .registry import Check, Options, check_names
from .render import render_text, to_json
from .roundtrips import check_layer_roundtrips
from .runner import layer_identity, run_checks
from .status import FAIL, PASS, SKIP, WARN
from .wstrace_active import check_wstrace_active

CHECK_NAMES = check_names()

__all__ = [
    "CHECK_NAMES",
    "FAIL",
    "PASS",
    "SKIP",
    "WARN",
    "Check",
    "Options",
    "check_allowed_origins",
    "check_asgi_router",
    "check_celery_worker",
    "check_layer_not_in_memory",
    "check_layer_roundtrips",
    "check_redis_reachable",
    "check_wstrace_active",
    "layer_identity",
    "redact_url",
    "render_text",
    "run_checks",
    "to_json",
]
