"""Every fault of the example app, diagnosed from its Daphne and Celery logs alone.

The real stack plays each scenario of `wsanalyze.demo.run` on the core layer (the two
worker-misconfiguration faults on stacks of their own); the stacks' process logs
(`web.log`, `worker.log`: plain, stdout and stderr together) are all the analyzer
gets. Each verdict must be right, or `unknown` with a reason — never a wrong cause.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from wsanalyze.demo.run import from_app, play
from wsanalyze.logparse.diagnose import diagnose
from wsanalyze.sources.log_files import load_log_events

pytestmark = pytest.mark.stack

# scenario → acceptable (outcome, hop, cause) from logs alone
EXPECTED: dict[str, set[tuple[str, str | None, str]]] = {
    "healthy": {("unknown", None, "unknown")},  # deliveries are not logged
    "auth_rejected": {("unknown", None, "unknown")},  # 4001 after accept: no code logged
    "origin_rejected": {("rejected", "connect", "handshake_rejected")},
    # the 4004 close lands while tasks still run (lost) or after they ended (unknown)
    "rate_limited": {
        ("lost", "send", "unknown"),
        ("unknown", None, "unknown"),
        ("in_flight", "task", "unknown"),  # its last tasks still ran when the logs ended
    },
    "invalid_message": {("unknown", None, "unknown")},
    "no_worker": {("unknown", None, "unknown")},
    "task_failed": {("lost", "task", "task_failed")},
    "client_disconnected": {("lost", "send", "unknown")},
    "consumer_gone": {("unknown", None, "unknown")},  # silent in every log
    "channel_full": {("lost", "publish", "channel_full")},
    "consumer_error": {("lost", "deliver", "consumer_error")},
    "channel_layer_unavailable": {("lost", "publish", "channel_layer_unavailable")},
    "layer_mismatch": {("unknown", None, "unknown")},  # silent in every log
}


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    import time

    workdir = tmp_path_factory.mktemp("logonly")
    scenarios = from_app("core")
    assert {s.name for s in scenarios} == set(EXPECTED), "a fault of the app has no expectation"
    # the rate-limit burst leaves the worker a backlog: play it last, so the other
    # conversations' tasks reach an idle worker (a busy one makes time correlation refuse)
    scenarios = sorted(scenarios, key=lambda s: s.name == "rate_limited")

    def pause(text: str) -> None:
        # Daphne's access stamps are whole seconds: one conversation per second at least,
        # or time alone cannot tell back-to-back conversations apart (it then says unknown)
        if text.startswith("conversation:"):
            time.sleep(1.1)

    runs = play(workdir, scenarios, progress=pause)
    errors = [f"{p.scenario.name}: {p.error}" for p in runs if p.error]
    assert not errors, errors
    stacks = sorted(p for p in workdir.glob("stack-*") if p.is_dir())
    # only the process logs: the traces the stacks also wrote are not read
    events = {d: load_log_events(d).events.collect() for d in stacks}
    return runs, events


def _events_of(events: dict[Path, pl.DataFrame], conversation_id: str) -> pl.DataFrame:
    for frame in events.values():
        if frame.filter(pl.col("conversation_id") == conversation_id).height:
            return frame
    raise AssertionError(f"no log line names {conversation_id}")


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_log_only_verdict_is_right_or_honestly_unknown(played, scenario):
    runs, events = played
    run = next(r for r in runs if r.scenario.name == scenario)
    frame = _events_of(events, run.conversation_id)
    v = diagnose(frame, run.conversation_id).verdict
    assert (v.outcome, v.hop, v.cause) in EXPECTED[scenario], v.summary
    assert v.summary and v.confidence in ("exact", "path", "time")
    assert v.wstrace_would_add
