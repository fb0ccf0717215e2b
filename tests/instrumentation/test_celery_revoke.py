"""Cancellation leaves evidence on both sides (issue 10, point 10), with a real prefork worker.

A small Django project made in the test's directory runs a Celery worker
(``-P prefork -c 1``) on the session's real Redis, instrumented by wstrace. An
app process (a script of the same project) enqueues a long task inside a
conversation's context, waits until it runs, and presses "Stop": it revokes it
with ``terminate=True`` under the Stop frame's span. Two more tasks wait behind
it: one revoked without terminate, one past its expiry.

The worker's main process must write ``ws.task_revoked`` under the task's own
enqueue, carrying the ids of the message that started the task, and flush it
at once; the killed child's ``ws.task``, if it gets out at all, must not look
like a success; the app's ``ws.revoke`` names the revoked task under the Stop
frame.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from wsanalyze.demo.redis_server import RedisServer
from wstrace import conventions as c

from .spans import Span, by_name, read_spans, wait_for

pytestmark = pytest.mark.stack

SETTINGS = """
import os

SECRET_KEY = "revoke-test"
INSTALLED_APPS = ["django.contrib.contenttypes", "wstrace"]
DATABASES = {}
USE_TZ = True
CELERY_BROKER_URL = os.environ["REDIS_URL"]
CELERY_RESULT_BACKEND = os.environ["REDIS_URL"]
WSTRACE = {"SERVICE_NAME": os.environ["WSTRACE_SERVICE"], "FILE_DIR": os.environ["WSTRACE_DIR"]}
"""

CELERY_APP = """
import os
import time

import redis
from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "revokeproj.settings")

app = Celery("revokeproj")
app.config_from_object("django.conf:settings", namespace="CELERY")


@app.task(bind=True, name="revokeproj.answer")
def answer(self, seconds):
    # Tells the app it runs, then "streams" for a while: the Stop button's target.
    redis.Redis.from_url(os.environ["REDIS_URL"]).set(f"started:{self.request.id}", 1)
    time.sleep(seconds)
    return "done"
"""

# The app side: what a consumer does for a chat frame and, later, for the Stop frame.
APP_SCRIPT = """
import os
import sys
import time

import django

django.setup()

import redis
from opentelemetry.trace import SpanKind
from wstrace import carrier, current, provider, runtime
from wstrace import conventions as c

from revokeproj.celery import answer

IDS = {"conversation_id": "conv-revoke", "connection_id": "conn-revoke"}
store = redis.Redis.from_url(os.environ["REDIS_URL"])


def frame(message_id):
    token = current.attach(carrier.with_ids(message_id=message_id, **IDS))
    attributes = {**current.ids(), c.HOP: c.HOP_RECEIVE, c.EVENT: c.EV_RECEIVE}
    span = runtime.tracer().start_span(c.SPAN_RECEIVE, kind=SpanKind.SERVER, attributes=attributes)
    return token, span, current.attach(current.with_span(span))


def end(opened):
    token, span, inner = opened
    current.detach(inner)
    span.end()
    current.detach(token)


opened = frame("msg-long")
running = answer.delay(60)
end(opened)
deadline = time.monotonic() + 30
while not store.exists(f"started:{running.id}"):
    if time.monotonic() > deadline:
        sys.exit("the task never started")
    time.sleep(0.05)

opened = frame("msg-queued")
queued = answer.delay(0)
end(opened)
opened = frame("msg-expiring")
expiring = answer.apply_async((0,), expires=1.5)
end(opened)
time.sleep(2.5)  # the expiring one is past its expiry before the worker gets to it

opened = frame("msg-cancel-queued")
queued.revoke()
end(opened)
opened = frame("msg-stop")
running.revoke(terminate=True)
end(opened)
provider.flush()
print(running.id, queued.id, expiring.id)
"""


@pytest.fixture
def project(tmp_path: Path, redis_server: RedisServer, _redis_dbs: Iterator[int]) -> dict:
    """The project's files and the environment its processes run with."""
    package = tmp_path / "revokeproj"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(SETTINGS)
    (package / "celery.py").write_text(CELERY_APP)
    (tmp_path / "app_script.py").write_text(APP_SCRIPT)
    url = redis_server.url_for(next(_redis_dbs))
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    trace_dir = tmp_path / "traces"
    trace_dir.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "revokeproj.settings",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        "PYTHONUNBUFFERED": "1",
        "REDIS_URL": url,
        "WSTRACE_DIR": str(trace_dir),
        "WSTRACE_ENABLED": "1",
    }
    return {"dir": tmp_path, "env": env, "traces": trace_dir}


