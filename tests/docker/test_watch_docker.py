"""`wsanalyze watch --logs docker:PROJECT` against a real engine: the example app's web,
worker and Redis as a compose project's containers (the ComposeProject of
test_compose_logs), a healthy conversation and a planted fault played while the watch runs,
each message printed once with the verdict `conversation --logs docker:PROJECT` gives it.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from wsanalyze.demo.client import converse

from tests.docker.test_compose_logs import ComposeProject

pytestmark = [pytest.mark.docker, pytest.mark.stack]

WSANALYZE = str(Path(sys.executable).with_name("wsanalyze"))
DEADLINE_S = 60.0


@pytest.fixture
def project(docker_client, image, tmp_path):
    """The project running (nothing played yet); its containers removed afterwards."""
    proj = ComposeProject(docker_client, image, tmp_path / "compose")
    try:
        yield proj.start()
    finally:
        proj.remove()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DOCKER_HOST", "unix:///var/run/docker.sock")
    env["NO_COLOR"] = "1"
    return env


def _lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)
    into.put(None)


async def _play(proj: ComposeProject, ids: dict[str, tuple[str, str]]) -> dict[str, object]:
    """One conversation after the other, a moment apart (logs tie tasks to them by time)."""
    stack = proj.stack
    token = stack.token()
    (healthy_c, healthy_m), (fault_c, fault_m) = ids["healthy"], ids["fault"]
    healthy = await converse(
        stack.ws_url(healthy_c, token), ["hello there"], message_ids=[healthy_m], timeout=20
    )
    await asyncio.sleep(1.1)
    fault = await converse(
        stack.ws_url(fault_c, token), ["fault:task_failed"], message_ids=[fault_m], settle=3
    )
    return {"healthy": healthy, "fault": fault}


def test_watch_follows_docker_logs_and_agrees_with_conversation(project, tmp_path):
    logs = f"docker:{project.name}"
    ids = {
        "healthy": (f"c-healthy-{project.name}", f"m-healthy-{project.name}"),
        "fault": (f"c-taskfail-{project.name}", f"m-taskfail-{project.name}"),
    }
    watch = subprocess.Popen(
        [WSANALYZE, "watch", "--logs", logs, "--json", "--interval", "0.5", "--in-flight", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=tmp_path,  # no ./.wstrace here: logs only
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=_lines, args=(watch.stdout, lines), daemon=True).start()
    try:
        time.sleep(1.0)
        assert watch.poll() is None, watch.stderr.read()
        played = asyncio.run(_play(project, ids))
        assert played["healthy"].all_done
        assert not played["fault"].all_done

        wanted = {m for _, m in ids.values()}
        printed: list[dict] = []
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                line = ""
            if line is None:
                break
            if line.strip():
                printed.append(json.loads(line))
            if wanted <= {p["message_id"] for p in printed}:
                break
        # a few more ticks: nothing printed twice
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            try:
                line = lines.get(timeout=0.25)
            except queue.Empty:
                continue
            if line is None:
                break
            if line.strip():
                printed.append(json.loads(line))
        assert watch.poll() is None, f"watch exited {watch.returncode}: {watch.stderr.read()}"

        ours = [p for p in printed if p["message_id"] in wanted]
        assert sorted(p["message_id"] for p in ours) == sorted(wanted), printed
        for conversation_id, message_id in ids.values():
            (got,) = [p for p in ours if p["message_id"] == message_id]
            assert got["conversation_id"] == conversation_id
            report = subprocess.run(
                [WSANALYZE, "conversation", conversation_id, "--logs", logs, "--json"],
                capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=60,
            )  # fmt: skip
            assert report.returncode == 0, report.stderr
            (expected,) = [
                m for m in json.loads(report.stdout)["messages"] if m["message_id"] == message_id
            ]
            triple = ("outcome", "hop", "cause")
            assert {k: got[k] for k in triple} == {k: expected[k] for k in triple}
        by_id = {p["message_id"]: p for p in ours}
        healthy = by_id[ids["healthy"][1]]
        assert healthy["outcome"] == "delivered", json.dumps(healthy, indent=1)
        fault = by_id[ids["fault"][1]]
        assert (fault["outcome"], fault["hop"], fault["cause"]) == (
            "lost", "task", "task_failed"
        ), json.dumps(fault, indent=1)  # fmt: skip

        watch.send_signal(signal.SIGINT)
        assert watch.wait(timeout=15) == 0, watch.stderr.read()
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
