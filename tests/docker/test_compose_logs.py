"""The example app's web, worker and Redis as containers of a compose project, read back
through the Docker API, from `docker logs -t` files, from a compose-format file and from the
engine's own json-file logs: the same events every way.

The containers carry the labels compose sets (com.docker.compose.project / .service) and
run the exact processes `wsanalyze.demo.stack.Stack` runs (web_command, worker_command,
process_env), on the host network with the host's Python mounted read-only.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from wsanalyze.demo.client import converse
from wsanalyze.demo.processes import free_port
from wsanalyze.demo.redis_server import find_redis_server
from wsanalyze.demo.stack import Stack
from wsanalyze.sources.base import Query, SourceError
from wsanalyze.sources.logs import DockerLogsReader, load_log_events

from tests.docker.engine import host_mounts, wait_for_log


def judge(events: pl.DataFrame, conversation: str):
    """The one engine's report of a conversation from log rows alone."""
    from wsanalyze.verdicts import analyze_conversation

    return analyze_conversation(events.lazy(), conversation)


pytestmark = [pytest.mark.docker, pytest.mark.stack]  # the app's processes, in containers

COMPARED = [
    "ts", "service", "event", "hop", "status", "cause", "conversation_id",
    "task_id", "task_name", "exception", "close_code", "group", "trace_id",
]  # fmt: skip

