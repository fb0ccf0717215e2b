"""Answers started over HTTP join the message chain (issue 10, point 9), under real Daphne.

A small Django Channels project made in the test's directory is served by
Daphne (Django's ASGI handler inside Channels' ProtocolTypeRouter) with a
RedisChannelLayer and a Celery broker on the session's real Redis, wstrace in
INSTALLED_APPS and nothing else configured. Its REST views do what chat apps
do: post a message and ``group_send`` the answer in the view, or re-run an
answer by enqueueing a Celery task. The spans are read back from the store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from wsanalyze.demo.processes import free_port
from wsanalyze.demo.redis_server import RedisServer
from wstrace import conventions as c

from .spans import Span, by_name, wait_for

pytestmark = pytest.mark.stack

SETTINGS = """
import os

SECRET_KEY = "http-test"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["daphne", "django.contrib.contenttypes", "channels", "wstrace"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "httpproj.urls"
ASGI_APPLICATION = "httpproj.asgi.application"
DATABASES = {}
USE_TZ = True
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [os.environ["REDIS_URL"]]},
    }
}
CELERY_BROKER_URL = os.environ["REDIS_URL"]
WSTRACE = {"SERVICE_NAME": "web", "FILE_DIR": os.environ["WSTRACE_DIR"]}
"""

ASGI = """
import os

from channels.routing import ProtocolTypeRouter
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "httpproj.settings")
application = ProtocolTypeRouter({"http": get_asgi_application()})
"""

CELERY_APP = """
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "httpproj.settings")
app = Celery("httpproj")
app.config_from_object("django.conf:settings", namespace="CELERY")


@app.task(name="httpproj.regenerate")
def regenerate(message_id):
    return message_id
"""

URLS = """
import json

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.http import HttpResponse, JsonResponse
from django.urls import path

from httpproj.celery import regenerate


def post_message(request, conversation_id):
    # Reads the body itself: wstrace having read it first must change nothing.
    payload = json.loads(request.body)
    async_to_sync(get_channel_layer().group_send)(
        f"chat_{conversation_id}", {"type": "chat.answer", "text": payload["text"]}
    )
    return JsonResponse({"echo": payload["text"]})


def regenerate_view(request, message_id):
    result = regenerate.delay(message_id)
    return JsonResponse({"task_id": result.id})


def upload(request):
    files = request.FILES.getlist("file")
    return JsonResponse({"sizes": [f.size for f in files], "note": request.POST.get("note")})


def healthz(request):
    return HttpResponse("ok")


