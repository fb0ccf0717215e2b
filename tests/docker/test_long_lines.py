"""Lines over the engine's 16 KB limit, and unterminated last lines, every way they are read."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest
from wsanalyze.logparse import read_file
from wsanalyze.sources.base import Query
from wsanalyze.sources.logs import DockerLogsReader

pytestmark = pytest.mark.docker

SCRIPT = (
    "echo short; head -c 40000 /dev/zero | tr '\\0' a; echo; "
    "echo 'on stderr' >&2; printf 'no newline at the end'"
)
EXPECTED = {"stdout": [5, 40000, 21], "stderr": [9]}


@pytest.fixture(scope="module")
def container(docker_client, image):
    project = f"wstlong{uuid.uuid4().hex[:6]}"
    c = docker_client.containers.run(
        image,
        ["sh", "-c", SCRIPT],
        name=f"{project}-app-1",
        labels={"com.docker.compose.project": project, "com.docker.compose.service": "app"},
        network_mode="host",
        detach=True,
    )
    c.wait(timeout=30)
    time.sleep(0.2)
    yield project, c
    c.remove(force=True)


def _lengths(frame) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for row in frame.iter_rows(named=True):
        out.setdefault(row["stream"], []).append(len(row["line"]))
    return out


def test_the_api_reassembles_split_and_unterminated_lines(container):
    project, _ = container
    frame, _, _ = DockerLogsReader(project).lines(Query())
    assert _lengths(frame) == EXPECTED
    assert set(frame["service"]) == {"app"} and frame["engine_ts"].null_count() == 0


def test_docker_logs_t_output_loses_the_timestamps_inside_long_lines(container, tmp_path):
    _, c = container
    res = subprocess.run(["docker", "logs", "-t", c.id], capture_output=True, check=True)
    (tmp_path / "app.stdout").write_bytes(res.stdout)
    frame = read_file(tmp_path / "app.stdout")
    assert _lengths(frame) == {"stdout": EXPECTED["stdout"]}
    assert frame["line"][1] == "a" * 40000


def test_json_file_partials_are_joined(container, docker_client):
    _, c = container
    path = Path(docker_client.info()["DockerRootDir"]) / "containers" / c.id / f"{c.id}-json.log"
    if not path.exists():
        pytest.skip(f"{path} is not readable here")
    frame = read_file(path)
    assert sorted(_lengths(frame).items()) == sorted(EXPECTED.items())
    assert set(frame["service"]) == {"app"}  # from config.v2.json's compose label
