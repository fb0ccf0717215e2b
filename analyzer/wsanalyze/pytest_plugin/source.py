"""A test's captured spans as a trace source, so the analysis front door reads them like any other.

Two kinds of spans make up a test's evidence:

* the spans of the test process itself, kept in memory by ``capture.SpanCapture``:
  encoded as wstrace's file exporter writes them (``wstrace.otlp_json``) and made
  rows by the normaliser every OTLP reader uses (``sources._otlp.rows``), so they
  become exactly the rows the same spans read back from a file would;
* the spans of worker processes (a real Celery worker), written by their own file
  exporter to a directory the fixture points them at: read with ``load_events``,
  as ``--traces DIR`` would, keeping what started since the test did (and the
  workers' ``ws.worker_ready``, which tells which queues are consumed).

``CapturedTraces`` registers itself under the ``wstrace-capture://<key>`` scheme
while a test runs; ``wsanalyze.analysis`` opens that like ``jaeger://`` or a
directory. The data window ends *now*: a capture is live, so a message still
waiting is in flight until the horizon passes, then lost.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from opentelemetry.sdk.trace import ReadableSpan
from wstrace import conventions as c

from wsanalyze.events import conform, empty_events
from wsanalyze.sources import load_events
from wsanalyze.sources._otlp.codec import loads
from wsanalyze.sources._otlp.frame import rows_to_frame
from wsanalyze.sources._otlp.rows import iter_spans, span_row
from wsanalyze.sources.base import Query, ReadResult, SourceError, register_scheme

from .capture import SpanCapture

__all__ = ["SCHEME", "CapturedTraces", "span_rows"]

SCHEME = "wstrace-capture"
ORIGIN = "in-process"
_OPEN: dict[str, CapturedTraces] = {}


def span_rows(spans: Sequence[ReadableSpan], problems: list[str], first: int = 0) -> list[tuple]:
    """Event-table row tuples of SDK spans, through the OTLP/JSON encoding the file store uses."""
    from wstrace.otlp_json import encode_request

    rows = []
    for number, (service, span) in enumerate(iter_spans(loads(encode_request(spans))), first):
        try:
            rows.append(span_row(span, service, f"{ORIGIN}:{number}"))
        except Exception as exc:  # one span the table cannot hold costs that span
            problems.append(f"{ORIGIN}:{number}: span skipped ({exc})")
    return rows


def _open(spec: str) -> CapturedTraces:
    key = spec.split("://", 1)[1]
    try:
        return _OPEN[key]
    except KeyError:
        raise SourceError(f"{spec}: no wstrace fixture is capturing under that name") from None


def _is_worker() -> pl.Expr:
    """A worker's start-up span: which queues it consumes (a fact of no conversation)."""
    return (
        (pl.col("event") == c.EV_WORKER_READY) | (pl.col("name") == c.SPAN_WORKER_READY)
    ).fill_null(False)


class CapturedTraces:
    """The spans of one test: kept in memory in this process, plus a worker directory."""

    description = "spans captured by the wstrace pytest fixture"
    reads_message_ids = True  # every row is at hand: selecting by message id is a filter

    def __init__(self, capture: SpanCapture, worker_dir: Path | None, since: datetime) -> None:
        self.capture = capture
        self.worker_dir = worker_dir
        self.since = since
        self.key = uuid.uuid4().hex
        self._rows: list[tuple] = []
        self._converted = 0
        self._problems: list[str] = []
        self._frozen: tuple[pl.DataFrame, list[str], datetime] | None = None
        self._worker_read: tuple[tuple, pl.DataFrame, list[str]] | None = None
        self._lock = threading.RLock()

    @property
    def spec(self) -> str:
        """The ``--traces`` value that opens these spans (while registered)."""
        return f"{SCHEME}://{self.key}"

    def register(self) -> None:
        """Make ``spec`` open this source."""
        register_scheme(SCHEME, _open)
        _OPEN[self.key] = self

    def unregister(self) -> None:
        _OPEN.pop(self.key, None)

    # --- TraceReader -----------------------------------------------------------------
    def read(self, query: Query) -> ReadResult:
        """Every captured event (``load_events`` applies the query's selectors)."""
        with self._lock:
            if self._frozen is not None:
                events, problems, end = self._frozen
            else:
                (events, problems), end = self.events(), datetime.now(UTC)
        return ReadResult(
            events=events.lazy(), problems=list(problems), sources=[self.spec], window_end=end
        )

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Within the block every read answers the table as of its start (one analysis, one view)."""
        with self._lock:
            if self._frozen is not None:
                yield
                return
            events, problems = self.events()
            self._frozen = (events, problems, datetime.now(UTC))
            try:
                yield
            finally:
                self._frozen = None

    # --- the rows ----------------------------------------------------------------------
    def events(self) -> tuple[pl.DataFrame, list[str]]:
        """The event table of every span captured so far, and the problems reading them."""
        with self._lock:
            spans = self.capture.spans(self._converted)
            if spans:
                self._rows += span_rows(spans, self._problems, self._converted)
                self._converted += len(spans)
            frames = [rows_to_frame(self._rows) if self._rows else empty_events().collect()]
            problems = list(self._problems)
        worker, worker_problems = self._worker_events()
        if worker is not None:
            frames.append(worker)
        frame = pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]
        return conform(frame.lazy()).collect(), problems + worker_problems

    def _worker_events(self) -> tuple[pl.DataFrame | None, list[str]]:
        """What worker processes wrote since the test started (and their start-up facts).

        Read again only when a file changed: waiting looks every tenth of a second.
        """
        files = self._worker_sizes()
        if not files:
            return None, []
        if self._worker_read is not None and self._worker_read[0] == files:
            return self._worker_read[1], self._worker_read[2]
        try:
            result = load_events(self.worker_dir)
        except SourceError as exc:
            return None, [str(exc)]
        since = pl.lit(self.since).cast(pl.Datetime("ns", "UTC"))
        events = result.events.filter((pl.col("ts") >= since) | _is_worker()).collect()
        self._worker_read = (files, events, list(result.problems))
        return events, list(result.problems)

    def worker_files(self) -> list[Path]:
        """The trace files in the worker directory (none when there is no directory)."""
        if self.worker_dir is None or not self.worker_dir.is_dir():
            return []
        return sorted(p for p in self.worker_dir.rglob("*") if p.is_file())

    def _worker_sizes(self) -> tuple[tuple[str, int, int], ...]:
        """(path, size, mtime) of each worker file: what changes when a worker writes."""
        sizes = []
        for path in self.worker_files():
            with contextlib.suppress(OSError):
                stat = os.stat(path)
                sizes.append((str(path), stat.st_size, stat.st_mtime_ns))
        return tuple(sizes)

    def mark(self) -> tuple:
        """Changes whenever a span is captured or a worker writes: for waiting until quiet."""
        return len(self.capture), self._worker_sizes()
