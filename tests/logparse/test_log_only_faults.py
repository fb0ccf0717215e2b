"""Every fault of the example app, judged from its process logs alone by the one engine.

The real stack plays each scenario of `wsanalyze.demo.run` on the core layer (the two
worker-misconfiguration faults on stacks of their own); the stacks' process logs
(`web.log`, `worker.log`: Daphne's access lines, Celery's lines and the app's own
logfmt lines, stdout and stderr together) are all the analyzer gets. Log lines become
chain rows of the event table (`verdicts.logchains`) and the same rules as for spans
decide. Each verdict must be right, or an honest `unknown`; `conversations` and
`conversation` must agree.
"""

from __future__ import annotations

import pytest
from wsanalyze.analysis import conversation_list, conversation_report
from wsanalyze.demo.run import from_app, play

pytestmark = pytest.mark.stack

HONEST = ("unknown", None, "unknown")
# scenario → acceptable (outcome, hop, cause) from logs alone
EXPECTED: dict[str, set[tuple[str, str | None, str]]] = {
    # the consumer logged the answer sent on the socket
    "healthy": {("delivered", "send", "ok")},
    "auth_rejected": {("rejected", "auth", "auth_rejected")},  # the app logged code=4001
    # Daphne's WSREJECT, and the app's own line gives the reason (reason="origin not allowed")
    "origin_rejected": {("rejected", "connect", "origin_rejected")},
    "rate_limited": {("rejected", "receive", "rate_limited")},
    "invalid_message": {("rejected", "receive", "invalid_message")},
    "no_worker": {("lost", "task", "no_worker")},
    "task_failed": {("lost", "task", "task_failed")},
    "client_disconnected": {("lost", "deliver", "client_disconnected")},
    # the app's group lines: the socket had left its group for the whole run
    "consumer_gone": {("lost", "deliver", "consumer_gone")},
    "channel_full": {("lost", "publish", "channel_full")},  # channels_redis's INFO line
    "consumer_error": {("lost", "deliver", "consumer_error")},
    "channel_layer_unavailable": {("lost", "publish", "channel_layer_unavailable")},
    # web and worker each logged the channel layer they loaded, and they differ
    "layer_mismatch": {("lost", "deliver", "layer_mismatch")},
}


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    import time

    workdir = tmp_path_factory.mktemp("logonly")
    scenarios = from_app("core")
    assert {s.name for s in scenarios} == set(EXPECTED), "a fault of the app has no expectation"
    # the rate-limit burst leaves the worker a backlog: play it last
    scenarios = sorted(scenarios, key=lambda s: s.name == "rate_limited")

    def pause(text: str) -> None:
        # Daphne's access stamps are whole seconds: one conversation per second at least
        if text.startswith("conversation:"):
            time.sleep(1.1)

    runs = play(workdir, scenarios, progress=pause)
    errors = [f"{p.scenario.name}: {p.error}" for p in runs if p.error]
    assert not errors, errors
    stacks = sorted(p for p in workdir.glob("stack-*") if p.is_dir())
    # only the process logs: the traces the stacks also wrote are not read
    listed = {}
    for d in stacks:
        rows, _ = conversation_list(logs=str(d))
        listed.update({r.conversation_id: (r, d) for r in rows})
    return runs, listed


@pytest.mark.parametrize("scenario", sorted(EXPECTED))
def test_log_only_verdict_is_right_or_honestly_unknown(played, scenario):
    runs, listed = played
    run = next(r for r in runs if r.scenario.name == scenario)
    row, stack_dir = listed[run.conversation_id]
    report = conversation_report(run.conversation_id, logs=str(stack_dir))
    v = report.verdict
    assert (v.outcome, v.hop, v.cause) in EXPECTED[scenario] | {HONEST}, (v, report.messages)
    # `conversations` and `conversation` give the same verdict for the same evidence
    assert (row.verdict.outcome, row.verdict.hop, row.verdict.cause) == (v.outcome, v.hop, v.cause)
    assert v.summary and v.confidence in ("exact", "path", "time", "inferred")
    if (v.outcome, v.cause) == ("delivered", "ok"):
        # the chat app logs each answer it sends: the line says so, nothing is inferred
        assert v.confidence == "path"
        assert all(m.rule == "log_sent" for m in report.messages)
        assert any("answer sent" in line for m in report.messages for line in m.evidence)
    for m in report.messages:  # every log-only verdict names the lines it was read from
        assert any(line.startswith("log: ") for line in m.evidence)
    assert {e.source for e in report.timeline} == {"log"}
