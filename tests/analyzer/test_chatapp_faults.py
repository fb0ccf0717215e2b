"""The scenario catalogue the demo and benchmarks replay stays true to the contract."""

from __future__ import annotations

from wsanalyze.demo.chatapp_faults import FAULTS
from wsanalyze.demo.stack import TOKEN_KINDS
from wstrace.conventions import CAUSES

FAULT_SWITCHES = {
    "auth_rejected",
    "origin_rejected",
    "rate_limited",
    "invalid_message",
    "no_worker",
    "task_failed",
    "client_disconnected",
    "consumer_gone",
    "channel_full",
    "channel_layer_unavailable",
    "layer_mismatch",
    "consumer_error",
}


def test_every_fault_switch_has_a_scenario_named_for_its_cause():
    assert set(FAULTS) == FAULT_SWITCHES | {"ok"}
    assert set(FAULTS) <= set(CAUSES)


def test_scenarios_use_known_token_kinds_and_layers():
    for scenario in FAULTS.values():
        assert scenario.token in TOKEN_KINDS, scenario.cause
        assert set(scenario.layers) <= {"core", "pubsub"}, scenario.cause