BASE_ENV = {"HOME": "/root", "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


class ComposeProject:
    """web + worker + redis containers labelled as one compose project."""

    def __init__(self, client, image: str, workdir: Path):
        self.client, self.image, self.workdir = client, image, workdir
        self.name = f"wst{uuid.uuid4().hex[:8]}"
        self.redis_port = free_port()
        # wstrace on: the same run gives spans (in the mounted workdir) beside the logs
        self.stack = Stack(workdir, f"redis://127.0.0.1:{self.redis_port}/0", wstrace_enabled=True)
        self.containers: dict[str, object] = {}

    def run(self, service: str, command: list[str], env: dict[str, str], cwd: str = "/"):
        container = self.client.containers.run(
            self.image,
            command,
            name=f"{self.name}-{service}-1",
            detach=True,
            network_mode="host",
            volumes=host_mounts(self.workdir),
            environment={**BASE_ENV, **env},
            working_dir=cwd,
            labels={
                "com.docker.compose.project": self.name,
                "com.docker.compose.service": service,
                "com.docker.compose.container-number": "1",
            },
        )
        self.containers[service] = container
        return container

    def start(self) -> ComposeProject:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.stack.trace_dir.mkdir(parents=True, exist_ok=True)
        redis = [find_redis_server(), "--port", str(self.redis_port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no"]  # fmt: skip
        wait_for_log(self.run("redis", redis, {}), "Ready to accept connections")
        app = str(self.stack.app_dir)
        web = self.run("web", self.stack.web_command(), self.stack.process_env("web"), app)
        worker = self.run(
            "worker", self.stack.worker_command(), self.stack.process_env("worker"), app
        )
        wait_for_log(worker, " ready.", 90)
        wait_for_log(web, "Listening on TCP address", 60)
        return self

    def stop(self) -> None:
        for container in self.containers.values():
            container.stop(timeout=10)

    def remove(self) -> None:
        for container in self.containers.values():
            container.remove(force=True)


async def _drive(stack: Stack) -> dict[str, object]:
    """One conversation after another, a moment apart: logs carry no conversation id for a
    task, so only time ties it to a connection (overlapping ones are left unassigned)."""
    token = stack.token()
    gap = 1.1
    healthy = await converse(stack.ws_url("c-healthy", token), ["hello there"], timeout=20)
    await asyncio.sleep(gap)
    failed = await converse(stack.ws_url("c-taskfail", token), ["fault:task_failed"], settle=3)
    await asyncio.sleep(gap)
    crashed = await converse(stack.ws_url("c-crash", token), ["fault:consumer_error"], settle=3)
    await asyncio.sleep(gap)
    origin = await converse(
        stack.ws_url("c-origin", token), ["hello"], origin="http://evil.example", timeout=5
    )
    await asyncio.sleep(gap)
    no_worker = await converse(stack.ws_url("c-noworker", token), ["fault:no_worker"], settle=2)
    return {
        "healthy": healthy,
        "failed": failed,
        "crashed": crashed,
        "origin": origin,
        "no_worker": no_worker,
    }


@pytest.fixture(scope="module")
def project(docker_client, image, tmp_path_factory):
    """The project, driven through a healthy conversation and three faults, then stopped."""
    proj = ComposeProject(docker_client, image, tmp_path_factory.mktemp("compose"))
    try:
        proj.start()
        proj.started_at = datetime.now(UTC)
        proj.transcripts = asyncio.run(_drive(proj.stack))
        time.sleep(1.0)
        proj.stop()
        yield proj
    finally:
        proj.remove()


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(COMPARED).sort(COMPARED, nulls_last=True)


@pytest.fixture(scope="module")
def api_events(project) -> pl.DataFrame:
    return DockerLogsReader(project.name).read(Query()).events.collect()


@pytest.fixture(scope="module")
def log_dir(project, tmp_path_factory) -> Path:
    """`docker logs -t` of every container (stdout and stderr apart), and a compose file."""
    out = tmp_path_factory.mktemp("logs")
    compose_lines = []
    for service, container in project.containers.items():
        res = subprocess.run(
            ["docker", "logs", "-t", container.id], capture_output=True, check=True
        )
        (out / f"{service}.stdout").write_bytes(res.stdout)
        (out / f"{service}.stderr").write_bytes(res.stderr)
        prefix = f"{service}-1".ljust(10) + " | "
        for stream in (res.stdout, res.stderr):
            compose_lines += [prefix + ln for ln in stream.decode().splitlines()]
    # compose prints each container's lines as they come: order them by engine time
    compose_lines.sort(key=lambda ln: ln.split(" | ", 1)[1][:30])
    (out / "compose").mkdir()
    (out / "compose" / "compose.log").write_text("\n".join(compose_lines) + "\n")
    return out


def test_the_app_really_ran_in_containers(project):
    t = project.transcripts
    assert t["healthy"].all_done
    assert not t["failed"].all_done
    assert t["crashed"].close_code == 1011
    assert t["origin"].handshake_status == 403


def test_api_finds_the_project_by_label_and_names_services(api_events, project):
    assert set(api_events["service"]) >= {"web", "worker", "redis"}
    reader = DockerLogsReader(project.name)
    assert {c.name for c in reader.containers()} == {
        f"{project.name}-{s}-1" for s in ("web", "worker", "redis")
    }
    with pytest.raises(SourceError, match="no containers"):
        DockerLogsReader("no-such-project-xyz").containers()
    # `--logs docker`: every compose project's containers
    every = {c.name for c in DockerLogsReader(None).containers()}
    assert {f"{project.name}-{s}-1" for s in ("web", "worker", "redis")} <= every


def test_api_events_show_each_conversation(api_events):
    def events_of(cid, producer="daphne"):
        rows = api_events.filter(pl.col("conversation_id") == cid, pl.col("name") == producer)
        return rows["event"].to_list()

    assert events_of("c-healthy")[:2] == ["ws_connecting", "ws_connect"]
    assert "ws_reject" in events_of("c-origin")
    # the app's own logfmt lines, read through the API: its group join, the answer it sent
    assert {"group_add", "receive", "send"} <= set(events_of("c-healthy", "app"))
    assert "reject" in events_of("c-origin", "app")
    crash = api_events.filter(pl.col("event") == "app_exception").row(0, named=True)
    assert crash["service"] == "web" and crash["close_code"] == 1011
    # Celery's own line (the app's logfmt "task raised" line is a task_failed row too)
    failed = api_events.filter(
        (pl.col("event") == "task_failed") & (pl.col("name") == "celery")
    ).row(0, named=True)
    assert failed["service"] == "worker" and "AgentToolError" in failed["exception"]
    assert "Traceback" in failed["detail"]
    received = api_events.filter(
        (pl.col("event") == "task_received") & (pl.col("name") == "celery")
    )
    succeeded = api_events.filter(
        (pl.col("event") == "task_succeeded") & (pl.col("name") == "celery")
    )
    assert received.height >= 3 and succeeded.height >= 1
    assert set(succeeded["task_id"]) <= set(received["task_id"])
    assert api_events.filter(pl.col("service") == "redis", pl.col("event") == "redis_ready").height


def test_stdout_and_stderr_stay_apart(api_events):
    streams = {
        (row["event"], json.loads(row["attributes"])["stream"])
        for row in api_events.iter_rows(named=True)
    }
    assert ("ws_connect", "stdout") in streams
    assert ("app_exception", "stderr") in streams


def test_docker_logs_files_give_the_same_events_as_the_api(api_events, log_dir):
    files = load_log_events(log_dir, tz=None)
    assert not files.problems
    from_files = files.events.collect().filter(~pl.col("origin").str.contains("compose.log"))
    assert _sorted(from_files).equals(_sorted(api_events))


def test_a_compose_format_file_gives_the_same_events_as_the_api(api_events, log_dir):
    compose = load_log_events(log_dir / "compose" / "compose.log").events.collect()
    assert _sorted(compose).equals(_sorted(api_events))


def test_the_engines_json_file_logs_give_the_same_events(api_events, project, docker_client):
    root = Path(docker_client.info()["DockerRootDir"]) / "containers"
    if not root.is_dir():
        pytest.skip(f"the engine's data root {root} is not readable here")
    from wsanalyze.logparse import parse_lines, read_file
    from wsanalyze.logparse.correlate import correlate

    lines = [
        read_file(root / container.id / f"{container.id}-json.log")  # service: config.v2.json
        for container in project.containers.values()
    ]
    events = correlate(parse_lines(pl.concat(lines)).collect())
    assert _sorted(events).equals(_sorted(api_events))


def test_engine_time_reconciles_local_second_stamps(api_events):
    """Daphne stamps local time (Django sets TZ from TIME_ZONE: America/Chicago here) in whole
    seconds; the engine stamps UTC in ns. The service's offset is found from the pairs, and
    every access line's local stamp agrees with its engine time to the second."""
    access = api_events.filter(pl.col("event").is_in(["ws_connecting", "ws_connect"]))
    offsets = set()
    for row in access.iter_rows(named=True):
        attrs = json.loads(row["attributes"])
        offsets.add(attrs["utc_offset_s"])
        local = datetime.fromisoformat(attrs["local_time"]).replace(tzinfo=UTC)
        shifted = local + timedelta(seconds=attrs["utc_offset_s"])
        assert timedelta(0) <= row["ts"] - shifted < timedelta(seconds=1.001)
    assert len(offsets) == 1 and next(iter(offsets)) % 900 == 0


def test_since_and_until_are_pushed_to_the_engine(project, api_events):
    reader = DockerLogsReader(project.name)
    crash_ts = api_events.filter(pl.col("event") == "app_exception")["ts"][0]
    since = crash_ts - timedelta(milliseconds=1)
    frame, _, _ = reader.lines(Query(since=since))
    assert frame.height and frame["engine_ts"].min() >= since - timedelta(seconds=1)
    total, _, _ = reader.lines(Query())
    assert frame.height < total.height
    until = project.started_at
    before, _, _ = reader.lines(Query(until=until))
    assert before.height and before["engine_ts"].max() <= until + timedelta(seconds=1)
    assert before.height < total.height


# conversation → (outcome, hop, cause, confidence) that the logs alone support
LOG_ONLY = {
    # the app logged the answer sent on the socket
    "c-healthy": ("delivered", "send", "ok", "path"),
    "c-taskfail": ("lost", "task", "task_failed", "path"),
    # the app's own error line names the message; Daphne's crash line carries its exception
    "c-crash": ("lost", "deliver", "consumer_error", "path"),
    # Daphne's WSREJECT, and the app's line gives the reason
    "c-origin": ("rejected", "connect", "origin_rejected", "path"),
    # the app logged the enqueue to a queue nobody consumes; no worker's line received it
    "c-noworker": ("lost", "task", "no_worker", "path"),
}
# ... unless the logs end within the in-flight horizon of the enqueue: then a busy worker
# might still take it, and the verdict says the evidence ran out instead
HONEST = {"c-noworker": ("lost", "task", "unknown", "path")}


@pytest.mark.parametrize("conversation", sorted(LOG_ONLY))
def test_log_only_verdicts_from_the_api(api_events, conversation):
    v = judge(api_events, conversation).verdict
    got = (v.outcome, v.hop, v.cause, v.confidence)
    assert got in (LOG_ONLY[conversation], HONEST.get(conversation)), v.summary


def test_log_only_verdicts_are_the_same_from_files_and_the_api(api_events, log_dir):
    files = load_log_events(log_dir).events.collect()
    files = files.filter(~pl.col("origin").str.contains("compose.log"))
    compose = load_log_events(log_dir / "compose" / "compose.log").events.collect()
    for conversation in LOG_ONLY:
        expected = judge(api_events, conversation).verdict
        for frame in (files, compose):
            got = judge(frame, conversation).verdict
            assert (got.outcome, got.hop, got.cause, got.confidence) == (
                expected.outcome, expected.hop, expected.cause, expected.confidence
            )  # fmt: skip


def test_the_log_only_report_renders_with_the_conversation_json_contract(api_events):
    from wsanalyze.render.json import conversation_json

    doc = conversation_json(judge(api_events, "c-taskfail"))
    assert doc["verdict"]["cause"] == "task_failed" and doc["verdict"]["confidence"]
    message = doc["messages"][0]
    assert message["confidence"] and any(e.startswith("log: ") for e in message["evidence"])
    assert {"ts", "source", "service", "hop", "event"} <= set(doc["timeline"][0])


def test_with_traces_and_logs_the_timeline_shows_both(project):
    """`conversation --traces DIR --logs docker:PROJECT`: spans and log lines side by side."""
    from wsanalyze.analysis import conversation_report

    report = conversation_report(
        "c-taskfail", traces=str(project.stack.trace_dir), logs=f"docker:{project.name}"
    )
    sources = {entry.source for entry in report.timeline}
    assert sources == {"trace", "log"}
    assert report.verdict.cause == "task_failed"
    log_events = {e.event for e in report.timeline if e.source == "log"}
    assert {"ws_connecting", "ws_connect", "task_received", "task_failed"} <= log_events


def test_the_engines_containers_directory_can_be_given_whole(project, docker_client, api_events):
    """`--logs /var/lib/docker/containers/<id>`: the json-file log is read, the engine's
    config files beside it are not (they only name the service)."""
    root = Path(docker_client.info()["DockerRootDir"]) / "containers"
    if not root.is_dir():
        pytest.skip(f"the engine's data root {root} is not readable here")
    web = project.containers["web"]
    events = load_log_events(root / web.id).events.collect()
    assert events.height and set(events["service"]) == {"web"}
    assert all(o.split(":")[0].endswith("-json.log") for o in events["origin"])
    expected = api_events.filter(pl.col("service") == "web")
    assert (
        events.select("ts", "event")
        .sort("ts", "event")
        .equals(expected.select("ts", "event").sort("ts", "event"))
    )
