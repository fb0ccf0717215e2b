"""End-to-end fixtures: every scenario of the demo played once on the real stack.

``e2e_run`` starts its own Redis, the stacks the scenarios need (Daphne + a
Celery prefork worker with wstrace on, sharing one trace directory), plays
every scenario of ``wsanalyze.demo.run.ALL_SCENARIOS`` (the example app's faults on both
channel layers, from ``wsanalyze.demo.chatapp_faults.FAULTS``), stops the processes so the
exporters flush, and hands the trace directory and what each client saw to the
tests, which then run the analyzer over what the stack wrote.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from wsanalyze.demo.run import ALL_SCENARIOS, Played, play


@dataclass
class E2ERun:
    trace_dir: Path
    played: dict[str, Played]


@pytest.fixture(scope="session")
def e2e_run(tmp_path_factory: pytest.TempPathFactory) -> E2ERun:
    """All scenarios played once, stack stopped (traces flushed)."""
    keep = os.environ.get("WSTRACE_E2E_DIR")  # keep the run (traces, logs) for a post-mortem
    workdir = Path(keep) if keep else tmp_path_factory.mktemp("e2e")
    played = play(workdir, ALL_SCENARIOS)
    failed = [f"{p.scenario.name}: {p.error}" for p in played if p.error]
    if failed:
        pytest.fail("client errors: " + "; ".join(failed))
    return E2ERun(workdir / "traces", {p.scenario.name: p for p in played})