urlpatterns = [
    path("api/conversations/<str:conversation_id>/messages", post_message),
    path("api/messages/<str:message_id>/regenerate", regenerate_view),
    path("api/upload", upload),
    path("healthz", healthz),
]
"""

SECRETS = ("s3cr3t-query", "s3cr3t-header", "s3cr3t-cookie")


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, _redis_dbs: Iterator[int]
) -> Iterator[dict[str, Any]]:
    """Daphne serving the project; yields its base URL and store directory."""
    base = tmp_path_factory.mktemp("httpproj")
    package = base / "httpproj"
    package.mkdir()
    for name, text in {
        "__init__.py": "",
        "settings.py": SETTINGS,
        "asgi.py": ASGI,
        "celery.py": CELERY_APP,
        "urls.py": URLS,
    }.items():
        (package / name).write_text(text)
    url = redis_server.url_for(next(_redis_dbs))
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    traces = base / "traces"
    traces.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "httpproj.settings",
        "PYTHONPATH": os.pathsep.join([str(base), os.environ.get("PYTHONPATH", "")]),
        "REDIS_URL": url,
        "WSTRACE_DIR": str(traces),
        "WSTRACE_ENABLED": "1",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        # Capture the secret headers on the span, so their absence proves redaction.
        "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "Authorization,Cookie,X-Trace-Me",
    }
    log = (base / "daphne.log").open("w")
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(
        [*command, "httpproj.asgi:application"],
        cwd=base,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"daphne did not serve:\n{(base / 'daphne.log').read_text()}")
                time.sleep(0.1)
        yield {"url": f"http://127.0.0.1:{port}", "traces": traces, "redis": url, "base": base}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def call(
    server: dict[str, Any],
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> tuple[int, bytes]:
    request = urllib.request.Request(
        server["url"] + path, data=body, method=method, headers=headers or {}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read()


def post_json(server: dict[str, Any], path: str, payload: Any, **headers: str) -> Any:
    body = json.dumps(payload).encode()
    status, raw = call(server, path, body, {"Content-Type": "application/json", **headers})
    assert status == 200
    return json.loads(raw)


def request_spans(spans: list[Span], path_part: str) -> list[Span]:
    return [
        s
        for s in spans
        if s.kind == "SERVER" and s.attributes.get(c.EVENT) == c.EV_HTTP_REQUEST
        if path_part in str(s.attributes.get("http.url", s.attributes.get("url.full", "")))
    ]


def request_span(spans: list[Span], path_part: str) -> Span:
    found = request_spans(spans, path_part)
    assert len(found) == 1, [(s.name, s.attributes) for s in spans if s.kind == "SERVER"]
    return found[0]


def test_posted_message_is_the_receive_hop_and_its_ids_reach_group_send(server: dict) -> None:
    reply = post_json(server, "/api/conversations/conv-http/messages", {"id": "m-42", "text": "hi"})
    assert reply == {"echo": "hi"}  # the view read the body wstrace had read first

    # The request span ends after its publish, and may reach the store a flush later.
    spans = wait_for(
        server["traces"],
        lambda s: (
            [p for p in by_name(s, c.SPAN_PUBLISH) if p.attributes[c.MESSAGE_ID] == "m-42"]
            and request_spans(s, "/api/conversations/conv-http/messages")
        ),
    )
    http = request_span(spans, "/api/conversations/conv-http/messages")
    assert http.attributes[c.HOP] == c.HOP_RECEIVE
    assert http.attributes[c.MESSAGE_ID] == "m-42"
    assert http.attributes[c.APP_MESSAGE_ID] == "m-42"
    assert http.attributes[c.CONVERSATION_ID] == "conv-http"
    assert http.attributes[c.ROUTE] == "api/conversations/<str:conversation_id>/messages"
    publish = next(p for p in by_name(spans, c.SPAN_PUBLISH) if p.trace_id == http.trace_id)
    assert publish.attributes[c.MESSAGE_ID] == "m-42"
    assert publish.attributes[c.CONVERSATION_ID] == "conv-http"
    assert publish.attributes[c.GROUP] == "chat_conv-http"
    assert publish.parent_id == http.span_id


def test_edit_endpoint_names_the_message_and_its_task_carries_it(server: dict) -> None:
    status, raw = call(server, "/api/messages/m-edit-7/regenerate", b"")
    task_id = json.loads(raw)["task_id"]
    assert status == 200

    spans = wait_for(
        server["traces"],
        lambda s: (
            [e for e in by_name(s, c.SPAN_ENQUEUE) if e.attributes[c.TASK_ID] == task_id]
            and request_spans(s, "/api/messages/m-edit-7/regenerate")
        ),
    )
    http = request_span(spans, "/api/messages/m-edit-7/regenerate")
    assert http.attributes[c.MESSAGE_ID] == "m-edit-7" and http.attributes[c.HOP] == "receive"
    assert c.CONVERSATION_ID not in http.attributes  # the analyzer finds it by group
    enqueue = next(e for e in by_name(spans, c.SPAN_ENQUEUE) if e.attributes[c.TASK_ID] == task_id)
    assert enqueue.attributes[c.MESSAGE_ID] == "m-edit-7"
    assert enqueue.parent_id == http.span_id
    # The task headers carry the id on to the worker (read here from the broker's queue).
    with redis.Redis.from_url(server["redis"]) as client:
        queued = [json.loads(raw) for raw in client.lrange("celery", 0, -1)]
    headers = next(m["headers"] for m in queued if m["headers"]["id"] == task_id)
    assert "ws.message_id=m-edit-7" in headers["baggage"]


def test_message_without_an_id_gets_one_and_reads_leave_no_message(server: dict) -> None:
    post_json(server, "/api/conversations/conv-anon/messages", {"text": "no id"})
    call(server, "/healthz", method="GET")
    call(server, "/healthz?probe=2", method="GET")

    spans = wait_for(
        server["traces"],
        lambda s: [x for x in s if "probe=2" in str(x.attributes.get("http.url", ""))],
    )
    http = request_span(spans, "/api/conversations/conv-anon/messages")
    generated = http.attributes[c.MESSAGE_ID]
    assert len(generated) == 32 and c.APP_MESSAGE_ID not in http.attributes
    publish = next(p for p in by_name(spans, c.SPAN_PUBLISH) if p.trace_id == http.trace_id)
    assert publish.attributes[c.MESSAGE_ID] == generated
    health = request_span(spans, "probe=2")
    assert health.attributes[c.EVENT] == c.EV_HTTP_REQUEST
    assert c.HOP not in health.attributes and c.MESSAGE_ID not in health.attributes


def test_multipart_upload_is_left_to_the_view(server: dict) -> None:
    boundary = "wstraceboundary"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=note\r\n\r\nhello\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=file; filename=a.bin\r\n"
        f"Content-Type: application/octet-stream\r\n\r\n{'x' * 70000}\r\n--{boundary}--\r\n"
    ).encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    status, raw = call(server, "/api/upload", body, headers)
    assert status == 200 and json.loads(raw) == {"sizes": [70000], "note": "hello"}


def test_tokens_headers_and_cookies_never_reach_a_span(server: dict) -> None:
    post_json(
        server,
        f"/api/conversations/conv-secret/messages?token={SECRETS[0]}&page=1",
        {"id": "m-secret", "text": "psst"},
        Authorization=f"Bearer {SECRETS[1]}",
        Cookie=f"sessionid={SECRETS[2]}; theme=dark",
        **{"X-Trace-Me": "visible"},
    )
    spans = wait_for(
        server["traces"],
        lambda s: [
            p for p in by_name(s, c.SPAN_PUBLISH) if p.attributes[c.MESSAGE_ID] == "m-secret"
        ],
    )
    http = request_span(spans, "/api/conversations/conv-secret/messages")
    # The headers were captured (the harmless one is there as sent) and the secret ones
    # were redacted, not merely absent.
    assert "visible" in str(http.attributes["http.request.header.x_trace_me"])
    assert http.attributes["http.request.header.authorization"] == "[redacted]"
    assert http.attributes["http.request.header.cookie"] == "[redacted]"
    assert "token=[redacted]" in http.attributes["http.url"]
    stored = "".join(p.read_text() for p in Path(server["traces"]).rglob("*.jsonl"))
    for secret in SECRETS:
        assert secret not in stored


def test_ids_a_client_sends_as_baggage_do_not_reach_the_chain(server: dict) -> None:
    post_json(
        server,
        "/api/conversations/conv-real/messages",
        {"id": "m-real", "text": "hi"},
        baggage="ws.conversation_id=conv-spoof,ws.connection_id=conn-spoof",
    )
    spans = wait_for(
        server["traces"],
        lambda s: [p for p in by_name(s, c.SPAN_PUBLISH) if p.attributes[c.MESSAGE_ID] == "m-real"],
    )
    publish = next(
        p for p in by_name(spans, c.SPAN_PUBLISH) if p.attributes[c.MESSAGE_ID] == "m-real"
    )
    assert publish.attributes[c.CONVERSATION_ID] == "conv-real"
    assert c.CONNECTION_ID not in publish.attributes
    assert request_span(spans, "conv-real").attributes[c.CONVERSATION_ID] == "conv-real"
