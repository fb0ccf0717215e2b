"""Faults switched on by the message text (``fault:<name>``) or by the client's behaviour."""

from __future__ import annotations

from datetime import datetime

import pytest

from .chat import CAPACITY, new_conversation

pytestmark = pytest.mark.stack

PRIORITY_QUEUE = "agents-priority"  # CHAT_PRIORITY_QUEUE default


def finished_at(result: dict) -> float:
    """Wall-clock time (epoch seconds) a task's result was stored."""
    return datetime.fromisoformat(result["date_done"]).timestamp()


def test_no_worker_leaves_the_task_waiting_in_an_unconsumed_queue(core_stack):
    queued_before = core_stack.queue_length(PRIORITY_QUEUE)

    transcript = core_stack.talk(["fault:no_worker please"], timeout=1.0)
    message_id = transcript.message_ids[0]

    assert message_id in transcript.acks
    assert transcript.chunks == {} and transcript.done == {}
    assert transcript.timed_out
    assert core_stack.queue_length(PRIORITY_QUEUE) == queued_before + 1
    assert core_stack.task_result(transcript.task_id(message_id), timeout=0) is None


def test_task_failed_streams_two_chunks_then_the_task_raises(any_layer_stack):
    transcript = any_layer_stack.talk(["fault:task_failed"], settle=0.5)
    message_id = transcript.message_ids[0]

    result = any_layer_stack.task_result(transcript.task_id(message_id), timeout=5)

    assert transcript.seqs(message_id) == [1, 2]
    assert transcript.done == {}
    assert result["status"] == "FAILURE"
    assert result["result"]["exc_type"] == "AgentToolError"


def test_client_disconnected_mid_stream_leaves_the_task_streaming(core_stack):
    transcript = core_stack.talk(["fault:client_disconnected"], close_after_chunks=2)
    message_id = transcript.message_ids[0]

    result = core_stack.task_result(transcript.task_id(message_id), timeout=5)

    assert (transcript.closed_by, transcript.close_code) == ("client", 1000)
    assert transcript.seqs(message_id) == [1, 2]
    assert result["status"] == "SUCCESS" and result["result"]["published"] == 20
    assert finished_at(result) > transcript.ended_at  # chunks kept coming after the client left


def test_consumer_gone_streams_the_whole_answer_to_an_empty_group(any_layer_stack):
    transcript = any_layer_stack.talk(
        ["fault:consumer_gone", "are you still there?"], gap=1.0, settle=0.5
    )
    gone, after = transcript.message_ids

    result = any_layer_stack.task_result(transcript.task_id(gone), timeout=0)

    assert result is not None and result["status"] == "SUCCESS"
    assert result["result"]["published"] == 5
    assert gone not in transcript.chunks and gone not in transcript.done
    # The consumer rejoined once the stream was over: the next answer arrives whole.
    assert transcript.seqs(after) == [1, 2, 3, 4, 5] and after in transcript.done


def test_channel_full_drops_what_the_full_channel_cannot_take(core_stack):
    conversation_id = new_conversation()
    transcript = core_stack.talk(
        ["fault:channel_full"],
        conversation_id=conversation_id,
        settle=0.5,
        settle_once_streaming=True,
        timeout=20,
    )
    message_id = transcript.message_ids[0]

    result = core_stack.task_result(transcript.task_id(message_id), timeout=5)

    assert result["status"] == "SUCCESS" and result["result"]["published"] == 3 * CAPACITY
    # Chunk 1 stalls the handler; chunks 2 .. capacity+1 fill the channel in Redis;
    # channels_redis drops the rest and the done.
    assert transcript.seqs(message_id) == list(range(1, CAPACITY + 2))
    assert transcript.done == {}
    assert f"channels over capacity in group chat_{conversation_id}" in core_stack.log_text(
        "worker"
    )


def test_consumer_error_closes_the_socket_1011(any_layer_stack):
    conversation_id = new_conversation()
    transcript = any_layer_stack.talk(
        ["fault:consumer_error"], conversation_id=conversation_id, timeout=10
    )
    message_id = transcript.message_ids[0]

    assert transcript.seqs(message_id) == [1]
    assert (transcript.closed_by, transcript.close_code) == ("server", 1011)
    assert "Exception inside application: 'content'" in any_layer_stack.log_text("web")
