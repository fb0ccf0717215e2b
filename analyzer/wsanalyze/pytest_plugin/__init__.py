"""pytest plugin: the ``wstrace`` fixture, wsanalyze's verdicts inside your own test suite.

Installed with the package (entry point ``pytest11``); no ``conftest.py`` line needed::

    @pytest.mark.asyncio
    async def test_the_answer_arrives(wstrace):
        communicator = WebsocketCommunicator(application, "/ws/chat/c1/?token=...")
        await communicator.connect()
        await communicator.send_json_to({"type": "message", "id": "m1", "content": "hi"})
        ...
        await wstrace.aassert_delivered("c1", timeout=10)   # sync tests: wstrace.assert_delivered()

While a test uses the fixture, wstrace records in the test process (as the app
configured it when ``"wstrace"`` is in ``INSTALLED_APPS``, else set up by the
fixture from ``settings.WSTRACE`` with no exporters) and every span ending in
the test is kept in memory. Nothing is written unless asked.

``wstrace.conversation(id)``       the ``ConversationReport`` ``wsanalyze conversation`` renders
``wstrace.conversations()``        every conversation of the test with its verdict
``wstrace.lost()``                 lost messages by hop and cause
``wstrace.assert_delivered(id=None, timeout=None)``  fail, with verdict, hop, cause,
                                   evidence and fix per message, unless every message of
                                   the conversation (None: of each seen) was delivered
``wstrace.settle(timeout=None)``   wait until no message is in flight; ``asettle`` /
                                   ``aassert_delivered`` wait without blocking the event loop
``wstrace.save(dir)``              write the spans for ``wsanalyze ... --traces dir``
``wstrace.spans`` / ``events()``   the raw spans / the event table

A real Celery worker is another process: start it with the session fixture
``wstrace_worker_env`` merged into its environment. Its wstrace then writes its
spans (file exporter, flushed every 100 ms) to the session's
``wstrace_worker_dir``, which every ``wstrace`` fixture reads, keeping what
started since its test did. ``task_always_eager`` and workers started in the
test process (``celery.contrib.testing``) need nothing: their spans are in memory.

ini options: ``wstrace_timeout`` (seconds ``assert_delivered``/``settle`` wait at
most for messages in flight; 10), ``wstrace_in_flight`` (the analyzer's in-flight
horizon, ``--in-flight``; 5), ``wstrace_save_dir`` (save the spans of tests there,
one directory per test) and ``wstrace_save`` (``failed``, the default, or ``all``).

Importing this module imports nothing but pytest: the analysis stack is loaded by
the first test that asks for the fixture.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .fixture import Wstrace

__all__ = ["wstrace", "wstrace_worker_dir", "wstrace_worker_env"]

_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
WORKER_FLUSH_MS = "100"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "wstrace_timeout",
        "wstrace fixture: seconds assert_delivered()/settle() wait for messages in flight",
        default="10",
    )
    parser.addini(
        "wstrace_in_flight",
        "wstrace fixture: seconds a waiting message counts as in flight (wsanalyze --in-flight)",
        default="5",
    )
    parser.addini(
        "wstrace_save_dir", "wstrace fixture: save each test's spans under this directory"
    )
    parser.addini(
        "wstrace_save",
        "wstrace fixture: which tests' spans to save: failed or all",
        default="failed",
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Keep each phase's report on the item, so the fixture knows at teardown whether the test failed."""
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture(scope="session")
def wstrace_worker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory worker processes started with ``wstrace_worker_env`` write their spans to."""
    return tmp_path_factory.mktemp("wstrace-workers")


@pytest.fixture(scope="session")
def wstrace_worker_env(wstrace_worker_dir: Path) -> dict[str, str]:
    """Variables to add to a worker process's environment so its spans reach the tests."""
    return {
        "WSTRACE_ENABLED": "1",
        "WSTRACE_DIR": str(wstrace_worker_dir),
        "WSTRACE_EXPORTERS": "file",
        "OTEL_BSP_SCHEDULE_DELAY": WORKER_FLUSH_MS,
    }


@pytest.fixture
def wstrace(
    request: pytest.FixtureRequest, wstrace_worker_dir: Path, wstrace_worker_env: dict[str, str]
) -> Iterator[Wstrace]:
    """wstrace's spans of this test in memory, and wsanalyze's verdicts on them."""
    from .fixture import capturing

    config = request.config
    with capturing(
        worker_dir=wstrace_worker_dir,
        worker_env=wstrace_worker_env,
        timeout=float(config.getini("wstrace_timeout")),
        in_flight=timedelta(seconds=float(config.getini("wstrace_in_flight"))),
    ) as captured:
        yield captured
        _save(request, captured)


def _save(request: pytest.FixtureRequest, captured: Wstrace) -> None:
    """Save the test's spans as the ini options ask (``wstrace_save_dir``, ``wstrace_save``)."""
    directory = request.config.getini("wstrace_save_dir")
    if not directory:
        return
    reports = request.node.stash.get(_REPORTS, {})
    failed = any(report.failed for report in reports.values())
    if request.config.getini("wstrace_save") != "all" and not failed:
        return
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid).strip("_")
    captured.save(Path(request.config.rootpath, directory) / name)
