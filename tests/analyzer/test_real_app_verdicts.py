"""Verdicts on the shapes real Channels apps have, over hand-built event tables.

Echoes through ``group_send``, fan-out to empty per-user groups, frames that
start no work, two sockets per user, answers started over HTTP, raw Redis
pub/sub streaming, Stop buttons that revoke the task, workers that die before
exporting, and layer failures inside the consumer.
"""

from __future__ import annotations

from wsanalyze.verdicts import analyze_conversation, known_conversations
from wsanalyze.verdicts.testing import Trace
from wstrace import conventions as c


def report_of(t: Trace, settle: bool = True):
    if settle:
        t.span("ws.accept", c.HOP_ACCEPT, c.EV_ACCEPT, 60_000, 1, conversation_id="other")
    return analyze_conversation(t.frame(), t.conversation_id)


def triple(v) -> tuple:
    return (v.outcome, v.hop, v.cause)


def by_id(report) -> dict:
    return {m.message_id: m for m in report.messages}


def _echo(t: Trace, mid: str, rec: str, at: float, conns=("k1",)) -> str:
    echo = t.publish(mid, rec, at, 1, service="web", members=len(conns))
    for k in conns:
        t.send(mid, t.deliver(mid, echo, at + 1, 1, k), at + 2, 1, connection_id=k)
    return echo


def test_a_lost_answer_does_not_hide_behind_a_delivered_echo():
    t = Trace()
    t.connect("k1")
    rec = t.receive("m1", "k1", 10)
    _echo(t, "m1", rec, 11)
    task = t.task("m1", t.enqueue("m1", rec, 12), 5000, 20)
    t.disconnect("k1", 3000)  # the client gave up while no worker ran
    t.publish("m1", task, 5010, 1, members=0)  # the late answer: nobody there
    m = by_id(report_of(t))["m1"]
    assert m.outcome == "lost" and m.cause == "client_disconnected"
    assert (m.chunks.published, m.chunks.delivered, m.chunks.sent) == (2, 1, 1)
    gaps = [s for s in m.chunks.streams if s.gaps]
    assert len(m.chunks.streams) == 2 and len(gaps) == 1
    assert gaps[0].producer.startswith("task ")


def test_fan_out_to_empty_per_user_groups_is_a_side_effect_not_a_loss():
    t = Trace()
    t.connect("k1")
    rec = t.receive("m1", "k1", 10, frame_type="message")
    _echo(t, "m1", rec, 11)
    for user in (7, 8):
        t.publish("m1", rec, 12, 1, service="web", members=0, group=f"user_{user}")
    t.disconnect("k1", 2000)
    m = by_id(report_of(t))["m1"]
    assert triple(m) == ("delivered", "send", "ok")
    assert m.chunks.side_effects == 2 and (m.chunks.published, m.chunks.delivered) == (1, 1)


def test_worker_down_behind_an_echo_is_no_worker_not_consumer_gone():
    t = Trace()
    t.worker_ready(["celery"], at=-5000)
    t.connect("k1")
    rec = t.receive("m1", "k1", 10)
    _echo(t, "m1", rec, 11)
    t.publish("m1", rec, 12, 1, service="web", members=0, group="user_3")
    t.enqueue("m1", rec, 13)
    t.disconnect("k1", 20_000)
    m = by_id(report_of(t))["m1"]
    assert triple(m) == ("lost", "task", "no_worker")
    assert "join the group" not in m.hint


def test_two_sockets_in_a_room_count_deliveries_per_receiving_connection():
    t = Trace()
    t.connect("k1")
    t.connect("k2", at=1)
    rec = t.receive("m1", "k1", 10)
    _echo(t, "m1", rec, 11, conns=("k1", "k2"))
    m = by_id(report_of(t))["m1"]
    assert triple(m) == ("delivered", "send", "ok")
    assert (m.chunks.published, m.chunks.delivered, m.chunks.sent) == (1, 2, 2)
    assert {(k.connection_id, k.delivered, k.sent) for k in m.chunks.connections} == {
        ("k1", 1, 1),
        ("k2", 1, 1),
    }


def test_a_chunk_that_reached_only_one_of_two_sockets_still_counts_as_delivered_to_the_room():
    t = Trace()
    t.connect("k1")
    t.connect("k2", at=1)
    rec = t.receive("m1", "k1", 10)
    task = t.task("m1", t.enqueue("m1", rec, 11), 15, 30)
    pub = t.publish("m1", task, 20, 1, members=2)
    t.send("m1", t.deliver("m1", pub, 21, 1, "k1"), 22, 1, connection_id="k1")
    m = by_id(report_of(t))["m1"]
    assert m.chunks.delivered == 1 and m.outcome == "delivered"


