"""Fixtures of the room-app scenario tests: every scenario played once, concurrently.

``room_run`` boots the room app's stacks (``wsanalyze.demo.rooms.ROOM_STACKS``:
the normal one, one deployed without a worker, one whose worker was stopped, all
through the session's ``shared_stack``; and one on a Redis of its own, which a
scenario stops), plays every scenario of ``ROOM_SCENARIOS`` at once with real
WebSocket clients and HTTP calls, waits until the spans are on disk, and hands
what was played to the tests, which run the analyzer on each conversation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from wsanalyze.analysis import conversation_report
from wsanalyze.demo.redis_server import RedisServer
from wsanalyze.demo.room_scenarios import ROOM_SCENARIOS
from wsanalyze.demo.rooms import RoomPlayed, play_room_scenarios, room_stack_kwargs, wait_quiet
from wsanalyze.demo.stack import Stack
from wsanalyze.report import ConversationReport, MessageVerdict

SHARED_KINDS = ("main", "no_worker", "worker_stopped")


@dataclass
class RoomRun:
    """Every room scenario after it ran, by name, and the analyzer's view of each."""

    played: dict[str, RoomPlayed]
    reports: dict[str, ConversationReport] = field(default_factory=dict)

    def report(self, name: str) -> ConversationReport:
        """The analyzer's report of a scenario's conversation (computed once)."""
        if name not in self.reports:
            p = self.played[name]
            self.reports[name] = conversation_report(
                p.conversation_id, traces=str(p.stack.trace_dir)
            )
        return self.reports[name]

    def message(self, name: str, role: str = "message") -> MessageVerdict:
        """The verdict of one message of a scenario (by its role: message, stop, ping ...)."""
        message_id = self.played[name].ids[role]
        report = self.report(name)
        for verdict in report.messages:
            if verdict.message_id == message_id:
                return verdict
        seen = [(m.message_id, m.outcome, m.hop, m.cause) for m in report.messages]
        raise AssertionError(f"no verdict for {role} {message_id} of {name}; messages: {seen}")


@pytest.fixture(scope="session")
def room_run(shared_stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoomRun]:
    """Every room scenario played once on real stacks, spans flushed to disk."""
    own_redis = RedisServer().start()
    lonely = Stack(
        tmp_path_factory.mktemp("redis-down"), own_redis.url, **room_stack_kwargs("redis_down")
    )
    try:
        lonely.launch()  # boots while the shared stacks boot
        shared_stack.prestart(*(room_stack_kwargs(kind) for kind in SHARED_KINDS))
        stacks: dict[str, Stack] = {
            kind: shared_stack(**room_stack_kwargs(kind)) for kind in SHARED_KINDS
        }
        stacks["worker_stopped"].stop_worker()
        stacks["redis_down"] = lonely.wait_ready()
        played = asyncio.run(play_room_scenarios(ROOM_SCENARIOS, stacks, stop_redis=own_redis.stop))
        for trace_dir in {stack.trace_dir for stack in stacks.values()}:
            wait_quiet(trace_dir)
        yield RoomRun({p.scenario.name: p for p in played})
    finally:
        lonely.stop()
        own_redis.stop()
