"""How much each fuzzer runs: deterministic and bounded in CI, longer on request.

Every fuzz test uses ``fuzz_settings(n)``: ``derandomize`` makes CI run the same
examples every time (no database: a failure found on one machine is not replayed
on another, so the corpus holds the cases that must keep passing).
``WSANALYZE_FUZZ_EXAMPLES=5000`` raises every fuzzer to that many examples for a
long local run; it never lowers the CI budget.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

ENV_EXAMPLES = "WSANALYZE_FUZZ_EXAMPLES"


def examples(default: int) -> int:
    """``default``, or ``$WSANALYZE_FUZZ_EXAMPLES`` when that asks for more."""
    raw = os.environ.get(ENV_EXAMPLES, "").strip()
    return max(default, int(raw)) if raw.isdigit() else default


def fuzz_settings(default_examples: int, deadline_s: float = 5.0) -> settings:
    """Settings for one fuzzer: ``default_examples`` in CI, a per-example deadline.

    The deadline is generous (a CI run may share the machine): it catches an input
    that makes a reader loop or backtrack, not a slow moment.
    """
    return settings(
        derandomize=True,
        database=None,
        max_examples=examples(default_examples),
        deadline=timedelta(seconds=deadline_s),
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
            HealthCheck.filter_too_much,
        ],
        print_blob=True,
    )
