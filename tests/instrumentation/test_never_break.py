"""Broken instrumentation never breaks the chat (issue 2, point 4), on the real stack.

Each test runs the example app (Daphne + Celery prefork + Redis) with wstrace
broken in one real way and checks that a client sees exactly what it sees
with wstrace off (the same frames per message, the same close), and that the
problem is logged once per process rather than once per message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from wsanalyze.demo.client import Transcript
from wsanalyze.demo.example_apps import example_app_dir
from wsanalyze.demo.processes import free_port
from wsanalyze.demo.stack import Stack

pytestmark = pytest.mark.stack

MESSAGES = ["What is the refund policy?", "And for annual plans?"]
FAST_FLUSH = {"OTEL_BSP_SCHEDULE_DELAY": "200"}
# wstrace's one line per process and outage; the OTLP exporter's own "Transient error" /
# "Failed to export" lines for every batch are kept out of the log (wstrace.export_guard).
EXPORT_FAILURE = ("cannot export spans to the OTLP endpoint", "Failed to export", "Transient error")
FLUSH_WAIT = 1.5
LOGGED_WITHIN = 20.0  # seconds a loaded machine may take to flush and log the first failure
# One prefork child: a second child exporting for the first time during the second
# conversation would legitimately log its own first failure.
ONE_CHILD = 1  # a few flush intervals: whatever wstrace logs about a batch is out by then


def shape(transcript: Transcript) -> dict[str, Any]:
    """What a client can observe of a conversation, without ids and timings."""
    per_message = []
    for message_id in transcript.message_ids:
        frames = [f for f in transcript.frames if f.get("message_id", f.get("id")) == message_id]
        per_message.append(
            {
                "frames": [f["type"] for f in frames],
                "seqs": transcript.seqs(message_id),
                "text": transcript.text(message_id),
                "done": {
                    k: v
                    for k, v in (transcript.done_for(message_id) or {}).items()
                    if k != "message_id"
                },
                "acked": bool(transcript.task_id(message_id)),
            }
        )
    return {
        "connected": transcript.connected,
        "handshake_status": transcript.handshake_status,
        "error": transcript.error,
        "messages": per_message,
        "closed": (transcript.closed_by, transcript.close_code),
        "timed_out": transcript.timed_out,
        "unexpected": transcript.unexpected,
    }


@pytest.fixture(scope="module")
def expected(shared_stack) -> dict[str, Any]:
    """The transcript shape of the conversation on the example app without wstrace."""
    plain = shared_stack(layer="core", wstrace_enabled=False)
    result = shape(plain.talk(MESSAGES))
    assert result["messages"][0]["frames"] == ["ack", *["chunk"] * 5, "done"], result
    assert result["closed"] == ("client", 1000)
    return result


def count_lines(stack: Stack, needle: str | tuple[str, ...]) -> dict[str, int]:
    """How many lines of each service's log contain ``needle`` (or one of them)."""
    needles = (needle,) if isinstance(needle, str) else needle
    return {
        service: sum(
            any(n in line for n in needles) for line in stack.log_text(service).splitlines()
        )
        for service in ("web", "worker")
    }


def converse_twice(
    stack: Stack,
    expected: dict[str, Any],
    needle: str | tuple[str, ...],
    wait: float = FLUSH_WAIT,
    logged_by: tuple[str, ...] = ("web", "worker"),
) -> tuple[dict, dict]:
    """Two conversations, each identical to the uninstrumented one; the log counts after each.

    After the first, wait until both services logged the problem (a slow machine
    flushes late), then ``wait`` more so nothing of that conversation is pending.
    """
    assert shape(stack.talk(MESSAGES)) == expected, stack.log_tails()
    deadline = time.monotonic() + LOGGED_WITHIN
    while (
        any(count_lines(stack, needle)[service] == 0 for service in logged_by)
        and time.monotonic() < deadline
    ):
        time.sleep(0.2)
    time.sleep(wait)
    after_first = count_lines(stack, needle)
    assert shape(stack.talk(MESSAGES)) == expected, stack.log_tails()
    time.sleep(wait)
    return after_first, count_lines(stack, needle)


def worker_processes(stack: Stack) -> int:
    """The worker's main process plus its prefork children."""
    return 1 + stack.concurrency


