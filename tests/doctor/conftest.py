"""The doctor's test project (tests/doctor/proj), its own Redis, and Celery workers for it."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from wsanalyze.demo.redis_server import RedisServer
from wsanalyze.doctor import Target, run_doctor

PROJ = Path(__file__).resolve().parent / "proj"


@pytest.fixture(scope="session")
def doctor_redis():
    """A Redis of the doctor tests alone: no other test's worker answers their pings."""
    with RedisServer() as server:
        yield server


class Worker:
    """`celery -A proj worker` with the given environment, until stopped."""

    def __init__(self, env: dict[str, str], queues: str, log: Path):
        self.log = log
        argv = [sys.executable, "-m", "celery", "-A", "proj", "worker", "-Q", queues, "-c", "1",
                "-P", "solo", "--without-gossip", "--without-mingle", "--without-heartbeat",
                "-n", f"doctor-{uuid.uuid4().hex[:6]}@%h", "-l", "info"]  # fmt: skip
        full = {**_base_env(), **env}
        self.proc = subprocess.Popen(argv, cwd=PROJ, env=full, stdout=log.open("wb"),
                                     stderr=subprocess.STDOUT)  # fmt: skip
        deadline = time.monotonic() + 60
        while b" ready." not in log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"worker did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _base_env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["PYTHONPATH"] = str(PROJ)
    return env


@pytest.fixture
def start_worker(tmp_path):
    workers = []

    def start(env: dict[str, str], queues: str = "celery") -> Worker:
        worker = Worker(env, queues, tmp_path / f"worker{len(workers)}.log")
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def project_env(doctor_redis, tmp_path):
    """A healthy configuration on a database of its own."""
    db = int(uuid.uuid4().int % 15) + 1
    return {
        "REDIS_URL": doctor_redis.url_for(db),
        "WSTRACE_DIR": str(tmp_path / "wstrace"),
        "DJANGO_SETTINGS_MODULE": "proj.settings",
    }


@pytest.fixture
def doctor():
    """doctor(env, only=..., worker_env=...) → {check name: check} and the report."""

    def run(env: dict[str, str], only: tuple[str, ...] = (), **kwargs):
        target = Target(app_dir=PROJ, env=env, timeout=3.0)
        report = run_doctor(target, only=only, **kwargs)
        return {c["name"]: c for c in report["checks"]}, report

    return run
