"""The example app as a real `docker-compose` project: its own labels, its own `logs -t`.

`docker-compose` (Debian's v1) creates web, worker and redis from a generated compose
file (the local busybox image, host network, the host's Python mounted read-only,
the exact processes `wsanalyze.demo.stack.Stack` runs). `docker-compose logs -t
--no-color` then gives the same events as the Docker API for `docker:PROJECT`, and
the same log-only verdicts.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid

import polars as pl
import pytest
from wsanalyze.demo.client import converse
from wsanalyze.demo.processes import free_port
from wsanalyze.demo.redis_server import find_redis_server
from wsanalyze.demo.stack import Stack
from wsanalyze.sources.base import Query
from wsanalyze.sources.logs import DockerLogsReader, load_log_events
from wsanalyze.verdicts import analyze_conversation

from tests.docker.engine import host_mounts, wait_for_log

pytestmark = [pytest.mark.docker, pytest.mark.stack]  # the app's processes, in containers

COMPARED = ["ts", "service", "event", "hop", "status", "cause", "conversation_id", "task_id",
            "exception", "close_code"]  # fmt: skip
BASE_ENV = {"HOME": "/root", "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


def _service(image, command, env, workdir, cwd="/"):
    volumes = [f"{src}:{m['bind']}:{m['mode']}" for src, m in host_mounts(workdir).items()]
    return {
        "image": image,
        "network_mode": "host",
        "command": command,
        "environment": {**BASE_ENV, **env},
        "working_dir": cwd,
        "volumes": volumes,
    }


@pytest.fixture(scope="module")
def compose_project(docker_client, image, tmp_path_factory):
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (.ci/setup-docker.sh installs it)")
    workdir = tmp_path_factory.mktemp("realcompose")
    name = f"wstc{uuid.uuid4().hex[:8]}"
    redis_port = free_port()
    stack = Stack(workdir, f"redis://127.0.0.1:{redis_port}/0", wstrace_enabled=False)
    app = str(stack.app_dir)
    redis = [find_redis_server(), "--port", str(redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no"]  # fmt: skip
    spec = {
        "version": "3",
        "services": {
            "redis": _service(image, redis, {}, workdir),
            "web": _service(image, stack.web_command(), stack.process_env("web"), workdir, app),
            "worker": _service(
                image, stack.worker_command(), stack.process_env("worker"), workdir, app
            ),
        },
    }
    compose_file = workdir / "docker-compose.yml"
    compose_file.write_text(json.dumps(spec, indent=2))  # JSON is YAML
    base = [binary, "-p", name, "-f", str(compose_file)]
    subprocess.run([*base, "up", "-d"], check=True, capture_output=True, timeout=180)
    try:
        containers = {
            c.labels["com.docker.compose.service"]: c
            for c in docker_client.containers.list(
                all=True, filters={"label": f"com.docker.compose.project={name}"}
            )
        }
        wait_for_log(containers["redis"], "Ready to accept connections")
        wait_for_log(containers["worker"], " ready.", 90)
        wait_for_log(containers["web"], "Listening on TCP address", 60)

        async def drive():
            token = stack.token()
            await converse(stack.ws_url("rc-healthy", token), ["hello"], timeout=20)
            await asyncio.sleep(1.1)
            await converse(stack.ws_url("rc-taskfail", token), ["fault:task_failed"], settle=3)
            await asyncio.sleep(1.1)
            await converse(stack.ws_url("rc-crash", token), ["fault:consumer_error"], settle=3)

        asyncio.run(drive())
        subprocess.run([*base, "stop", "-t", "10"], check=True, capture_output=True, timeout=120)
        logs = subprocess.run(
            [*base, "logs", "-t", "--no-color"], check=True, capture_output=True, timeout=120
        )
        path = workdir / "compose.log"
        path.write_bytes(logs.stdout)
        yield name, path
    finally:
        subprocess.run([*base, "down", "-t", "5"], capture_output=True, timeout=120)


def test_compose_sets_the_labels_the_api_reader_finds(compose_project):
    name, _ = compose_project
    services = {c.labels["com.docker.compose.service"] for c in DockerLogsReader(name).containers()}
    assert services == {"web", "worker", "redis"}


def test_compose_logs_t_gives_the_same_events_as_the_api(compose_project):
    name, path = compose_project
    api = DockerLogsReader(name).read(Query()).events.collect()
    from_file = load_log_events(path).events.collect()
    assert from_file.height > 10
    file_rows = from_file.select(COMPARED).sort(COMPARED, nulls_last=True)
    api_rows = api.select(COMPARED).sort(COMPARED, nulls_last=True)
    # On a mismatch, the rows each side has and the other lacks (it has flaked under load).
    only_file = file_rows.join(api_rows, on=COMPARED, how="anti", nulls_equal=True)
    only_api = api_rows.join(file_rows, on=COMPARED, how="anti", nulls_equal=True)
    assert file_rows.equals(api_rows), (
        f"only in the file: {only_file.to_dicts()}; only from the API: {only_api.to_dicts()}"
    )
    for conversation, cause in (("rc-taskfail", "task_failed"), ("rc-crash", "consumer_error")):
        assert analyze_conversation(from_file.lazy(), conversation).verdict.cause == cause
        assert analyze_conversation(api.lazy(), conversation).verdict.cause == cause
    assert set(from_file.filter(pl.col("event") == "app_exception")["service"]) == {"web"}
