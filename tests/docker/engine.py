"""Helpers for tests on a real Docker engine: the client, the local image, host-mounted containers.

No registry is reachable, so the image is a `docker import` of a busybox-static
rootfs (`.ci/setup-docker.sh` builds it; `ensure_image` builds it too if it is
missing). Containers run on the host network and see the host's /usr, /lib,
/lib64, /etc, the Python prefix, the venv and the checkout read-only, so the
venv's python runs inside them unchanged.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tarfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("WSTRACE_DOCKER_IMAGE", "wstrace-base:test")
REQUIRE = os.environ.get("WSTRACE_REQUIRE_DOCKER") == "1"


def client_or_skip():
    """A docker client that answers; skip without one, fail when WSTRACE_REQUIRE_DOCKER=1."""
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:
        message = f"no Docker engine reachable ({type(exc).__name__}: {exc})"
        if REQUIRE:
            pytest.fail(f"{message}, and WSTRACE_REQUIRE_DOCKER=1", pytrace=False)
        pytest.skip(message)
    return client


def _busybox() -> str:
    for candidate in (shutil.which("busybox"), "/bin/busybox", "/usr/bin/busybox"):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("busybox-static is not installed (apt-get install busybox-static)")


def ensure_image(client, image: str = IMAGE) -> str:
    """The local test image, imported from a busybox rootfs when missing."""
    import docker

    try:
        client.images.get(image)
        return image
    except docker.errors.ImageNotFound:
        pass
    busybox = Path(_busybox()).read_bytes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "tmp", "proc", "sys", "dev", "etc", "usr", "lib", "lib64", "root", "run"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(busybox), 0o755
        tar.addfile(info, io.BytesIO(busybox))
        for applet in ("sh", "cat", "echo", "sleep", "ls"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    repo, tag = image.split(":", 1)
    client.api.import_image_from_data(buf.getvalue(), repository=repo, tag=tag)
    return image


def host_mounts(*writable: Path) -> dict[str, dict[str, str]]:
    """Bind mounts: the host system and Python read-only, `writable` dirs read-write."""
    ro = ["/usr", "/lib", "/lib64", "/etc", sys.base_prefix, sys.prefix, str(ROOT)]
    mounts: dict[str, dict[str, str]] = {}
    for path in ro:
        if Path(path).exists():
            mounts[path] = {"bind": path, "mode": "ro"}
    for path in writable:
        mounts[str(path)] = {"bind": str(path), "mode": "rw"}
    return mounts


def wait_for_log(container, needle: str, timeout: float = 60.0) -> None:
    """Wait until a container's output contains `needle` (fail with its logs otherwise)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        logs = container.logs().decode(errors="replace")
        if needle in logs:
            return
        if container.status == "exited":
            break
        time.sleep(0.2)
    tail = container.logs(tail=40).decode(errors="replace")
    pytest.fail(f"{container.name}: {needle!r} not seen ({container.status})\n{tail}")
