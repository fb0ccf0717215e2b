"""The room app's test fixtures: a real Celery worker process whose spans reach the tests.

The worker runs as in production (``celery -A config worker``), in its own
process; ``wstrace_worker_env`` (from the wstrace plugin) points its wstrace at
the directory every ``wstrace`` fixture reads.
"""

import os
import subprocess
import sys
import time

import pytest
from config.celery import app as celery_app


@pytest.fixture(scope="session")
def celery_worker_process(wstrace_worker_env, tmp_path_factory):
    """A Celery worker consuming the default queue, for the whole session."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    env = {**os.environ, **wstrace_worker_env, "WSTRACE_SERVICE": "worker"}
    name = f"tests-{os.getpid()}@%h"
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo", "-Q",
               "celery", "-n", name, "-l", "info", "--without-mingle", "--without-gossip"]  # fmt: skip
    with open(log, "wb") as out:
        worker = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not celery_app.control.ping(timeout=0.5):
            if worker.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the Celery worker did not start:\n{log.read_text()}")
        yield worker
    finally:
        worker.terminate()
        worker.wait(timeout=15)
