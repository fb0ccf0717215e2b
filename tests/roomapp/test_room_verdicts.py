"""The analyzer's verdicts on the room app's conversations, played for real (see conftest).

Each test names the behaviour issue 10 expects for one shape of real public
Channels apps; the expected (outcome, hop, cause) are written out here, not
taken from ``ROOM_SCENARIOS``, so the two can be checked against each other.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from wsanalyze.analysis import AnalysisError, conversation_list, conversation_report
from wsanalyze.report import MessageVerdict

from .conftest import RoomRun

pytestmark = pytest.mark.stack

DELIVERED = ("delivered", "send", "ok")


def verdict(m: MessageVerdict) -> tuple[str, str | None, str]:
    return (m.outcome, m.hop, m.cause)


def counts(m: MessageVerdict) -> tuple[int, int, int]:
    return (m.chunks.published, m.chunks.delivered, m.chunks.sent)


def test_every_scenario_played_without_client_errors(room_run: RoomRun) -> None:
    errors = {name: p.error for name, p in room_run.played.items() if p.error}
    assert errors == {}


def test_a_message_without_mention_is_delivered_and_starts_no_task(room_run: RoomRun) -> None:
    m = room_run.message("room_echo")
    assert verdict(m) == DELIVERED, m.summary
    assert "enqueue" not in m.hops_seen and "task" not in m.hops_seen
    assert room_run.report("room_echo").verdict.outcome == "delivered"


def test_the_cli_json_says_the_echo_conversation_was_delivered(room_run: RoomRun) -> None:
    p = room_run.played["room_echo"]
    done = subprocess.run(
        [sys.executable, "-m", "wsanalyze.cli", "conversation", p.conversation_id,
         "--traces", str(p.stack.trace_dir), "--json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["verdict"]["outcome"] == "delivered"
    assert [m["outcome"] for m in report["messages"]] == ["delivered"]


def test_a_bot_mention_is_delivered_with_echo_and_answer_counted(room_run: RoomRun) -> None:
    m = room_run.message("room_bot")
    assert verdict(m) == DELIVERED, m.summary
    # one echo + one non-streamed answer, across two streams (web and worker publishes)
    assert counts(m) == (2, 2, 2), m.summary


def test_one_publish_to_two_sockets_counts_two_deliveries(room_run: RoomRun) -> None:
    m = room_run.message("room_two_sockets")
    assert verdict(m) == DELIVERED, m.summary
    assert counts(m) == (1, 2, 2), m.summary


def test_fan_out_to_empty_user_groups_is_not_a_loss(room_run: RoomRun) -> None:
    m = room_run.message("room_fan_out")
    assert verdict(m) == DELIVERED, m.summary
    assert room_run.report("room_fan_out").verdict.outcome == "delivered"


def test_worker_down_while_the_client_waits_is_in_flight_at_task(room_run: RoomRun) -> None:
    played = room_run.played["room_worker_down_connected"]
    report = played.notes["report_while_open"]
    (m,) = [m for m in report.messages if m.message_id == played.ids["message"]]
    assert verdict(m) == ("in_flight", "task", "no_worker"), m.summary


@pytest.mark.parametrize("name", ["room_worker_down_gave_up", "room_worker_stopped_gave_up"])
def test_worker_down_after_the_client_left_is_lost_for_no_worker(
    room_run: RoomRun, name: str
) -> None:
    m = room_run.message(name)
    assert verdict(m) == ("lost", "task", "no_worker"), m.summary


def test_a_task_that_raises_is_lost_at_task(room_run: RoomRun) -> None:
    m = room_run.message("room_task_failed")
    assert verdict(m) == ("lost", "task", "task_failed"), m.summary


def test_a_sigkilled_task_is_stuck_and_its_two_chunks_counted(room_run: RoomRun) -> None:
    m = room_run.message("room_sigkill")
    assert m.cause != "no_worker", m.summary
    assert verdict(m) == ("lost", "task", "task_stuck"), m.summary
    assert m.chunks.delivered >= 2 and m.chunks.sent >= 2, m.summary  # 2 chunks (+ the echo)
    # the worker's main process recorded the loss (ws.task_lost from task_failure)
    assert any("WorkerLostError" in line for line in m.evidence), m.evidence


def test_redis_stopped_while_connected_is_channel_layer_unavailable(room_run: RoomRun) -> None:
    report = room_run.report("room_redis_down")
    assert verdict(room_run.message("room_redis_down", "before")) == DELIVERED
    causes = [report.verdict.cause, *(m.cause for m in report.messages)]
    assert "consumer_error" not in causes, report.verdict.summary
    assert report.verdict.outcome == "lost", report.verdict.summary
    assert report.verdict.cause == "channel_layer_unavailable", report.verdict.summary
    assert report.verdict.hop in ("publish", "deliver"), report.verdict.summary


def test_stop_mid_stream_revokes_the_answer_and_the_stop_frame_is_handled(
    room_run: RoomRun,
) -> None:
    answer = room_run.message("room_stop")
    assert verdict(answer) == ("lost", "task", "task_revoked"), answer.summary
    stop = room_run.message("room_stop", "stop")
    assert verdict(stop) == DELIVERED, stop.summary


@pytest.mark.parametrize("role", ["typing", "ping"])
def test_typing_and_ping_frames_are_handled_without_work(room_run: RoomRun, role: str) -> None:
    m = room_run.message("room_typing_ping", role)
    assert verdict(m) == DELIVERED, m.summary
    assert "enqueue" not in m.hops_seen


def test_a_notification_socket_is_not_a_conversation(room_run: RoomRun) -> None:
    played = room_run.played["room_notification"]
    user_id = played.notes["user_id"]
    assert played.notes["notified"] == 1  # the badge socket did get the update
    rows, _ = conversation_list(traces=str(played.stack.trace_dir))
    assert user_id not in {row.conversation_id for row in rows}
    with pytest.raises(AnalysisError):
        conversation_report(user_id, traces=str(played.stack.trace_dir))
    assert verdict(room_run.message("room_notification")) == DELIVERED


def test_a_bot_message_posted_over_http_is_delivered_in_its_conversation(
    room_run: RoomRun,
) -> None:
    assert room_run.played["room_http_post"].notes["status"] == 201
    m = room_run.message("room_http_post")  # raises when the message is not in the conversation
    assert verdict(m) == DELIVERED, m.summary


def test_an_http_edit_whose_task_raises_is_lost_in_its_conversation(room_run: RoomRun) -> None:
    assert room_run.played["room_http_edit_failed"].notes["status"] == 202
    report = room_run.report("room_http_edit_failed")
    verdicts = [verdict(m) for m in report.messages]
    assert ("lost", "task", "task_failed") in verdicts, report.verdict.summary
    v = report.verdict
    assert (v.outcome, v.hop, v.cause) == ("lost", "task", "task_failed"), v.summary


def test_a_pubsub_answer_is_delivered_with_its_chunks_counted(room_run: RoomRun) -> None:
    assert room_run.played["room_pubsub"].notes["chunks_seen"] == 5
    m = room_run.message("room_pubsub")
    assert verdict(m) == DELIVERED, m.summary
    # 5 chunks + done over raw pub/sub, and the echo through the channel layer
    assert counts(m) == (7, 7, 7), m.summary


def test_a_pubsub_answer_after_the_client_left_is_client_disconnected(
    room_run: RoomRun,
) -> None:
    m = room_run.message("room_pubsub_client_gone")
    assert (m.outcome, m.cause) == ("lost", "client_disconnected"), m.summary
    assert m.chunks.sent == 1, m.summary  # the echo only: 0 receivers for every chunk


def test_a_bad_subprotocol_token_is_rejected_at_auth(room_run: RoomRun) -> None:
    assert room_run.played["room_auth_rejected"].notes["close_code"] == 4001
    v = room_run.report("room_auth_rejected").verdict
    assert (v.outcome, v.hop, v.cause) == ("rejected", "auth", "auth_rejected"), v.summary


def test_every_command_gives_each_conversation_the_verdict_its_report_gives(
    room_run: RoomRun,
) -> None:
    """`conversations` (the whole store at once) and `conversation <id>` agree, store by store."""
    stores = {str(p.stack.trace_dir) for p in room_run.played.values()}
    listed = {}
    for store in stores:
        rows, _ = conversation_list(traces=store)
        listed.update({row.conversation_id: row.verdict for row in rows})
    for name, played in room_run.played.items():
        v = room_run.report(name).verdict
        row = listed[played.conversation_id]
        assert (row.outcome, row.hop, row.cause) == (v.outcome, v.hop, v.cause), name