@pytest.fixture
def worker(project: dict) -> Iterator[subprocess.Popen]:
    """A prefork worker with one child whose batches go out only every 30 s on their own."""
    log = (project["dir"] / "worker.log").open("w")
    env = {**project["env"], "WSTRACE_SERVICE": "worker", "OTEL_BSP_SCHEDULE_DELAY": "30000"}
    command = [
        sys.executable, "-m", "celery", "-A", "revokeproj", "worker", "-P", "prefork",
        "-c", "1", "-l", "info", "-n", "revoke@%h", "--without-mingle", "--without-gossip",
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=project["dir"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for(project["traces"], lambda spans: by_name(spans, c.SPAN_WORKER_READY), 30)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def run_app(project: dict) -> list[str]:
    """Run the app script; return the ids of the running, queued and expiring tasks."""
    done = subprocess.run(
        [sys.executable, str(project["dir"] / "app_script.py")],
        cwd=project["dir"],
        env={**project["env"], "WSTRACE_SERVICE": "web"},
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.split()


def one(spans: list[Span], name: str, task_id: str) -> Span:
    found = [s for s in by_name(spans, name) if s.attributes.get(c.TASK_ID) == task_id]
    assert len(found) == 1, f"{name} for {task_id}: {found}"
    return found[0]


def revoked_all(ids: list[str]) -> Any:
    def check(spans: list[Span]) -> bool:
        seen = {s.attributes.get(c.TASK_ID) for s in by_name(spans, "ws.task_revoked")}
        return set(ids) <= seen

    return check


def test_stop_button_leaves_revoke_and_task_revoked_with_the_messages_ids(
    project: dict, worker: subprocess.Popen
) -> None:
    running, queued, expiring = run_app(project)
    # Flushed by the worker itself: its batches would otherwise wait 30 s.
    spans = wait_for(project["traces"], revoked_all([running, queued, expiring]), 10)
    assert worker.poll() is None, "the worker must survive a terminated task"
    by_id = {s.span_id: s for s in spans}

    terminated = one(spans, "ws.task_revoked", running)
    enqueue = one(spans, c.SPAN_ENQUEUE, running)
    assert terminated.service == "worker" and terminated.kind == "CONSUMER"
    assert terminated.parent_id == enqueue.span_id and terminated.trace_id == enqueue.trace_id
    assert terminated.is_error and "SIGTERM" in terminated.status_message
    attrs = terminated.attributes
    assert attrs[c.HOP] == c.HOP_TASK and attrs[c.EVENT] == c.EV_TASK_REVOKED
    assert attrs[c.CAUSE] == "task_revoked" and attrs[c.REVOKED] is True
    assert attrs[c.REVOKE_REASON] == "terminated" and attrs["ws.revoke_signal"] == "SIGTERM"
    assert attrs[c.TASK_STATE] == "REVOKED" and attrs[c.TASK_NAME] == "revokeproj.answer"
    assert attrs[c.MESSAGE_ID] == "msg-long"
    assert attrs[c.CONVERSATION_ID] == "conv-revoke" and attrs[c.CONNECTION_ID] == "conn-revoke"
    # The child's SIGTERM handler raises SystemExit in the task and Celery still sends
    # task_postrun: its ws.task may be exported, but never as a success.
    for task in [s for s in by_name(spans, c.SPAN_TASK) if s.attributes[c.TASK_ID] == running]:
        assert task.is_error and "SystemExit" in task.status_message
        assert c.TASK_STATE not in task.attributes

    stop = one(spans, c.SPAN_REVOKE, running)
    assert stop.service == "web" and by_id[stop.parent_id].name == c.SPAN_RECEIVE
    assert stop.attributes[c.MESSAGE_ID] == "msg-stop" and stop.attributes[c.HOP] == "receive"
    assert stop.attributes[c.EVENT] == c.EV_REVOKE
    assert stop.attributes["ws.revoke_terminate"] is True
    assert stop.attributes["ws.revoke_signal"] == "SIGTERM"
    assert stop.attributes[c.CONVERSATION_ID] == "conv-revoke"

    skipped = one(spans, "ws.task_revoked", queued)
    assert skipped.attributes[c.REVOKE_REASON] == "revoked"
    assert "ws.revoke_signal" not in skipped.attributes
    assert skipped.attributes[c.MESSAGE_ID] == "msg-queued"
    cancel = one(spans, c.SPAN_REVOKE, queued)
    assert cancel.attributes["ws.revoke_terminate"] is False
    assert cancel.attributes[c.MESSAGE_ID] == "msg-cancel-queued"

    expired = one(spans, "ws.task_revoked", expiring)
    assert expired.attributes[c.REVOKE_REASON] == "expired"
    assert expired.attributes[c.MESSAGE_ID] == "msg-expiring"
    assert len(by_name(read_spans(project["traces"]), "ws.task_revoked")) == 3


def test_revoke_of_several_ids_names_them_all(project: dict) -> None:
    script = textwrap.dedent(
        """
        import django

        django.setup()
        from wstrace import provider
        from revokeproj.celery import app

        app.control.revoke(["a-1", "a-2"])
        provider.flush()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=project["dir"],
        env={**project["env"], "WSTRACE_SERVICE": "web"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    revoke = by_name(wait_for(project["traces"], lambda s: by_name(s, c.SPAN_REVOKE)), "ws.revoke")
    assert revoke[0].attributes[c.TASK_ID] == "a-1"
    assert revoke[0].attributes["ws.task_ids"] == ["a-1", "a-2"]
    assert c.HOP not in revoke[0].attributes  # no enclosing span: no hop to borrow
