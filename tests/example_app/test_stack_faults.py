"""Faults of the deployment: a worker configured differently from the web process."""

from __future__ import annotations

import pytest
from wsanalyze.demo.chatapp_faults import FAULTS

from .chat import fault_stack

pytestmark = pytest.mark.stack

UNAVAILABLE = FAULTS["channel_layer_unavailable"]
MISMATCH = FAULTS["layer_mismatch"]


def test_channel_layer_unavailable_fails_the_task_at_group_send(shared_stack, wstrace_enabled):
    stack = shared_stack(**fault_stack("core", "channel_layer_unavailable", wstrace_enabled))

    transcript = stack.run_scenario(UNAVAILABLE)
    message_id = transcript.message_ids[0]
    result = stack.task_result(transcript.task_id(message_id), timeout=15)

    assert message_id in transcript.acks
    assert transcript.chunks == {} and transcript.done == {}
    assert result["status"] == "FAILURE"
    assert result["result"]["exc_type"] == "ConnectionError"
    assert "group_send" in result["traceback"]


@pytest.mark.parametrize("layer", ["core", "pubsub"])
def test_layer_mismatch_publishes_to_a_group_nobody_reads(shared_stack, wstrace_enabled, layer):
    stack = shared_stack(**fault_stack(layer, "layer_mismatch", wstrace_enabled))

    transcript = stack.run_scenario(MISMATCH)
    message_id = transcript.message_ids[0]
    result = stack.task_result(transcript.task_id(message_id), timeout=0)

    assert result is not None and result["status"] == "SUCCESS"  # finished while we listened
    assert result["result"]["published"] == 5
    assert transcript.chunks == {} and transcript.done == {}
