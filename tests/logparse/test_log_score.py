"""The log-only score on scenarios of each example app: right, never a wrong verdict.

Runs ``benchmarks/bench_log_verdicts.py``'s own scoring (real stacks with wstrace
disabled, each conversation judged from its stack's ``web.log`` / ``worker.log``
alone) on scenarios of the chat app (logfmt) and of the room app (JSON lines). Each must get the right verdict or an honest ``unknown``: a wrong
verdict (or a crash of the analyzer) where ``unknown`` was due fails.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
# the plain cases, and each kind of line the app's own logging adds: a logged reject
# reason, a crash the app logged, sends, group join/leave lines, each process's layer,
# the worker's banner queues and its shutdown, a consumer's Redis crash, an echo
CHAT = (
    "healthy",
    "auth_rejected",
    "task_failed",
    "origin_rejected",
    "consumer_error",
    "consumer_gone",
    "layer_mismatch",
    "no_worker",
)
ROOMS = (
    "room_bot", "room_task_failed", "room_auth_rejected", "room_echo",
    "room_worker_stopped_gave_up", "room_redis_down",
)  # fmt: skip

pytestmark = [pytest.mark.stack, pytest.mark.timeout(240)]


def bench() -> ModuleType:
    path = ROOT / "benchmarks" / "bench_log_verdicts.py"
    spec = importlib.util.spec_from_file_location("bench_log_verdicts", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> list:
    return bench().run_benchmark(tmp_path_factory.mktemp("logscore"), chat=CHAT, rooms=ROOMS)


def test_the_grades_mean_what_the_benchmark_says() -> None:
    grade = bench().grade
    assert grade(("lost", "task", "no_worker"), ("lost", "task", "no_worker")) == "right"
    assert grade(("lost", "publish", "channel_full"), ("lost", "deliver", "channel_full"),
                 ("deliver",)) == "right"  # fmt: skip
    assert grade(("lost", "task", "no_worker"), ("lost", "task", "unknown")) == "unknown"
    assert grade(("lost", "task", "no_worker"), ("unknown", None, "unknown")) == "unknown"
    assert grade(("delivered", "send", "ok"), ("lost", "deliver", "unknown")) == "unknown"
    assert grade(("lost", "deliver", "consumer_gone"), ("delivered", "send", "ok")) == "wrong"


def test_every_scenario_was_played_and_judged(scored: list) -> None:
    assert [(s.app, s.scenario) for s in scored] == [
        *(("chatapp", name) for name in CHAT),
        *(("roomapp", name) for name in ROOMS),
    ]
    assert not [s for s in scored if s.client_error], "a client failed"


def test_no_scenario_gets_a_wrong_verdict_from_logs_alone(scored: list) -> None:
    bad = [(s.app, s.scenario, s.got, s.summary) for s in scored if s.grade not in ("right", "unknown")]  # fmt: skip
    assert not bad, bad


def test_the_subset_is_judged_right_from_logs_alone(scored: list) -> None:
    """Logs alone say all of these (the benchmark's full run: benchmarks/README.md)."""
    assert [s.scenario for s in scored if s.grade != "right"] == []
    assert all(s.confidence in ("exact", "path", "time", "inferred") for s in scored)


def test_what_no_line_states_is_inferred_and_what_a_line_states_is_not(scored: list) -> None:
    by = {s.scenario: s for s in scored}
    assert by["healthy"].confidence == "path"  # the chat app logs each answer it sends
    assert by["room_bot"].confidence == "inferred"  # the room app logs none
    assert by["room_echo"].confidence == "inferred"  # handled in the consumer, no line says how
