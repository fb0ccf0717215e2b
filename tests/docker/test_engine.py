"""The engine itself: a container of the local image runs the venv's python with host mounts."""

from __future__ import annotations

import sys

import pytest

from tests.docker.engine import ensure_image, host_mounts

pytestmark = pytest.mark.docker


def test_a_container_runs_the_venv_python_on_the_host_network(docker_client, image):
    out = docker_client.containers.run(
        image,
        [sys.executable, "-c", "import sys, polars, daphne, celery; print(sys.prefix)"],
        network_mode="host",
        volumes=host_mounts(),
        remove=True,
    )
    assert out.decode().strip() == sys.prefix


def test_the_image_is_built_from_busybox_when_missing(docker_client):
    tag = "wstrace-base:selftest"
    try:
        assert ensure_image(docker_client, tag) == tag
        out = docker_client.containers.run(
            tag, ["sh", "-c", "echo built"], network_mode="host", remove=True
        )
        assert out.decode().strip() == "built"
    finally:
        docker_client.images.remove(tag, force=True)
