"""A dead or silent OTLP endpoint costs a Celery worker no time to start or to stop.

A real prefork worker of the example chat app is started, runs one task, and is
stopped (SIGTERM, a warm shutdown) with wstrace off, with ``EXPORTERS=file,otlp`` pointed at a port
nothing listens on (connection refused), and at a black hole (a TCP server that
accepts and never answers); once more at a live collector, which must receive
the ``ws.worker_ready`` span. Time to ready is from the spawn to Celery's
``ready.`` line; time to exit from the SIGTERM until the whole process group is
gone (the prefork children flush when they exit). The median instrumented time
must be within ``TOLERANCE`` of the uninstrumented one. Celery's own warm
shutdown takes either ~1.9 s or ~2.9 s (its pool threads poll once a second),
and a loaded machine stretches a start by seconds: the median of ``ROUNDS`` runs
keeps that out of the comparison, and a difference over the tolerance is measured
again (up to ``MAX_ROUNDS``) before it fails. ``-s`` prints the table that
benchmarks/README.md records.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from celery import Celery
from wsanalyze.demo.processes import POLL
from wsanalyze.demo.stack import Stack

from .endpoints import BlackHole, Collector, dead_endpoint

pytestmark = pytest.mark.stack

TOLERANCE = 1.0  # seconds an instrumented worker may take beyond an uninstrumented one
ROUNDS = 3  # each setup is measured this many times (interleaved); the median counts
MAX_ROUNDS = 6  # on a loaded machine, more rounds before a difference counts as real
_POLL = POLL / 5


@dataclass(frozen=True)
class Timing:
    ready: float  # spawn -> "ready." in the log
    exit: float  # SIGTERM -> no process of the worker's group left
    log: str


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    with BlackHole() as hole:
        yield hole


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector() as live:
        yield live


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def run_one_task(stack: Stack) -> None:
    """Enqueue the chat app's agent task (an answer streamed to no one) and wait until it ran."""
    client = Celery("probe", broker=stack.redis_url, set_as_current=False)
    try:
        sent = client.send_task(
            "core.agents.tasks.run_agent",
            args=[uuid.uuid4().hex[:12], uuid.uuid4().hex, "hello"],
            queue=stack.queues,
        )
        result = stack.task_result(sent.id, timeout=30)
    finally:
        client.close()
    assert result is not None and result["status"] == "SUCCESS", result


def measure_worker(stack: Stack, env: dict[str, str], log: Path) -> Timing:
    """Start the stack's worker, wait for ``ready.``, run a task, SIGTERM it, wait until all exit."""
    full_env = {**os.environ, **stack.process_env("worker"), **env}
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        start = time.monotonic()
        proc = subprocess.Popen(
            stack.worker_command(),
            cwd=stack.app_dir,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        while b" ready." not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() - start > 60:
                pytest.fail(f"worker did not start\n{log.read_text(errors='replace')}")
            time.sleep(_POLL)
        ready = time.monotonic() - start
        run_one_task(stack)  # a prefork child has spans of its own to flush when it exits
        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        while proc.poll() is None or _group_alive(proc.pid):
            if time.monotonic() - stopping > 60:
                pytest.fail(f"worker did not stop\n{log.read_text(errors='replace')}")
            time.sleep(_POLL)
        return Timing(ready, time.monotonic() - stopping, log.read_text(errors="replace"))
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _otlp_env(endpoint: str) -> dict[str, str]:
    return {
        "WSTRACE_ENABLED": "1",
        "WSTRACE_EXPORTERS": "file,otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
    }


def _medians(timings: dict[str, list[Timing]], what: str) -> dict[str, float]:
    return {
        name: statistics.median(getattr(t, what) for t in runs) for name, runs in timings.items()
    }


def _too_slow(timings: dict[str, list[Timing]]) -> bool:
    """Whether a median instrumented time is more than ``TOLERANCE`` over wstrace off."""
    for what in ("ready", "exit"):
        medians = _medians(timings, what)
        if any(medians[name] > medians["off"] + TOLERANCE for name in medians if name != "off"):
            return True
    return False


def test_a_dead_or_silent_otlp_endpoint_costs_the_worker_no_time_to_start_or_stop(
    tmp_path, redis_server, black_hole, collector, capsys
):
    stack = Stack(tmp_path, redis_server.url_for(0), concurrency=2)
    setups = {
        "off": {"WSTRACE_ENABLED": "0"},
        # A user:password in the URL must never reach the log line that names the endpoint.
        "dead": _otlp_env(dead_endpoint("otel-user:s3cr3t-pw@")),
        "black hole": _otlp_env(black_hole.url),
    }
    timings: dict[str, list[Timing]] = {name: [] for name in setups}
    rounds = 0
    while rounds < ROUNDS or (_too_slow(timings) and rounds < MAX_ROUNDS):
        for name, env in setups.items():
            log = tmp_path / f"worker-{name.replace(' ', '-')}-{rounds}.log"
            timings[name].append(measure_worker(stack, env, log))
        rounds += 1
    live = measure_worker(stack, _otlp_env(collector.url), tmp_path / "worker-live.log")

    ready, exit_ = _medians(timings, "ready"), _medians(timings, "exit")
    with capsys.disabled():
        print(f"\nCelery prefork worker (-c 2), seconds, median of {rounds} runs")
        print(f"{'OTLP endpoint':<16} {'ready':>6} {'exit':>6}")
        for name in setups:
            label = "(wstrace off)" if name == "off" else name
            print(f"{label:<16} {ready[name]:>6.2f} {exit_[name]:>6.2f}")
        print(f"{'live (one run)':<16} {live.ready:>6.2f} {live.exit:>6.2f}")

    assert not _too_slow(timings), (ready, exit_)
    # The analyzer's ws.worker_ready still goes out (in the background), to the collector
    # and to the file store, which is written first even when the endpoint is down.
    assert collector.received(b"ws.worker_ready"), live.log
    assert collector.received(b"ws.task"), "a prefork child's spans go out before it exits"
    stored = "".join(path.read_text() for path in stack.trace_dir.glob("*.jsonl"))
    assert stored.count('"ws.worker_ready"') >= 2 * rounds + 1
    for name in ("dead", "black hole"):
        for run in timings[name]:
            # One line per outage from the main process (a child may log its own), none
            # of the SDK's per-batch lines, no credentials.
            lines = [line for line in run.log.splitlines() if "wstrace: cannot export" in line]
            assert 1 <= len(lines) <= 1 + stack.concurrency, run.log
            assert "/v1/traces" in lines[0], lines[0]
            assert "Transient error" not in run.log and "Failed to export" not in run.log
            assert "s3cr3t-pw" not in run.log
    assert "(connection refused)" in timings["dead"][0].log
    assert "[redacted]@" in timings["dead"][0].log
    assert "wstrace: cannot export" not in live.log
