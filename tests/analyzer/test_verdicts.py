"""Verdict rules over hand-built event tables: one test per way a message ends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from wsanalyze.causes import CAUSE_INFO
from wsanalyze.verdicts import aggregate_lost, analyze_conversation, summarize_conversations
from wsanalyze.verdicts.rules import RULES
from wsanalyze.verdicts.testing import Trace, combine
from wstrace import conventions as c


def verdict(t: Trace, **kwargs):
    return analyze_conversation(t.frame(), t.conversation_id, **kwargs)


def triple(v) -> tuple:
    return (v.outcome, v.hop, v.cause)


def only_message(report):
    assert len(report.messages) == 1
    return report.messages[0]


def settled(t: Trace, at: float = 60_000) -> Trace:
    """Let the data window run on well past the conversation (nothing is in flight)."""
    t.span(
        "ws.accept", c.HOP_ACCEPT, c.EV_ACCEPT, at, 1, conversation_id="other", connection_id="z"
    )
    return t


# --- delivered -------------------------------------------------------------------------------


def test_healthy_message_is_delivered_at_send_with_chunk_counts():
    t = Trace()
    t.connect("k1")
    t.message("m1", "k1", chunks=5)
    t.disconnect("k1", 2000)
    report = verdict(settled(t))
    m = only_message(report)
    assert triple(m) == ("delivered", "send", "ok")
    assert (m.chunks.published, m.chunks.delivered, m.chunks.sent) == (5, 5, 5)
    assert triple(report.verdict) == ("delivered", "send", "ok")
    assert report.connections[0].outcome == "delivered"
    assert report.connections[0].closed_by == "client"


def test_an_ack_frame_without_seq_is_not_counted_as_a_chunk():
    t = Trace()
    t.connect("k1")
    ids = t.message("m1", "k1", chunks=2)
    t.send("m1", ids["receive"], 12, None)  # the ack, child of receive
    m = only_message(verdict(settled(t)))
    assert m.chunks.sent == 2
    assert m.outcome == "delivered"


def test_direct_reply_without_a_task_is_delivered():
    t = Trace()
    t.connect("k1")
    rec = t.receive("m1", "k1", 10)
    t.send("m1", rec, 11, None)
    assert triple(only_message(verdict(settled(t)))) == ("delivered", "send", "ok")


def test_stop_consumer_on_disconnect_is_not_a_crash():
    t = Trace()
    t.connect("k1")
    t.message("m1", "k1")
    t.disconnect("k1", 900, status="error", exception="channels.exceptions.StopConsumer: ")
    report = verdict(settled(t))
    assert report.connections[0].cause == "ok"
    assert triple(report.verdict) == ("delivered", "send", "ok")


# --- silent drops at publish -----------------------------------------------------------------


def test_empty_group_on_the_consumers_layer_is_consumer_gone_at_deliver():
    t = Trace()
    t.connect("k1", layer="L1")
    t.message("m1", "k1", chunks=5, deliver_upto=1)
    m = only_message(verdict(settled(t)))
    assert triple(m) == ("lost", "deliver", "consumer_gone")
    assert (m.chunks.published, m.chunks.delivered, m.chunks.sent) == (5, 1, 1)
    assert any("0 members" in line for line in m.evidence)
    assert "missing: ws.deliver" not in m.evidence  # one chunk was delivered
    assert "group" in m.hint


def test_empty_group_on_another_layer_is_layer_mismatch():
    t = Trace()
    t.connect("k1", layer="L1")
    t.message("m1", "k1", chunks=3, deliver_upto=0, layer="L2")
    m = only_message(verdict(settled(t)))
    assert triple(m) == ("lost", "deliver", "layer_mismatch")
    assert any("L2" in line for line in m.evidence)
    assert "L1" in m.hint and "L2" in m.hint


def test_pubsub_publish_with_zero_receivers_is_consumer_gone():
    t = Trace()
    t.connect("k1")
    ids = {"rec": t.receive("m1", "k1", 10)}
    enq = t.enqueue("m1", ids["rec"], 11)
    task = t.task("m1", enq, 15, 30)
    t.publish("m1", task, 20, 1, members=None, receivers=0, event=c.EV_REDIS_PUBLISH)
    assert triple(only_message(verdict(settled(t)))) == ("lost", "deliver", "consumer_gone")


def test_client_closing_before_the_empty_publish_is_client_disconnected():
    t = Trace()
    t.connect("k1")
    t.disconnect("k1", 30, by="client", code=1000)  # after chunk 1 (at ~27 ms), before chunk 2
    t.message("m1", "k1", chunks=5, deliver_upto=1)
    m = only_message(verdict(settled(t)))
    assert triple(m) == ("lost", "deliver", "client_disconnected")
    assert any("client closed" in line for line in m.evidence)


def test_over_capacity_at_publish_is_channel_full_at_publish():
    t = Trace()
    t.connect("k1")
    rec = t.receive("m1", "k1", 10)
    task = t.task("m1", t.enqueue("m1", rec, 11), 15, 100)
    for seq in (1, 2, 3):
        pub = t.publish("m1", task, 20 + seq, seq, over_capacity=1 if seq == 3 else None)
        if seq < 3:
            t.send("m1", t.deliver("m1", pub, 30 + seq, seq), 31 + seq, seq)
    m = only_message(verdict(settled(t)))
    assert triple(m) == ("lost", "publish", "channel_full")


def test_seq_gap_with_a_live_member_is_channel_full():
    t = Trace()
    t.connect("k1")
    t.message("m1", "k1", chunks=6, deliver_upto=4, members=1)
    # the builder marks undelivered chunks members=0; make them look like a live member
    for row in t.rows:
        if row["hop"] == "publish":
            row["members"] = 1
    t.disconnect("k1", 5000)
    assert triple(only_message(verdict(settled(t)))) == ("lost", "publish", "channel_full")


def test_seq_gap_after_a_capacity_check_that_refused_nothing_is_unknown_at_deliver() -> None:
    # The channels_redis stall: chunks 1-5 delivered, done published to a live member,
    # not refused, never dispatched. Calling that channel_full would send users the wrong way.
    t = Trace()
    t.connect("k1")
    t.message("m1", "k1", chunks=6, deliver_upto=5, members=1)
    for row in t.rows:
        if row["hop"] == "publish":
            row["members"] = 1
            row["over_capacity"] = 0
    t.disconnect("k1", 5000)
    m = only_message(verdict(settled(t)))
    assert triple(m) == ("lost", "deliver", "unknown")
    assert any("refused none" in line for line in m.evidence)
    assert "never dispatched" in (m.hint or "")


# --- errors ----------------------------------------------------------------------------------


def test_group_send_raising_connection_refused_is_channel_layer_unavailable_at_publish():
    t = Trace()
    t.connect("k1")
    rec = t.receive("m1", "k1", 10)
    err = (
        "redis.exceptions.ConnectionError: Error 111 connecting to 127.0.0.1:1. Connection refused."
    )
    task = t.task("m1", t.enqueue("m1", rec, 11), 15, 10, status="error", exception=err)
    t.publish("m1", task, 16, 1, status="error", exception=err)
    m = only_message(verdict(settled(t)))
    assert triple(m) == ("lost", "publish", "channel_layer_unavailable")


def test_channelfull_raised_by_send_is_channel_full():
    t = Trace()
    t.connect("k1")
    rec = t.receive("m1", "k1", 10)
    task = t.task("m1", t.enqueue("m1", rec, 11), 15, 10)
    t.publish("m1", task, 16, 1, status="error", exception="channels.exceptions.ChannelFull: ")
    assert triple(only_message(verdict(settled(t)))) == ("lost", "publish", "channel_full")


def test_task_raising_is_task_failed_at_task():
    t = Trace()
    t.connect("k1")
    ids = t.message("m1", "k1", chunks=2)
    for row in t.rows:
        if row["span_id"] == ids["task"]:
            row.update(status="error", exception="AgentToolError: the tool broke")
    m = only_message(verdict(settled(t)))
    assert triple(m) == ("lost", "task", "task_failed")
    assert (m.chunks.published, m.chunks.delivered, m.chunks.sent) == (2, 2, 2)
    assert any("AgentToolError" in line for line in m.evidence)


def test_serialization_error_in_group_send_is_task_failed_at_publish():
    t = Trace()
    t.connect("k1")
    rec = t.receive("m1", "k1", 10)
    exc = "TypeError: can not serialize 'UUID' object"
    task = t.task("m1", t.enqueue("m1", rec, 11), 15, 10, status="error", exception=exc)
    t.publish("m1", task, 16, 1, status="error", exception=exc)
    m = only_message(verdict(settled(t)))
    assert triple(m) == ("lost", "publish", "task_failed")
    assert "JSON" in m.hint


def test_handler_raising_after_a_chunk_is_consumer_error_at_deliver():
    t = Trace()
    t.connect("k1")
    rec = t.receive("m1", "k1", 10)
    task = t.task("m1", t.enqueue("m1", rec, 11), 15, 100)
    p1 = t.publish("m1", task, 20, 1)
    t.send("m1", t.deliver("m1", p1, 21, 1), 22, 1)
    p2 = t.publish("m1", task, 30, 2)
    t.deliver("m1", p2, 31, 2, status="error", exception="KeyError: 'content'")
    t.publish("m1", task, 40, 3)
    t.disconnect("k1", 35, code=1011, by="server", status="error", cause="consumer_error")
    report = verdict(settled(t))
    assert triple(only_message(report)) == ("lost", "deliver", "consumer_error")
    assert (report.connections[0].outcome, report.connections[0].cause) == (
        "lost",
        "consumer_error",
    )


def test_enqueue_refused_by_the_broker_is_broker_unavailable():
    t = Trace()
    t.connect("k1")
    rec = t.receive("m1", "k1", 10)
    t.enqueue("m1", rec, 11, status="error", exception="kombu.exceptions.OperationalError: refused")
    assert triple(only_message(verdict(settled(t)))) == ("lost", "enqueue", "broker_unavailable")


def test_span_cause_set_by_the_instrumentation_wins():
    t = Trace()
    t.connect("k1")
    rec = t.receive(
        "m1", "k1", 10, status="error", cause="invalid_message", exception="ValueError: x"
    )
    assert rec
    assert triple(only_message(verdict(settled(t)))) == ("lost", "receive", "invalid_message")


# --- the worker side -----------------------------------------------------------------------


def test_queue_no_ready_worker_consumes_is_no_worker_naming_the_queues():
    t = Trace()
    t.worker_ready(["celery"])
    t.connect("k1")
    t.enqueue("m1", t.receive("m1", "k1", 10), 11, queue="agents-priority")
    waiting = only_message(verdict(t))  # the client still waits: in flight, suspecting no_worker
    assert triple(waiting) == ("in_flight", "task", "no_worker")
    assert any("no ready worker consumes 'agents-priority'" in line for line in waiting.evidence)
    t.disconnect("k1", 500)  # the client gave up: lost
    m = only_message(verdict(t))
    assert triple(m) == ("lost", "task", "no_worker")
    assert any("agents-priority" in line and "no ws.task" in line for line in m.evidence)
    assert "agents-priority" in m.hint and "celery" in m.hint


def test_enqueue_at_the_edge_of_the_window_is_in_flight():
    t = Trace()
    t.worker_ready(["celery"])
    t.connect("k1")
    t.enqueue("m1", t.receive("m1", "k1", 10), 11, queue="celery")
    m = only_message(verdict(t))
    assert (m.outcome, m.hop) == ("in_flight", "task")
    assert triple(verdict(t).verdict)[0] == "in_flight"


def test_enqueue_long_before_the_window_ends_is_no_worker():
    t = Trace()
    t.connect("k1")
    t.enqueue("m1", t.receive("m1", "k1", 10), 11)
    assert triple(only_message(verdict(settled(t)))) == ("lost", "task", "no_worker")


def test_in_flight_window_is_configurable():
    t = Trace()
    t.connect("k1")
    t.enqueue("m1", t.receive("m1", "k1", 10), 11)
    settled(t, at=3000)
    assert only_message(verdict(t)).outcome == "in_flight"
    assert only_message(verdict(t, in_flight=timedelta(seconds=1))).outcome == "lost"


def test_task_without_an_end_long_before_the_window_ends_is_task_stuck():
    t = Trace()
    t.connect("k1")
    rec = t.receive("m1", "k1", 10)
    task = t.task("m1", t.enqueue("m1", rec, 11), 15, dur=None)
    t.publish("m1", task, 20, 1)
    assert triple(only_message(verdict(settled(t)))) == ("lost", "task", "task_stuck")


def test_long_task_still_publishing_at_the_window_edge_is_in_flight():
    t = Trace()
    t.connect("k1")
    rec = t.receive("m1", "k1", 10)
    task = t.task("m1", t.enqueue("m1", rec, 11), 15, dur=None)
    pub = t.publish("m1", task, 20, 1)
    t.send("m1", t.deliver("m1", pub, 21, 1), 22, 1)
    assert only_message(verdict(t)).outcome == "in_flight"


def test_publishes_whose_task_span_never_arrived_are_task_stuck():
    t = Trace()
    t.connect("k1")
    rec = t.receive("m1", "k1", 10)
    t.enqueue("m1", rec, 11)
    t.publish("m1", "f" * 16, 20, 1)  # parent task span never exported (worker killed)
    assert triple(only_message(verdict(settled(t)))) == ("lost", "task", "task_stuck")


def test_worker_lost_error_is_task_stuck():
    t = Trace()
    t.connect("k1")
    rec = t.receive("m1", "k1", 10)
    exc = "WorkerLostError: Worker exited prematurely: signal 9 (SIGKILL)."
    t.task("m1", t.enqueue("m1", rec, 11), 15, 10, status="error", exception=exc)
    assert triple(only_message(verdict(settled(t)))) == ("lost", "task", "task_stuck")


def test_two_task_runs_for_one_task_id_are_duplicate_delivery():
    t = Trace()
    t.connect("k1")
    ids = t.message("m1", "k1", chunks=2)
    t.task("m1", ids["enqueue"], 3000, 10)  # redelivered: same task id
    m = only_message(verdict(settled(t)))
    assert (m.cause, m.outcome, m.hop) == ("duplicate_delivery", "delivered", "send")
    assert verdict(settled(t)).verdict.cause == "duplicate_delivery"


# --- connections and closes -------------------------------------------------------------------


def test_origin_refused_before_accept_is_origin_rejected_at_connect():
    t = Trace()
    t.reject("k1", code=1000, origin_allowed=False)
    report = verdict(settled(t))
    assert triple(report.verdict) == ("rejected", "connect", "origin_rejected")
    assert report.connections[0].outcome == "rejected"


def test_anonymous_user_refused_before_accept_is_auth_rejected():
    t = Trace()
    root = t.reject("k1", code=4001)
    t.span(c.SPAN_AUTH, c.HOP_AUTH, c.EV_AUTH, 1, 1, parent=root, connection_id="k1",
           user_authenticated=False)  # fmt: skip
    assert triple(verdict(settled(t)).verdict) == ("rejected", "auth", "auth_rejected")


def test_refusal_for_another_reason_is_handshake_rejected():
    t = Trace()
    t.reject("k1", code=1000)
    assert triple(verdict(settled(t)).verdict) == ("rejected", "connect", "handshake_rejected")


def test_refusal_after_daphnes_connect_timeout_is_handshake_timeout():
    t = Trace()
    t.span(c.SPAN_CONNECT, c.HOP_CONNECT, c.EV_CONNECT, 0, 5002, connection_id="k1",
           status="error", handshake_rejected=True)  # fmt: skip
    assert triple(verdict(settled(t)).verdict) == ("rejected", "connect", "handshake_timeout")


def test_accept_then_close_4001_is_auth_rejected_at_auth():
    t = Trace()
    root = t.connect("k1", user_authenticated=False)
    t.close("k1", 10, 4001, parent=root, cause="auth_rejected")
    report = verdict(settled(t))
    assert triple(report.verdict) == ("rejected", "auth", "auth_rejected")
    assert report.connections[0].close_code == 4001


def test_message_refused_by_a_4004_close_is_rejected_at_receive_and_cut_off_answers_lost():
    t = Trace()
    t.connect("k1")
    t.message("m1", "k1", 10, chunks=3, deliver_upto=0)  # answered after the close: empty group
    rec = t.receive("m2", "k1", 12)
    t.close("k1", 13, 4004, parent=rec)
    report = verdict(settled(t))
    by_id = {m.message_id: m for m in report.messages}
    assert triple(by_id["m2"]) == ("rejected", "receive", "rate_limited")
    assert triple(by_id["m1"]) == ("lost", "deliver", "rate_limited")
    assert report.verdict.cause == "rate_limited"


def test_handler_failing_on_a_connection_the_server_closed_takes_the_close_cause():
    t = Trace()
    t.connect("k1")
    rec = t.receive("m1", "k1", 10)
    task = t.task("m1", t.enqueue("m1", rec, 11), 15, 100)
    rec2 = t.receive("m2", "k1", 12)
    t.close("k1", 13, 4004, parent=rec2)
    pub = t.publish("m1", task, 40, 1)
    t.deliver("m1", pub, 41, 1, status="error", exception="RuntimeError: send after close")
    by_id = {m.message_id: m for m in verdict(settled(t)).messages}
    assert triple(by_id["m1"]) == ("lost", "deliver", "rate_limited")
    assert any("closed connection" in line for line in by_id["m1"].evidence)


def test_close_code_table_can_be_overridden():
    t = Trace()
    root = t.connect("k1")
    t.close("k1", 10, 4010, parent=root)
    plain = verdict(settled(t))
    assert plain.connections[0].cause == "ok"
    custom = verdict(settled(t), close_codes={4010: ("auth_rejected", "auth")})
    assert triple(custom.verdict) == ("rejected", "auth", "auth_rejected")


def test_1006_without_an_app_close_is_idle_timeout():
    t = Trace()
    t.connect("k1")
    t.disconnect("k1", 500, code=1006, by="client")
    report = verdict(settled(t))
    assert (report.connections[0].outcome, report.connections[0].cause) == ("lost", "idle_timeout")


# --- chains and the conversation verdict --------------------------------------------------------


def test_conversation_verdict_is_the_first_failure_in_time():
    t = Trace()
    t.connect("k1")
    t.message("m1", "k1", 10, chunks=2)  # delivered
    t.message("m2", "k1", 200, chunks=3, deliver_upto=0)  # consumer_gone at ~215 ms
    rec = t.receive("m3", "k1", 400)
    t.enqueue("m3", rec, 401, status="error", exception="OperationalError: broker down")
    report = verdict(settled(t))
    assert triple(report.verdict) == ("lost", "deliver", "consumer_gone")
    assert "m2" in report.verdict.summary


def test_clock_skew_cannot_put_a_task_before_its_enqueue():
    t = Trace()
    t.connect("k1")
    ids = t.message("m1", "k1", 100, chunks=1)
    for row in t.rows:  # the worker's clock runs 80 ms behind
        if row["service"] == "worker":
            row["ts"] -= timedelta(milliseconds=80)
            row["end_ts"] -= timedelta(milliseconds=80)
    report = verdict(settled(t))
    order = [e.span_id for e in report.timeline]
    assert order.index(ids["enqueue"]) < order.index(ids["task"])
    hops = [e.hop for e in report.timeline if e.message_id == "m1"]
    assert hops == ["receive", "enqueue", "task", "publish", "deliver", "send"]


def test_spans_without_ids_inherit_them_from_their_parent():
    t = Trace()
    t.connect("k1")
    ids = t.message("m1", "k1", chunks=1)
    # a Celery contrib span under the task, written without baggage
    t.span("run/run_agent", None, None, 16, 2, parent=ids["task"], service="worker",
           conversation_id=None)  # fmt: skip
    report = verdict(settled(t))
    inherited = [e for e in report.timeline if e.name == "run/run_agent"]
    assert inherited and inherited[0].message_id == "m1"


def test_a_frame_that_must_be_answered_and_started_nothing_says_what_is_missing():
    t = Trace()
    t.connect("k1")
    t.receive("m1", "k1", 10, frame_type="message", expects_answer=True)
    m = only_message(verdict(settled(t)))
    assert triple(m) == ("lost", "enqueue", "unknown")
    assert any("missing" in line for line in m.evidence)


def test_a_frame_that_starts_no_work_by_design_is_delivered_as_handled():
    t = Trace()
    t.connect("k1")
    t.receive("m1", "k1", 10, frame_type="typing")
    m = only_message(verdict(settled(t)))
    assert triple(m) == ("delivered", "send", "ok")
    assert "handled" in m.summary and "typing" in m.summary


# --- many conversations ---------------------------------------------------------------------------


def _two_conversations() -> tuple[Trace, Trace]:
    ok = Trace("ok-1")
    ok.connect("k1")
    ok.message("m1", "k1")
    gone = Trace("gone-1", start=ok.start + timedelta(seconds=5))
    gone.connect("k2")
    gone.message("m2", "k2", chunks=4, deliver_upto=0)
    settled(gone)
    return ok, gone


def test_summaries_give_each_conversation_its_verdict_newest_first():
    rows = summarize_conversations(combine(*_two_conversations()))
    by_id = {r.conversation_id: r for r in rows}
    assert triple(by_id["ok-1"].verdict) == ("delivered", "send", "ok")
    assert triple(by_id["gone-1"].verdict) == ("lost", "deliver", "consumer_gone")
    starts = [r.first_ts for r in rows]
    assert starts == sorted(starts, reverse=True)


def test_lost_messages_are_grouped_by_hop_and_cause():
    report = aggregate_lost(combine(*_two_conversations()))
    assert report.lost == 1 and report.total_messages == 2
    group = report.groups[0]
    assert (group.hop, group.cause, group.count) == ("deliver", "consumer_gone", 1)
    assert group.examples == ("gone-1/m2",)


# --- the rule set ------------------------------------------------------------------------------


def test_every_rule_names_a_known_cause_and_has_a_unique_name():
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))
    for rule in RULES:
        if isinstance(rule.cause, str):
            assert rule.cause in CAUSE_INFO, rule.name


@pytest.mark.parametrize("cause", sorted(c.CAUSES))
def test_every_contract_cause_has_an_explanation(cause):
    info = CAUSE_INFO[cause]
    assert info.meaning and info.signals and info.fix
