"""With bodies off, a view's or a task's exception never carries the client's text (issue 13).

A small Django project made in the test's directory is served by Daphne, with a
Celery worker (solo pool) on the session's real Redis, wstrace in INSTALLED_APPS.
Its views do what chat APIs do with a posted message: validate it in the view
(raising a ``ValidationError`` that quotes it), or hand it to a Celery task that
validates it there (after one retry whose reason quotes it too). With
``RECORD_BODIES`` off the HTTP request span and the ``ws.task`` span record the
exception's type and where it was raised, and the posted text is in no file of
the store; with bodies on (the control) it is there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from wsanalyze.demo.processes import free_port
from wsanalyze.demo.redis_server import RedisServer
from wstrace import conventions as c

from .spans import Span, by_name, read_spans, wait_for

pytestmark = pytest.mark.stack

SETTINGS = """
import os

SECRET_KEY = "bodies-test"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["daphne", "django.contrib.contenttypes", "channels", "wstrace"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "bodyproj.urls"
ASGI_APPLICATION = "bodyproj.asgi.application"
DATABASES = {}
USE_TZ = True
LOGGING = {"version": 1, "disable_existing_loggers": False}
CELERY_BROKER_URL = os.environ["REDIS_URL"]
WSTRACE = {
    "SERVICE_NAME": os.environ["WSTRACE_SERVICE"],
    "FILE_DIR": os.environ["WSTRACE_DIR"],
    "RECORD_BODIES": os.environ["RECORD_BODIES"] == "1",
}
"""

ASGI = """
import os

from channels.routing import ProtocolTypeRouter
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bodyproj.settings")
application = ProtocolTypeRouter({"http": get_asgi_application()})
"""

CELERY_APP = """
import os

from celery import Celery
from django.core.exceptions import ValidationError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bodyproj.settings")
app = Celery("bodyproj")
app.config_from_object("django.conf:settings", namespace="CELERY")


@app.task(bind=True, name="bodyproj.check_answer", max_retries=1)
def check_answer(self, text):
    if not self.request.retries:
        raise self.retry(exc=ValueError(f"model rejected {text!r}"), countdown=0)
    raise ValidationError(f"Ensure this value has at most 5 characters: {text!r}")
"""

URLS = """
import json

from django.core.exceptions import ValidationError
from django.http import HttpResponse, JsonResponse
from django.urls import path

from bodyproj.celery import check_answer


def validate(request, conversation_id):
    text = json.loads(request.body)["text"]
    raise ValidationError(f"Ensure this value has at most 5 characters: {text!r}")


def enqueue(request, conversation_id):
    result = check_answer.delay(json.loads(request.body)["text"])
    return JsonResponse({"task_id": result.id})


def healthz(request):
    return HttpResponse("ok")


urlpatterns = [
    path("api/conversations/<str:conversation_id>/validate", validate),
    path("api/conversations/<str:conversation_id>/enqueue", enqueue),
    path("healthz", healthz),
]
"""

TYPE = "django.core.exceptions.ValidationError"


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module", params=[False, True], ids=["bodies-off", "bodies-on"])
def project(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: RedisServer,
    _redis_dbs: Iterator[int],
) -> Iterator[dict[str, Any]]:
    """Daphne and a Celery worker serving the project, bodies off or on."""
    base = tmp_path_factory.mktemp("bodyproj")
    package = base / "bodyproj"
    package.mkdir()
    files = {"settings.py": SETTINGS, "asgi.py": ASGI, "celery.py": CELERY_APP, "urls.py": URLS}
    for name, text in {"__init__.py": "", **files}.items():
        (package / name).write_text(text)
    url = redis_server.url_for(next(_redis_dbs))
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    traces = base / "traces"
    traces.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bodyproj.settings",
        "PYTHONPATH": os.pathsep.join([str(base), os.environ.get("PYTHONPATH", "")]),
        "REDIS_URL": url,
        "WSTRACE_DIR": str(traces),
        "WSTRACE_ENABLED": "1",
        "RECORD_BODIES": "1" if request.param else "0",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    port = free_port()
    logs = [(base / "daphne.log").open("w"), (base / "worker.log").open("w")]
    daphne = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
    worker = [
        sys.executable, "-m", "celery", "-A", "bodyproj", "worker", "-P", "solo",
        "-l", "info", "-n", "bodies@%h", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    procs = [
        subprocess.Popen(
            [*daphne, "bodyproj.asgi:application"],
            cwd=base,
            env={**env, "WSTRACE_SERVICE": "web"},
            stdout=logs[0],
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            worker,
            cwd=base,
            env={**env, "WSTRACE_SERVICE": "worker"},
            stdout=logs[1],
            stderr=subprocess.STDOUT,
        ),
    ]
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    break
            except OSError:
                if procs[0].poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"daphne did not serve:\n{(base / 'daphne.log').read_text()}")
                time.sleep(0.1)
        wait_for(traces, lambda spans: by_name(spans, c.SPAN_WORKER_READY), 30)
        yield {
            "url": f"http://127.0.0.1:{port}",
            "traces": traces,
            "bodies": request.param,
            "base": base,
        }
    finally:
        for proc in procs:
            _stop(proc)
        for log in logs:
            log.close()


def post(project: dict[str, Any], path: str, text: str) -> tuple[int, bytes]:
    body = json.dumps({"text": text}).encode()
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(project["url"] + path, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def secret_text() -> str:
    # What a user typed: unique, so no other request's spans can hold it.
    return f"my card is 4111-1111-{uuid.uuid4().hex[:8]}"


def files_containing(directory: Path, needle: str) -> list[str]:
    return [
        str(path)
        for path in directory.rglob("*")
        if path.is_file() and needle.encode() in path.read_bytes()
    ]


def exception_events(span: Span) -> list[dict[str, Any]]:
    return [e["attributes"] for e in span.events if e["name"] == "exception"]


def request_span(spans: list[Span], conversation: str) -> Span | None:
    found = [
        s
        for s in spans
        if s.kind == "SERVER"
        and s.attributes.get(c.EVENT) == c.EV_HTTP_REQUEST
        and s.attributes.get(c.CONVERSATION_ID) == conversation
    ]
    return found[0] if found else None


def test_a_view_s_validation_error_keeps_its_type_and_place_not_the_posted_text(
    project: dict[str, Any],
) -> None:
    secret = secret_text()
    conversation = f"view-{uuid.uuid4().hex[:8]}"

    status, _ = post(project, f"/api/conversations/{conversation}/validate", secret)

    assert status == 500
    spans = wait_for(project["traces"], lambda s: request_span(s, conversation))
    http = request_span(spans, conversation)
    assert http is not None and http.is_error
    (event,) = exception_events(http)
    assert event["exception.type"] == TYPE
    stack = event["exception.stacktrace"]
    assert "bodyproj/urls.py" in stack and ", in validate" in stack
    if project["bodies"]:
        assert secret in event["exception.message"] and secret in http.status_message
    else:
        assert "exception.message" not in event
        assert stack.rstrip().endswith(f"\n{TYPE}")
        assert http.status_message == TYPE
        assert files_containing(project["traces"], secret) == []


def test_a_task_s_validation_error_keeps_its_type_and_place_not_the_message(
    project: dict[str, Any],
) -> None:
    secret = secret_text()
    conversation = f"task-{uuid.uuid4().hex[:8]}"

    status, raw = post(project, f"/api/conversations/{conversation}/enqueue", secret)
    assert status == 200
    task_id = json.loads(raw)["task_id"]

    def failed_task(spans: list[Span]) -> list[Span]:
        return [
            s
            for s in by_name(spans, c.SPAN_TASK)
            if s.attributes.get(c.TASK_ID) == task_id and exception_events(s)
        ]

    spans = wait_for(project["traces"], failed_task, 30)
    (task,) = failed_task(spans)
    assert task.attributes[c.CONVERSATION_ID] == conversation  # the message's chain
    (event,) = exception_events(task)
    assert event["exception.type"] == TYPE
    assert "bodyproj/celery.py" in event["exception.stacktrace"]
    retries = [
        e["attributes"]
        for s in by_name(read_spans(project["traces"]), c.SPAN_TASK)
        if s.attributes.get(c.TASK_ID) == task_id
        for e in s.events
        if e["name"] == "ws.task_retry"
    ]
    assert len(retries) == 1
    if project["bodies"]:
        assert secret in event["exception.message"] and secret in task.status_message
        assert secret in retries[0]["reason"]
    else:
        assert "exception.message" not in event
        assert ", in check_answer" in event["exception.stacktrace"]
        assert task.status_message == TYPE
        assert retries[0]["reason"] == "ValueError"
        assert files_containing(project["traces"], secret) == []


def test_with_bodies_off_no_posted_text_is_anywhere_in_the_store(project: dict[str, Any]) -> None:
    # Both kinds of request once more, and then every file of the store is searched.
    secrets = [secret_text(), secret_text()]
    post(project, "/api/conversations/all-view/validate", secrets[0])
    _, raw = post(project, "/api/conversations/all-task/enqueue", secrets[1])
    task_id = json.loads(raw)["task_id"]
    wait_for(
        project["traces"],
        lambda spans: [
            s
            for s in by_name(spans, c.SPAN_TASK)
            if s.attributes.get(c.TASK_ID) == task_id and s.is_error
        ],
        30,
    )

    found = {secret: files_containing(project["traces"], secret) for secret in secrets}

    if project["bodies"]:
        assert all(found.values())  # the control: the same run with bodies on keeps them
    else:
        assert found == {secret: [] for secret in secrets}