def test_an_unwritable_file_dir_changes_nothing_for_the_client(make_stack, expected, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a regular file where FILE_DIR's parent should be")
    unwritable = blocker / "traces"
    stack = make_stack(env={**FAST_FLUSH, "WSTRACE_DIR": str(unwritable)}, concurrency=ONE_CHILD)

    first, second = converse_twice(stack, expected, "cannot write traces")

    assert first == second, "logged again for later messages"
    assert first["web"] == 1, stack.log_text("web")
    assert 1 <= first["worker"] <= worker_processes(stack), stack.log_text("worker")
    assert str(unwritable) in stack.log_text("web")


@pytest.fixture
def full_tmpfs(tmp_path) -> Path:
    """A 64 KiB tmpfs with no byte left (root + mount needed)."""
    mount = tmp_path / "full"
    mount.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("a full disk is simulated with a tmpfs mount, which needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        fd = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_changes_nothing_for_the_client(make_stack, expected, full_tmpfs):
    stack = make_stack(env={**FAST_FLUSH, "WSTRACE_DIR": str(full_tmpfs)}, concurrency=ONE_CHILD)

    first, second = converse_twice(stack, expected, "No space left on device")

    assert first == second, "logged again for later messages"
    assert first["web"] == 1, stack.log_text("web")
    assert 1 <= first["worker"] <= worker_processes(stack), stack.log_text("worker")


def test_an_otlp_endpoint_that_is_down_changes_nothing_for_the_client(make_stack, expected):
    closed = f"http://127.0.0.1:{free_port()}"
    stack = make_stack(
        env={
            **FAST_FLUSH,
            "WSTRACE_EXPORTERS": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": closed,
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2",
        },
        concurrency=ONE_CHILD,
    )

    # The first refused connection is logged at once; a batch fails within the 2 s timeout.
    first, second = converse_twice(stack, expected, EXPORT_FAILURE, wait=4.0)

    assert first == second, "logged again for later messages"
    assert first["web"] == 1, stack.log_text("web")  # wstrace's line, once; none of the SDK's
    assert 1 <= first["worker"] <= worker_processes(stack), stack.log_text("worker")
    assert not list(stack.trace_dir.glob("*.jsonl")), "the file exporter was not configured"


SITECUSTOMIZE = """
# Injected by the test: a bug inside wstrace's own code ({target}).
import {module} as _target_module

def _broken(*args, **kwargs):
    raise RuntimeError("injected wstrace bug in {target}")

setattr({owner}, "{attribute}", _broken)
"""

BUGS = {
    # where the bug is: (module, owner expression, attribute, the warning it leaves)
    "accept bookkeeping (web)": (
        "wstrace.channels.connection",
        "_target_module.Connection",
        "on_accept",
        "wstrace: accept failed (RuntimeError: injected wstrace bug",
    ),
    "publish bookkeeping (worker)": (
        "wstrace.channels.layers",
        "_target_module",
        "_begin_publish",
        "wstrace: publish failed (RuntimeError: injected wstrace bug",
    ),
    "dispatch bookkeeping (web)": (
        "wstrace.channels.consumer",
        "_target_module",
        "_begin",
        "wstrace: dispatch failed (RuntimeError: injected wstrace bug",
    ),
    "enqueue bookkeeping (web)": (
        "wstrace.celery",
        "_target_module",
        "_start_enqueue",
        "wstrace: enqueue failed (RuntimeError: injected wstrace bug",
    ),
}


def sitecustomize_dir(tmp_path: Path, module: str, owner: str, attribute: str) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        textwrap.dedent(
            SITECUSTOMIZE.format(
                module=module, owner=owner, attribute=attribute, target=f"{module}.{attribute}"
            )
        )
    )
    return site


@pytest.mark.parametrize("bug", list(BUGS))
def test_an_exception_inside_wstrace_changes_nothing_for_the_client(
    make_stack, expected, tmp_path, bug
):
    module, owner, attribute, warning = BUGS[bug]
    site = sitecustomize_dir(tmp_path, module, owner, attribute)
    stack = make_stack(
        env={**FAST_FLUSH, "PYTHONPATH": os.pathsep.join([str(example_app_dir()), str(site)])},
        concurrency=ONE_CHILD,  # "once per process" is then exactly once
    )

    logged_by = ("worker",) if "(worker)" in bug else ("web",)
    first, second = converse_twice(stack, expected, warning, logged_by=logged_by)

    assert first == second, "logged again for later messages"
    assert sum(first.values()) == 1, stack.log_tails()
    for service in ("web", "worker"):  # no traceback, no other mention
        assert "injected wstrace bug" not in stack.log_text(service).replace(warning, "")


def test_a_broken_tracer_changes_nothing_for_the_client(make_stack, expected, tmp_path):
    site = sitecustomize_dir(tmp_path, "wstrace.runtime", "_target_module", "tracer")
    stack = make_stack(
        env={**FAST_FLUSH, "PYTHONPATH": os.pathsep.join([str(example_app_dir()), str(site)])},
        concurrency=ONE_CHILD,
    )

    first, second = converse_twice(stack, expected, "injected wstrace bug")

    assert first == second, "logged again for later messages"
    assert first["web"] >= 1 and first["worker"] >= 1, stack.log_tails()
    for service in ("web", "worker"):
        lines = [
            line.split("wstrace: ", 1)[-1]
            for line in stack.log_text(service).splitlines()
            if "injected wstrace bug" in line
        ]
        assert len(lines) == len(set(lines)), f"{service} repeats a warning: {lines}"
