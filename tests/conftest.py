"""Shared fixtures: a real Redis, and the example chat app running on Daphne + Celery.

``redis_server``   one Redis for the session (each stack gets its own logical db)
``shared_stack``   ``shared_stack(**kwargs)``: one started Stack per distinct kwargs,
                   reused for the whole session (for tests whose fault is per message)
``make_stack``     ``make_stack(**kwargs)``: a fresh Stack, stopped when the test ends
                   (for faults that need differently configured processes)
``trace_dir``      an empty directory for wstrace files
``wstrace_enabled`` parametrizes a test over instrumentation off / on

Stack kwargs are those of ``wsanalyze.demo.stack.Stack`` minus ``workdir`` and
``redis_url`` (both provided): ``app="roomapp"`` runs the room app instead of the
chat app, ``worker=False`` starts no Celery worker (``tests/roomapp`` uses both).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from wsanalyze.demo.redis_server import RedisServer
from wsanalyze.demo.stack import Stack

# Every verdict computed in the suite (in process, or by a `wsanalyze` subprocess, which
# inherits the environment) is checked against the invariants of docs/verdicts.md: a verdict
# that contradicts its own evidence raises instead of passing quietly.
os.environ["WSANALYZE_STRICT_INVARIANTS"] = "1"

REDIS_DATABASES = 64  # RedisServer starts redis-server with --databases 64

StackFactory = Callable[..., Stack]


@pytest.fixture(
    params=[
        pytest.param(False, id="wstrace-off"),
        pytest.param(True, id="wstrace-on"),
    ]
)
def wstrace_enabled(request: pytest.FixtureRequest) -> bool:
    """Run the test with the instrumentation off (WSTRACE_ENABLED=0) and on."""
    return request.param


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free port for the whole session."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def _redis_dbs() -> Iterator[int]:
    return itertools.cycle(range(1, REDIS_DATABASES))


def _new_stack(
    redis_server: RedisServer, dbs: Iterator[int], workdir: Path, kwargs: dict[str, Any]
) -> Stack:
    """A Stack on the next logical db of the session's Redis, emptied first (dbs are reused)."""
    if "redis_url" not in kwargs:
        kwargs["redis_url"] = redis_server.url_for(next(dbs))
        with redis.Redis.from_url(kwargs["redis_url"]) as client:
            client.flushdb()
    return Stack(workdir, **kwargs)


class SharedStacks:
    """Started stacks keyed by their kwargs.

    ``prestart(kwargs, ...)`` boots several in parallel and waits; ``launch(kwargs, ...)``
    only spawns them, so they boot while other tests run.
    """

    def __init__(self, redis_server: RedisServer, dbs: Iterator[int], tmp: Any) -> None:
        self.redis_server, self.dbs, self.tmp = redis_server, dbs, tmp
        self.stacks: dict[tuple, Stack] = {}
        self.booting: set[tuple] = set()

    @staticmethod
    def key(kwargs: dict[str, Any]) -> tuple:
        return tuple(sorted((name, repr(value)) for name, value in kwargs.items()))

    def launch(self, *kwarg_sets: dict[str, Any]) -> list[Stack]:
        """Spawn every stack not started yet without waiting (they boot in the background)."""
        launched = []
        for kwargs in kwarg_sets:
            if self.key(kwargs) not in self.stacks:
                workdir = self.tmp.mktemp("stack")
                stack = _new_stack(self.redis_server, self.dbs, workdir, dict(kwargs))
                self.stacks[self.key(kwargs)] = stack.launch()
                self.booting.add(self.key(kwargs))
                launched.append(stack)
        return launched

    def prestart(self, *kwarg_sets: dict[str, Any]) -> None:
        """Launch every stack not started yet, then wait for all of them together."""
        self.launch(*kwarg_sets)
        for kwargs in kwarg_sets:
            self._ready(self.key(kwargs))

    def _ready(self, key: tuple) -> Stack:
        stack = self.stacks[key]
        if key in self.booting:
            self.booting.discard(key)
            stack.wait_ready()
        return stack

    def __call__(self, **kwargs: Any) -> Stack:
        self.launch(kwargs)
        stack = self._ready(self.key(kwargs))
        if not stack.running():
            pytest.fail(f"shared stack died\n{stack.log_tails()}")
        return stack

    def stop(self) -> None:
        Stack.stop_all(list(self.stacks.values()))


@pytest.fixture(scope="session")
def shared_stack(
    redis_server: RedisServer, _redis_dbs: Iterator[int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedStacks]:
    """Return ``shared_stack(**kwargs)``: a started Stack shared by every test asking the same.

    ``shared_stack.prestart(kwargs, ...)`` boots several at once; ``shared_stack.launch``
    starts booting them in the background.
    """
    stacks = SharedStacks(redis_server, _redis_dbs, tmp_path_factory)
    yield stacks
    stacks.stop()


@pytest.fixture(scope="session")
def _stopping_stacks() -> Iterator[list[Stack]]:
    """Stacks signalled to stop by finished tests; waited for once, at the end of the session."""
    stacks: list[Stack] = []
    yield stacks
    Stack.stop_all(stacks)


@pytest.fixture
def make_stack(
    redis_server: RedisServer,
    _redis_dbs: Iterator[int],
    _stopping_stacks: list[Stack],
    tmp_path: Path,
) -> Iterator[StackFactory]:
    """Return ``make_stack(**kwargs)``: start a new Stack, stopped when the test ends.

    Teardown only signals the processes (SIGTERM: they flush and exit on their
    own); a test that reads what they wrote on exit calls ``stack.stop()`` itself.
    """
    stacks: list[Stack] = []

    def make(**kwargs: Any) -> Stack:
        workdir = tmp_path / f"stack{len(stacks)}"
        stack = _new_stack(redis_server, _redis_dbs, workdir, kwargs)
        stacks.append(stack)
        return stack.start()

    yield make
    for stack in stacks:
        stack.terminate()
    _stopping_stacks.extend(stacks)


@pytest.fixture
def trace_dir(tmp_path: Path) -> Path:
    """An empty directory for wstrace's file store."""
    path = tmp_path / "traces"
    path.mkdir()
    return path
