"""The example apps' suites: WebsocketCommunicator in process, Redis, a real Celery worker process."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.stack


def test_the_chat_app_suite_passes_and_its_planted_fault_fails_naming_hop_and_cause(
    run_suite, example_app_env
):
    result = run_suite("chatapp", example_app_env("chatapp"))

    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_planted_consumer_gone_fails_the_delivery_assertion*",
            "*AssertionError: wstrace: 1 of 1 conversation(s) not delivered",
            "*conversation gone was not delivered: LOST at deliver, cause consumer_gone",
            "*message *: LOST  hop=deliver  cause=consumer_gone",
            "*reached: receive → enqueue → task → publish*",
            "*evidence:",
            "*ws.publish to chat_gone found 0 members*",
            "*fix: Nobody was in the group when the answer was published*",
            "*(wsanalyze explain consumer_gone)",
            "FAILED test_chat.py::test_planted_consumer_gone_fails_the_delivery_assertion*",
        ]
    )


def test_the_room_app_suite_passes_eager_and_with_a_worker(run_suite, example_app_env):
    result = run_suite("roomapp", example_app_env("roomapp"))

    result.assert_outcomes(passed=4)
