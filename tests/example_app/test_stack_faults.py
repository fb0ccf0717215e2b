"""Faults of the deployment: a worker configured differently from the web process."""

from __future__ import annotations

import pytest
from wsanalyze.demo.stack import SCENARIOS

from .chat import WSTRACE_AVAILABLE, stack_kwargs

pytestmark = pytest.mark.stack

UNAVAILABLE = SCENARIOS["channel_layer_unavailable"]
MISMATCH = SCENARIOS["layer_mismatch"]
STACKS = [("core", UNAVAILABLE), ("core", MISMATCH), ("pubsub", MISMATCH)]


def fault_stack(layer: str, scenario, wstrace_enabled: bool) -> dict:
    return stack_kwargs(layer, wstrace_enabled, worker_env=scenario.worker_env)


@pytest.fixture(scope="module", autouse=True)
def _boot_fault_stacks(shared_stack) -> None:
    """Boot this module's differently configured stacks together."""
    modes = [False, True] if WSTRACE_AVAILABLE else [False]
    shared_stack.prestart(
        *(fault_stack(layer, scenario, mode) for layer, scenario in STACKS for mode in modes)
    )


def test_channel_layer_unavailable_fails_the_task_at_group_send(shared_stack, wstrace_enabled):
    stack = shared_stack(**fault_stack("core", UNAVAILABLE, wstrace_enabled))

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
    stack = shared_stack(**fault_stack(layer, MISMATCH, wstrace_enabled))

    transcript = stack.run_scenario(MISMATCH)
    message_id = transcript.message_ids[0]
    result = stack.task_result(transcript.task_id(message_id), timeout=0)

    assert result is not None and result["status"] == "SUCCESS"  # finished while we listened
    assert result["result"]["published"] == 5
    assert transcript.chunks == {} and transcript.done == {}