def test_control_frames_that_start_no_work_are_handled():
    t = Trace()
    t.connect("k1")
    t.receive("m1", "k1", 10, frame_type="typing")
    rec = t.receive("m2", "k1", 20, frame_type="ping")
    t.send("m2", rec, 21, None)  # pong
    report = report_of(t)
    assert triple(by_id(report)["m1"]) == ("delivered", "send", "ok")
    assert "answered directly" in by_id(report)["m2"].summary
    assert triple(report.verdict) == ("delivered", "send", "ok")


def test_an_answer_started_over_http_joins_the_conversation_by_its_group():
    t = Trace()
    t.connect("k1")
    req = t.span(
        "POST api/rooms/", c.HOP_RECEIVE, c.EV_HTTP_REQUEST, 10, 30,
        conversation_id=None, message_id="h1", service="web",
    )  # fmt: skip
    task = t.task("h1", t.enqueue("h1", req, 12, conversation_id=None), 15, 30,
                  conversation_id=None, status="error", exception="ValueError: model down")  # fmt: skip
    pub = t.publish("h1", task, 20, 1, conversation_id=None)
    t.send("h1", t.deliver("h1", pub, 21, 1, "k1"), 22, 1, connection_id="k1")
    report = report_of(t)
    assert triple(by_id(report)["h1"]) == ("lost", "task", "task_failed")
    assert report.verdict.cause == "task_failed"


def test_raw_pubsub_reads_join_their_publish_by_hash_and_count_sends():
    t = Trace()
    t.connect("k1")
    rec = t.receive("m1", "k1", 10)
    task = t.task("m1", t.enqueue("m1", rec, 11), 15, 50)
    for seq in (1, 2, 3):
        t.publish("m1", task, 20 + seq, seq, members=None, receivers=1,
                  event=c.EV_REDIS_PUBLISH, group=None, channel="answer:m1",
                  payload_hash=f"h{seq}")  # fmt: skip
        read = t.span(c.SPAN_DELIVER, c.HOP_DELIVER, c.EV_REDIS_MESSAGE, 21 + seq, 0.1,
                      connection_id="k1", payload_hash=f"h{seq}", channel="answer:m1")  # fmt: skip
        if seq < 3:
            t.send(None, read, 22 + seq, None, connection_id="k1")
    t.disconnect("k1", 3000)
    m = by_id(report_of(t))["m1"]
    assert (m.chunks.published, m.chunks.delivered, m.chunks.sent) == (3, 3, 2)
    assert m.outcome == "lost" and m.hop == "send"


def test_raw_pubsub_chunks_with_zero_receivers_after_the_client_left_are_client_disconnected():
    t = Trace()
    t.connect("k1")
    rec = t.receive("m1", "k1", 10)
    task = t.task("m1", t.enqueue("m1", rec, 11), 15, 50)
    t.disconnect("k1", 16)
    t.publish("m1", task, 20, 1, members=None, receivers=0, event=c.EV_REDIS_PUBLISH,
              group=None, channel="answer:m1", payload_hash="h1")  # fmt: skip
    m = by_id(report_of(t))["m1"]
    assert triple(m) == ("lost", "deliver", "client_disconnected")


def test_a_stop_button_revoke_is_task_revoked_and_the_stop_frame_is_handled():
    t = Trace()
    t.connect("k1")
    rec = t.receive("m1", "k1", 10, frame_type="message")
    enq = t.enqueue("m1", rec, 11)
    pub = t.publish("m1", "a" * 16, 20, 1)  # the terminated child's task span never arrived
    t.send("m1", t.deliver("m1", pub, 21, 1, "k1"), 22, 1, connection_id="k1")
    stop = t.receive("s1", "k1", 30, frame_type="stop")
    t.span(c.SPAN_REVOKE, c.HOP_RECEIVE, c.EV_REVOKE, 31, 1, parent=stop, message_id="s1",
           connection_id="k1", task_id="task-m1")  # fmt: skip
    t.span("ws.task_revoked", c.HOP_TASK, c.EV_TASK_REVOKED, 32, 0, parent=enq,
           service="worker", message_id="m1", task_id="task-m1", status="error",
           cause="task_revoked", exception="Terminated: SIGTERM")  # fmt: skip
    report = report_of(t)
    m, s = by_id(report)["m1"], by_id(report)["s1"]
    assert triple(m) == ("lost", "task", "task_revoked")
    assert any("revoked by message s1" in line and "'stop'" in line for line in m.evidence)
    assert triple(s) == ("delivered", "send", "ok")
    assert m.chunks.delivered == 1


