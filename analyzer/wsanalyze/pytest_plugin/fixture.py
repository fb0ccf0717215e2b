"""``Wstrace``: what the ``wstrace`` fixture hands a test, and ``capturing()``, which makes one.

Every question is answered by the analysis front door (``wsanalyze.analysis``)
on the test's spans (``source.CapturedTraces``), so a report here is the report
``wsanalyze conversation`` prints for the same spans.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
import warnings
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from opentelemetry.sdk.trace import ReadableSpan

from wsanalyze import analysis
from wsanalyze.report import ConversationReport, ConversationSummary, LostReport

from . import failure
from .capture import SpanCapture, close_codes, instrumented
from .source import CapturedTraces

__all__ = ["Wstrace", "capturing"]

POLL_S = 0.1  # between two looks while waiting
QUIET_S = 0.3  # a worker's files unchanged this long: its last spans are in


class WstraceWarning(UserWarning):
    """The fixture was used in a way that cannot give the answer asked for."""


class Wstrace:
    """The spans of one test, analysed as ``wsanalyze`` would (see the plugin's docs)."""

    def __init__(
        self,
        traces: CapturedTraces,
        *,
        timeout: float,
        in_flight: timedelta,
        worker_env: Mapping[str, str],
    ) -> None:
        self._traces = traces
        self.timeout = timeout
        self.in_flight = in_flight
        self.worker_env = dict(worker_env)

    # --- the evidence ------------------------------------------------------------------
    @property
    def spans(self) -> list[ReadableSpan]:
        """The spans this process recorded during the test (a worker's are in its files)."""
        return self._traces.capture.spans()

    @property
    def traces(self) -> str:
        """The ``traces=`` value that opens this test's spans in ``wsanalyze.analysis``."""
        return self._traces.spec

    def events(self) -> pl.DataFrame:
        """The event table of the test's spans (``wsanalyze.events.SCHEMA``)."""
        return self._traces.events()[0]

    # --- the analysis ------------------------------------------------------------------
    def conversation(self, conversation_id: str) -> ConversationReport:
        """What ``wsanalyze conversation <id>`` reports (raises ``AnalysisError`` for an unknown id)."""
        with self._traces.frozen():
            return analysis.conversation_report(
                conversation_id,
                traces=self.traces,
                close_codes=close_codes(),
                in_flight=self.in_flight,
            )

    def conversations(self) -> list[ConversationSummary]:
        """Every conversation of the test with its verdict, newest first (``wsanalyze conversations``)."""
        with self._traces.frozen():
            rows, _ = analysis.conversation_list(
                traces=self.traces, close_codes=close_codes(), in_flight=self.in_flight
            )
        return rows

    def lost(self) -> LostReport:
        """Lost messages by hop and cause (``wsanalyze lost``)."""
        with self._traces.frozen():
            return analysis.lost_report(
                traces=self.traces, close_codes=close_codes(), in_flight=self.in_flight
            )

    # --- waiting -----------------------------------------------------------------------
    def settle(self, timeout: float | None = None) -> list[ConversationSummary]:
        """Wait until no message is in flight (and workers' spans are in), ``timeout`` at most.

        Blocks this thread: in an ``async`` test, ``await asettle()`` lets the app run meanwhile.
        """
        waiting = _Waiting(self, timeout)
        warned = False
        while not waiting.done():
            if not warned and _loop_running():
                warned = True
                warnings.warn(
                    "wstrace.settle()/assert_delivered() waits by blocking the event loop "
                    "this test and its application share; use await wstrace.asettle() / "
                    "await wstrace.aassert_delivered() in async tests",
                    WstraceWarning,
                    stacklevel=3,
                )
            time.sleep(POLL_S)
        return waiting.rows

    async def asettle(self, timeout: float | None = None) -> list[ConversationSummary]:
        """``settle()`` for async tests: the event loop (and the app on it) runs while waiting."""
        waiting = _Waiting(self, timeout)
        while not waiting.done():
            await asyncio.sleep(POLL_S)
        return waiting.rows

    def assert_delivered(
        self, conversation_id: str | None = None, *, timeout: float | None = None
    ) -> None:
        """Fail unless every message of the conversation (None: of every one seen) was delivered.

        Waits first while messages are in flight (``timeout``, default the
        ``wstrace_timeout`` ini value). The assertion message holds, per message
        that did not arrive, the verdict, hop, cause, evidence and fix.
        """
        __tracebackhide__ = True
        started = time.monotonic()
        rows = self.settle(timeout)
        self._check(conversation_id, rows, time.monotonic() - started)

    async def aassert_delivered(
        self, conversation_id: str | None = None, *, timeout: float | None = None
    ) -> None:
        """``assert_delivered()`` for async tests (waits with ``asettle()``)."""
        __tracebackhide__ = True
        started = time.monotonic()
        rows = await self.asettle(timeout)
        self._check(conversation_id, rows, time.monotonic() - started)

    def _check(
        self, conversation_id: str | None, rows: list[ConversationSummary], waited: float
    ) -> None:
        __tracebackhide__ = True
        seen = [r.conversation_id for r in reversed(rows)]  # oldest first
        if conversation_id is None and not seen:
            raise AssertionError(failure.nothing_seen(self._traces.events()[1]))
        if conversation_id is not None and conversation_id not in seen:
            raise AssertionError(failure.not_seen(conversation_id, seen))
        with self._traces.frozen():
            reports = [
                self.conversation(i) for i in ([conversation_id] if conversation_id else seen)
            ]
        failed = [r for r in reports if not failure.delivered(r)]
        if failed:
            raise AssertionError(failure.describe_failures(failed, len(reports), waited))

    # --- keeping the evidence ------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the test's spans to ``directory`` for ``wsanalyze ... --traces DIR``; return it.

        This process's spans go to ``in-process.jsonl`` (the file store's format);
        the worker directory's files are copied whole (they hold the session's other
        tests too: ask for a conversation by id).
        """
        from wstrace.otlp_json import encode_request

        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        spans = self.spans
        lines = [encode_request(spans[i : i + 512]) + "\n" for i in range(0, len(spans), 512)]
        (path / "in-process.jsonl").write_text("".join(lines), encoding="utf-8")
        worker_dir = self._traces.worker_dir
        for source in self._traces.worker_files():
            target = path / "workers" / source.relative_to(worker_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        return path


class _Waiting:
    """One wait for the test's conversations to settle; ``done()`` takes one look."""

    def __init__(self, owner: Wstrace, timeout: float | None) -> None:
        self.owner = owner
        now = time.monotonic()
        self.deadline = now + (owner.timeout if timeout is None else timeout)
        self.mark = owner._traces.mark()
        self.changed = now
        self.rows: list[ConversationSummary] = []

    def done(self) -> bool:
        """Look once: True when nothing is in flight and the workers are quiet, or time is up."""
        traces = self.owner._traces
        self.rows = self.owner.conversations()
        now = time.monotonic()
        mark = traces.mark()
        if mark != self.mark:
            self.mark, self.changed = mark, now
        waiting = any(r.in_flight or r.verdict.outcome == "in_flight" for r in self.rows)
        quiet = not traces.worker_files() or now - self.changed >= QUIET_S
        return (not waiting and quiet) or now >= self.deadline


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@contextlib.contextmanager
def capturing(
    *,
    worker_dir: Path | None,
    worker_env: Mapping[str, str],
    timeout: float,
    in_flight: timedelta,
) -> Iterator[Wstrace]:
    """wstrace on in this process, its spans kept in memory, for the duration of the block."""
    with instrumented():
        capture = SpanCapture()
        capture.attach()
        traces = CapturedTraces(capture, worker_dir, datetime.now(UTC))
        traces.register()
        try:
            yield Wstrace(traces, timeout=timeout, in_flight=in_flight, worker_env=worker_env)
        finally:
            traces.unregister()
            capture.detach()
