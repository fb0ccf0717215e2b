"""Faults of the deployment: a worker configured differently from the web process."""

from __future__ import annotations

import pytest
from wsanalyze.demo.stack import SCENARIOS


def test_channel_layer_unavailable_fails_the_task_at_group_send(make_stack, wstrace_enabled):
    scenario = SCENARIOS["channel_layer_unavailable"]
    stack = make_stack(wstrace_enabled=wstrace_enabled, worker_env=scenario.worker_env)

    transcript = stack.run_scenario(scenario)
    message_id = transcript.message_ids[0]
    result = stack.task_result(transcript.task_id(message_id), timeout=15)

    assert message_id in transcript.acks
    assert transcript.chunks == {} and transcript.done == {}
    assert result["status"] == "FAILURE"
    assert result["result"]["exc_type"] == "ConnectionError"
    assert "group_send" in result["traceback"]


@pytest.mark.parametrize("layer", ["core", "pubsub"])
def test_layer_mismatch_publishes_to_a_group_nobody_reads(make_stack, wstrace_enabled, layer):
    scenario = SCENARIOS["layer_mismatch"]
    stack = make_stack(layer=layer, wstrace_enabled=wstrace_enabled, worker_env=scenario.worker_env)

    transcript = stack.run_scenario(scenario)
    message_id = transcript.message_ids[0]
    result = stack.task_result(transcript.task_id(message_id), timeout=0)

    assert result is not None and result["status"] == "SUCCESS"  # finished while we listened
    assert result["result"]["published"] == 5
    assert transcript.chunks == {} and transcript.done == {}