def test_a_worker_killed_mid_answer_is_task_stuck_never_no_worker():
    t = Trace()
    t.connect("k1")
    rec = t.receive("m1", "k1", 10)
    t.enqueue("m1", rec, 11)
    for seq in (1, 2):  # the web exported these; the child's task and publish spans died with it
        dlv = t.deliver("m1", f"{seq:016x}"[::-1], 20 + seq, seq, "k1")
        t.send("m1", dlv, 21 + seq, seq, connection_id="k1")
    m = by_id(report_of(t))["m1"]
    assert triple(m) == ("lost", "task", "task_stuck")
    assert m.chunks.delivered == 2 and m.chunks.sent == 2
    assert any("died before exporting" in line for line in m.evidence)


def test_layer_lost_inside_the_consumer_is_channel_layer_unavailable_at_deliver():
    t = Trace()
    t.connect("k1")
    rec = t.receive("m1", "k1", 10)
    task = t.task("m1", t.enqueue("m1", rec, 11), 15, 50)
    t.publish("m1", task, 20, 1, members=1)
    t.disconnect("k1", 30, code=1011, by="server", status="error",
                 cause="channel_layer_unavailable",
                 exception="ConnectionError: Error 111 connecting to 127.0.0.1:6379.")  # fmt: skip
    report = report_of(t)
    assert triple(report.connections[0]) == ("lost", "deliver", "channel_layer_unavailable")
    assert triple(by_id(report)["m1"]) == ("lost", "deliver", "channel_layer_unavailable")
    assert report.verdict.cause == "channel_layer_unavailable"


def test_connections_without_a_conversation_are_not_a_conversation():
    t = Trace()
    t.connect("k1")
    t.receive("m1", "k1", 10)
    note = Trace(None)  # /ws/user/5/: no conversation kwarg in its route
    note.connect("n1", group="user_5")
    frame = t.frame().collect().vstack(note.frame().collect()).lazy()
    assert known_conversations(frame) == ["conv-1"]


def test_the_report_names_the_stream_that_lost_chunks_and_marks_side_effects():
    t = Trace()
    t.connect("k1")
    rec = t.receive("m1", "k1", 10)
    _echo(t, "m1", rec, 11)
    t.publish("m1", rec, 12, 1, service="web", members=0, group="user_4")
    task = t.task("m1", t.enqueue("m1", rec, 13), 20, 20)
    t.publish("m1", task, 30, 1, members=0)
    report = report_of(t)
    m = by_id(report)["m1"]
    assert any(
        line.startswith("stream from task") and "1 chunk(s) delivered to nobody" in line
        for line in m.evidence
    )
    assert any(line.startswith("stream from the receive handler") for line in m.evidence)
    side = [e for e in report.timeline if "side effect" in e.detail]
    assert len(side) == 1 and "user_4" in side[0].detail and not side[0].failed
    lost_chunk = [e for e in report.timeline if e.hop == "publish" and e.service == "worker"]
    assert lost_chunk and lost_chunk[0].failed


def test_fan_out_to_a_user_group_whose_socket_has_left_is_not_a_loss():
    t = Trace()
    t.connect("k1")  # Bob, in the room
    t.connect("k2", at=1)  # Alice's chat socket joins the room and her user group
    t.span(c.SPAN_GROUP_ADD, c.HOP_CONNECT, c.EV_GROUP_ADD, 4, 1, connection_id="k2",
           group="user_alice", layer="L1")  # fmt: skip
    t.span(c.SPAN_GROUP_DISCARD, c.HOP_DISCONNECT, c.EV_GROUP_DISCARD, 50, 1,
           connection_id="k2", group="user_alice")  # fmt: skip
    t.disconnect("k2", 51)  # Alice leaves
    rec = t.receive("m1", "k1", 100)  # Bob speaks
    _echo(t, "m1", rec, 101)
    t.publish("m1", rec, 102, 1, service="web", members=0, group="user_alice")
    m = by_id(report_of(t))["m1"]
    assert triple(m) == ("delivered", "send", "ok")
    assert m.chunks.side_effects == 1


def test_an_answer_streamed_before_the_senders_socket_joined_its_group_is_still_its_answer():
    t = Trace()
    t.connect("k1", layer=None)  # accepted; joins the room only later
    rec = t.receive("m1", "k1", 10)
    task = t.task("m1", t.enqueue("m1", rec, 11), 12, 20)
    t.publish("m1", task, 15, 1, members=0)
    t.span(c.SPAN_GROUP_ADD, c.HOP_RECEIVE, c.EV_GROUP_ADD, 40, 1, connection_id="k1",
           group="chat_conv-1", layer="L1")  # fmt: skip
    m = by_id(report_of(t))["m1"]
    assert triple(m) == ("lost", "deliver", "consumer_gone")
