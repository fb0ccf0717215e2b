"""A small project's suite: in-memory channel layer, Celery eager, sync consumer, async tests."""

from __future__ import annotations


def test_eager_tasks_on_the_in_memory_layer_are_judged_like_the_cli_would(run_suite):
    result = run_suite("notes")

    result.assert_outcomes(passed=4)
