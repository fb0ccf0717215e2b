"""Every fault the example app produces for real gets the right outcome, hop and cause.

The stack (Redis, Daphne, Celery prefork, wstrace on) runs each scenario of
``wsanalyze.demo.run.ALL_SCENARIOS``; the analyzer then reads only what the
processes wrote to the trace store.
"""

from __future__ import annotations

import pytest
from wsanalyze.analysis import conversation_list, conversation_report, lost_report
from wsanalyze.demo.run import ALL_SCENARIOS

pytestmark = pytest.mark.stack


def report_of(e2e_run, name: str):
    played = e2e_run.played[name]
    return conversation_report(played.conversation_id, traces=str(e2e_run.trace_dir))


@pytest.mark.parametrize("scenario", ALL_SCENARIOS, ids=[s.name for s in ALL_SCENARIOS])
def test_fault_gets_the_right_outcome_hop_and_cause(e2e_run, scenario):
    report = report_of(e2e_run, scenario.name)
    v = report.verdict
    assert scenario.expect[0] != "?", f"no expected verdict for the app's fault {scenario.name}"
    assert scenario.matches(v.outcome, v.hop, v.cause), f"{scenario.expect}: {v.summary}"
    for message in report.messages:
        assert message.evidence and message.hint


def test_healthy_conversation_delivers_every_chunk_the_client_saw(e2e_run):
    played = e2e_run.played["healthy_two_messages"]
    report = report_of(e2e_run, "healthy_two_messages")
    transcript = played.transcript
    assert len(report.messages) == len(transcript.message_ids) == 2
    for message in report.messages:
        seen = len(transcript.seqs(message.message_id)) + (message.message_id in transcript.done)
        assert (message.outcome, message.hop, message.cause) == ("delivered", "send", "ok")
        assert message.chunks.published == message.chunks.delivered == message.chunks.sent == seen
    assert report.connections[0].closed_by == "client"
    hops = [e.hop for e in report.timeline if e.message_id == transcript.message_ids[0]]
    order = [hops.index(hop) for hop in ("receive", "enqueue", "task", "publish", "deliver")]
    assert order == sorted(order)


def test_partial_streams_count_what_reached_the_client(e2e_run):
    for name, delivered in (("task_failed", 2), ("client_disconnected", 2), ("consumer_error", 1)):
        played = e2e_run.played[name]
        message = report_of(e2e_run, name).messages[0]
        assert message.chunks.sent == len(played.transcript.seqs(message.message_id)) == delivered
        assert message.chunks.published >= delivered


def test_channel_full_counts_the_dropped_chunks(e2e_run):
    played = e2e_run.played["channel_full"]
    message = report_of(e2e_run, "channel_full").messages[0]
    received = played.transcript.seqs(message.message_id)
    # a frame written while the client was already leaving counts as sent, not as seen
    assert len(received) <= message.chunks.sent < message.chunks.published


def test_no_worker_names_the_unconsumed_queue_and_the_consumed_ones(e2e_run):
    message = report_of(e2e_run, "no_worker").messages[0]
    text = " ".join(message.evidence) + message.hint
    assert "agents-priority" in text and "celery" in text


def test_consumer_gone_and_layer_mismatch_are_told_apart_by_layer(e2e_run):
    gone = report_of(e2e_run, "consumer_gone").messages[0]
    mismatch = report_of(e2e_run, "layer_mismatch").messages[0]
    assert any("same layer" in line for line in gone.evidence)
    assert any("joined on layer" in line for line in mismatch.evidence)
    assert gone.chunks.delivered == mismatch.chunks.delivered == 0


def test_rate_limited_conversation_blames_the_refused_frame_and_the_close(e2e_run):
    report = report_of(e2e_run, "rate_limited")
    causes = {m.cause for m in report.messages if m.outcome == "lost"}
    assert causes == {"rate_limited"}
    refused = [m for m in report.messages if m.outcome == "rejected"]
    assert [(m.hop, m.cause) for m in refused] == [("receive", "rate_limited")]
    assert report.connections[0].close_code == 4004


def test_conversation_list_agrees_with_each_report(e2e_run):
    rows, problems = conversation_list(traces=str(e2e_run.trace_dir))
    by_id = {row.conversation_id: row for row in rows}
    for name, played in e2e_run.played.items():
        v = by_id[played.conversation_id].verdict
        assert played.scenario.matches(v.outcome, v.hop, v.cause), name
    assert problems == []


def test_lost_report_has_every_lost_scenario(e2e_run):
    report = lost_report(traces=str(e2e_run.trace_dir))
    groups = {(g.hop, g.cause) for g in report.groups}
    for scenario in ALL_SCENARIOS:
        outcome, hop, cause = scenario.expect
        if outcome == "lost":
            hops = {hop, *scenario.other_hops}
            assert any((h, cause) in groups for h in hops), scenario.name


def test_channel_full_hop_follows_where_the_chunks_were_dropped(e2e_run):
    report = report_of(e2e_run, "channel_full")
    message = report.messages[0]
    text = " ".join(message.evidence)
    if message.hop == "publish":
        assert "over capacity" in text
    else:
        assert message.hop == "deliver" and "channel_full" in text
