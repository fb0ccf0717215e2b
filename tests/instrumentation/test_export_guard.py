"""The OTLP exporter behind ``GuardedExporter``: bounded at exit, one secret-free line when down."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from wstrace import provider as providers
from wstrace.config import ConfigError, load_config
from wstrace.export_guard import GuardedExporter, safe_endpoint

from .endpoints import BlackHole, Collector, dead_endpoint

TRACES = "/v1/traces"


def _spans(count: int = 1) -> list[ReadableSpan]:
    sdk = TracerProvider(shutdown_on_exit=False)
    spans = []
    for index in range(count):
        span = sdk.get_tracer("test").start_span(f"span-{index}")
        span.end()
        spans.append(span)
    return spans


def _guard(base_url: str, timeout: float = 10.0) -> GuardedExporter:
    url = base_url + TRACES
    return GuardedExporter(OTLPSpanExporter(endpoint=url, timeout=timeout), url)


def _loud(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    with BlackHole() as hole:
        yield hole


def test_the_endpoint_shown_has_no_user_info_query_values_or_fragment() -> None:
    assert (
        safe_endpoint("https://user:pw@otel.example:4318/v1/traces?api_key=abc#frag")
        == "https://[redacted]@otel.example:4318/v1/traces?[redacted]"
    )
    assert safe_endpoint("https://tok3n@otel.example/v1/traces") == (
        "https://[redacted]@otel.example/v1/traces"
    )
    assert safe_endpoint("http://127.0.0.1:4318/v1/traces") == "http://127.0.0.1:4318/v1/traces"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "http://localhost:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}, "http://c:4318/v1/traces"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "http://c:4318/v1/traces"),
        (
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:1/custom",
            },
            "http://t:1/custom",
        ),
    ],
)
def test_the_endpoint_is_resolved_as_the_otlp_exporter_does(monkeypatch, environ, expected):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)

    assert providers.otlp_endpoint(environ) == expected
    assert OTLPSpanExporter()._endpoint == expected  # what it would post to on its own


def test_a_refused_connection_is_one_wstrace_line_naming_the_endpoint_and_none_of_the_sdks(
    caplog,
) -> None:
    # 1.5 s: one retry after ~1 s of backoff, then the exporter gives up on the batch.
    guard = _guard(dead_endpoint("otel-user:s3cr3t-pw@"), timeout=1.5)
    try:
        with caplog.at_level(logging.INFO):
            results = [guard.export(_spans()) for _ in range(2)]
    finally:
        guard.shutdown()

    assert results == [SpanExportResult.FAILURE] * 2
    (line,) = _loud(caplog)
    assert line.name == "wstrace" and line.levelno == logging.ERROR
    message = line.getMessage()
    assert "cannot export spans to the OTLP endpoint http://[redacted]@127.0.0.1:" in message
    assert f"{TRACES} (connection refused)" in message
    assert "s3cr3t-pw" not in caplog.text and "otel-user" not in caplog.text


def test_at_exit_an_export_to_a_black_hole_is_given_up_and_the_sdk_shutdown_returns(
    black_hole, caplog
) -> None:
    guard = _guard(black_hole.url)  # the exporter alone would wait 10 s for each batch
    sdk = TracerProvider(shutdown_on_exit=False)
    sdk.add_span_processor(BatchSpanProcessor(guard, schedule_delay_millis=50))
    sdk.get_tracer("test").start_span("in flight").end()
    time.sleep(0.3)  # the processor's worker thread now waits for the black hole
    sdk.get_tracer("test").start_span("queued").end()

    started = time.monotonic()
    guard.expire_in(2.0)
    sdk.shutdown()
    took = time.monotonic() - started

    assert took < 0.5, "an export with no answer for 0.3 s is stalled: not waited for"
    (line,) = _loud(caplog)
    assert "(no answer within" in line.getMessage()


def test_at_exit_an_export_just_started_gets_a_moment_never_more_than_the_limit(
    black_hole,
) -> None:
    guard = _guard(black_hole.url)
    result: list[SpanExportResult] = []
    exporting = threading.Thread(target=lambda: result.append(guard.export(_spans())))
    try:
        exporting.start()
        time.sleep(0.05)
        started = time.monotonic()
        guard.expire_in(0.2)
        exporting.join(5)
        took = time.monotonic() - started
    finally:
        guard.shutdown()

    assert result == [SpanExportResult.FAILURE]
    assert took < 0.5, took  # the 0.2 s limit, with room for a loaded machine


def test_at_exit_a_dead_endpoint_is_not_waited_for_at_all() -> None:
    guard = _guard(dead_endpoint())  # retries with backoff for 10 s on its own
    sdk = TracerProvider(shutdown_on_exit=False)
    sdk.add_span_processor(BatchSpanProcessor(guard, schedule_delay_millis=50))
    sdk.get_tracer("test").start_span("refused").end()
    deadline = time.monotonic() + 5
    while not guard.down and time.monotonic() < deadline:
        time.sleep(0.01)
    sdk.get_tracer("test").start_span("queued").end()

    started = time.monotonic()
    guard.expire_in(2.0)
    sdk.shutdown()

    assert guard.down
    assert time.monotonic() - started < 0.3


def test_a_healthy_endpoint_gets_every_span_and_no_line() -> None:
    with Collector() as collector:
        guard = _guard(collector.url)
        sdk = TracerProvider(shutdown_on_exit=False)
        sdk.add_span_processor(BatchSpanProcessor(guard, schedule_delay_millis=50))
        sdk.get_tracer("test").start_span("delivered").end()
        guard.expire_in(2.0)
        sdk.shutdown()

        assert collector.received(b"delivered")
        assert not guard.down


class _Flaky(SpanExporter):
    """Answers from a script of results."""

    def __init__(self, *results: SpanExportResult) -> None:
        self.results = list(results)

    def export(self, spans):
        return self.results.pop(0)

    def shutdown(self) -> None:
        return None


def _idle(guard: GuardedExporter) -> None:
    """Until the sender has finished the batch in flight (a probe goes on after its export)."""
    with guard._cond:
        assert guard._cond.wait_for(lambda: guard._batch is None, timeout=10)


def test_one_line_per_outage_and_one_when_the_endpoint_answers_again(caplog) -> None:
    failure, success = SpanExportResult.FAILURE, SpanExportResult.SUCCESS
    guard = GuardedExporter(_Flaky(failure, failure, success, success, failure), "http://c/")
    results = []
    try:
        for _ in range(5):
            results.append(guard.export(_spans()))
            _idle(guard)
    finally:
        guard.shutdown()

    # While down an export does not wait: its batch probes the endpoint in the background
    # (the third one succeeds there) and the caller is told FAILURE at once.
    assert results == [failure, failure, failure, success, failure]
    assert [(r.levelno, r.getMessage().split(" (")[0]) for r in _loud(caplog)] == [
        (logging.ERROR, "wstrace: cannot export spans to the OTLP endpoint http://c/"),
        (logging.WARNING, "wstrace: the OTLP endpoint http://c/ answers again"),
        (logging.ERROR, "wstrace: cannot export spans to the OTLP endpoint http://c/"),
    ]


def test_while_down_a_batch_behind_the_probe_is_dropped_at_once() -> None:
    class Hanging(_Flaky):
        def __init__(self) -> None:
            super().__init__()
            self.release, self.seen = threading.Event(), 0

        def export(self, spans):
            self.seen += 1
            if self.seen == 1:
                return SpanExportResult.FAILURE
            self.release.wait(10)  # the probe: an endpoint that does not answer
            return SpanExportResult.FAILURE

    inner = Hanging()
    guard = GuardedExporter(inner, "http://c/")
    try:
        assert guard.export(_spans()) is SpanExportResult.FAILURE  # the outage begins
        assert guard.export(_spans()) is SpanExportResult.FAILURE  # the probe, left running
        started = time.monotonic()
        assert guard.export(_spans()) is SpanExportResult.FAILURE  # behind it: dropped
        assert time.monotonic() - started < 0.5
        inner.release.set()
        _idle(guard)
        assert inner.seen == 2  # the dropped batch never reached the exporter
    finally:
        inner.release.set()
        guard.shutdown()


def test_an_exporter_that_raises_costs_a_batch_and_one_line(caplog) -> None:
    class Broken(_Flaky):
        def export(self, spans):
            raise RuntimeError("encoder bug token=abc123")

    guard = GuardedExporter(Broken(), "http://c/")
    try:
        assert guard.export(_spans()) is SpanExportResult.FAILURE
        assert guard.export(_spans()) is SpanExportResult.FAILURE
    finally:
        guard.shutdown()

    (line,) = _loud(caplog)
    assert "RuntimeError: encoder bug" in line.getMessage()
    assert "abc123" not in line.getMessage()


def test_a_forked_child_exports_through_its_own_sender() -> None:
    guard = GuardedExporter(_Flaky(*[SpanExportResult.SUCCESS] * 2), "http://c/")
    try:
        assert guard.export(_spans()) is SpanExportResult.SUCCESS
        pid = os.fork()
        if pid == 0:  # the child: the parent's sender thread is not here
            os._exit(0 if guard.export(_spans()) is SpanExportResult.SUCCESS else 1)
        deadline = time.monotonic() + 10
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        if done[0] == 0:
            os.kill(pid, 9)
            pytest.fail("the forked child hung in export()")
        assert os.waitstatus_to_exitcode(done[1]) == 0
    finally:
        guard.shutdown()


def test_flush_waits_no_longer_than_its_timeout_and_zero_means_not_at_all(
    monkeypatch, black_hole
) -> None:
    guard = _guard(black_hole.url)
    sdk = TracerProvider(shutdown_on_exit=False)
    sdk.add_span_processor(BatchSpanProcessor(guard))
    monkeypatch.setattr(providers, "_installed", {"provider": sdk, "guards": (guard,)})
    sdk.get_tracer("test").start_span("unanswered").end()
    try:
        started = time.monotonic()
        assert providers.flush(0) is False
        assert time.monotonic() - started < 0.05
        assert providers.flush(300) is False
        assert time.monotonic() - started < 0.6
    finally:
        guard.expire_in(0)
        sdk.shutdown()


def test_shutdown_timeout_ms_is_a_setting_with_a_two_second_default() -> None:
    assert load_config({}, environ={}).shutdown_timeout_ms == 2000
    assert load_config({"SHUTDOWN_TIMEOUT_MS": 500}, environ={}).shutdown_timeout_ms == 500
    with pytest.raises(ConfigError, match="SHUTDOWN_TIMEOUT_MS"):
        load_config({"SHUTDOWN_TIMEOUT_MS": "2s"}, environ={})


_EXITING_APP = """
    import sys, time
    from pathlib import Path
    from opentelemetry import trace
    from wstrace import provider
    from wstrace.config import load_config

    provider.install(load_config(
        {{"EXPORTERS": ["otlp", "file"], "FILE_DIR": {file_dir!r}, "SHUTDOWN_TIMEOUT_MS": 1000}}
    ))
    trace.get_tracer("app").start_span("last words").end()
    provider.flush(0)
    time.sleep({linger})
    print("exiting", flush=True)
"""


@pytest.mark.parametrize("linger", [0.0, 1.0], ids=["just-started", "stalled"])
@pytest.mark.parametrize("endpoint", ["dead", "black hole"])
def test_a_process_exits_within_the_shutdown_limit_and_writes_its_file_first(
    tmp_path: Path, black_hole, endpoint, linger
) -> None:
    url = dead_endpoint() if endpoint == "dead" else black_hole.url
    script = textwrap.dedent(_EXITING_APP.format(file_dir=str(tmp_path), linger=linger))
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        env={**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": url, "WSTRACE_ENABLED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "exiting", proc.communicate()
    exiting = time.monotonic()
    _, stderr = proc.communicate(timeout=30)
    took = time.monotonic() - exiting

    assert proc.returncode == 0, stderr
    assert took < 1.0, f"exit took {took:.2f}s with SHUTDOWN_TIMEOUT_MS=1000\n{stderr}"
    assert stderr.count("wstrace: cannot export spans") == 1, stderr
    assert "Transient error" not in stderr and "Failed to export" not in stderr
    written = "".join(path.read_text() for path in tmp_path.glob("*.jsonl"))
    assert "last words" in written
