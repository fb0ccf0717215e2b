"""Secrets never leave the process: query params, Authorization values, JWTs, header keys."""

from __future__ import annotations

import logging

import jwt
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode
from wstrace import redact
from wstrace.file_exporter import FileSpanExporter
from wstrace.logging import CorrelationFormatter, RedactingFilter
from wstrace.provider import RedactingExporter

from .spans import read_spans

SECRET = "s3cr3tV4lue"
JWT = jwt.encode({"sub": "1", "name": "alice", "typ": "ws"}, "k" * 32, algorithm="HS256")


@pytest.fixture(autouse=True)
def _default_redaction():
    redact.configure(())
    yield
    redact.configure(())


@pytest.mark.parametrize(
    "text",
    [
        f"/ws/chat/c1/?token={SECRET}",
        f"wss://chat.example/ws/chat/c1/?x=1&access_token={SECRET}&y=2",
        f"refresh_token={SECRET}",
        f"jwt={SECRET}",
        f"auth={SECRET}",
        f"X-Auth-Token: {SECRET}",
        f"authorization={SECRET}",
        f"api_key={SECRET}",
        f"password = {SECRET}",
        f"Cookie: sessionid={SECRET}; theme=dark",
        f'{{"token": "{SECRET}", "n": 1}}',
        f"{{'access_token': '{SECRET}'}}",
    ],
)
def test_secret_parameters_lose_their_values(text):
    clean = redact.redact_text(text)

    assert SECRET not in clean
    assert redact.REDACTED in clean


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {SECRET}",
        f"authorization: bearer {SECRET}",
        f"header was Bearer {SECRET}",
        f"Authorization: Basic {SECRET}",
        f"[(b'authorization', b'Bearer {SECRET}')]",
    ],
)
def test_bearer_and_basic_values_are_redacted(text):
    assert SECRET not in redact.redact_text(text)


def test_authorization_header_keeps_its_scheme_for_the_reader():
    assert (
        redact.redact_text(f"Authorization: Bearer {SECRET}") == "Authorization: Bearer [redacted]"
    )


@pytest.mark.parametrize(
    "text",
    [
        f"decode failed for {JWT}",
        f"ExpiredSignatureError: token {JWT} expired",
        JWT,
        f"path=/ws/chat/c1/{JWT}",
    ],
)
def test_bare_jwts_are_redacted_wherever_they_appear(text):
    clean = redact.redact_text(text)

    assert JWT not in clean
    assert JWT.split(".")[1] not in clean  # not even the claims part


@pytest.mark.parametrize(
    "text",
    [
        "",
        "ws.connect",
        "/ws/chat/c1/",
        "chat_5f2a9c",
        "redis://127.0.0.1:6379/0",
        "redis 127.0.0.1:6379/0 prefix=asgi",
        "task_id=9b1c2f task_name=core.agents.tasks.run_agent",
        "KeyError: 'content'",
        "Let me look into that. I checked the knowledge base",
        "http://localhost:8000",
    ],
)
def test_clean_strings_are_returned_untouched(text):
    assert redact.redact_text(text) == text


def test_redaction_is_idempotent():
    once = redact.redact_text(f"?token={SECRET}&a=b Authorization: Bearer {JWT}")
    assert redact.redact_text(once) == once


def test_configured_extra_params_are_redacted_too():
    text = f"tenant_key={SECRET}"
    assert redact.redact_text(text) == text

    redact.configure(["tenant_key"])

    assert SECRET not in redact.redact_text(text)


@pytest.mark.parametrize(
    "key",
    [
        "http.request.header.authorization",
        "http.request.header.cookie",
        "http.response.header.set-cookie",
        "Authorization",
        "proxy-authorization",
        "x-api-key",
    ],
)
def test_authorization_and_cookie_attribute_keys_are_secret(key):
    assert redact.is_secret_key(key)


@pytest.mark.parametrize("key", ["ws.path", "ws.origin", "http.route", "ws.user_id", "ws.cause"])
def test_ordinary_attribute_keys_are_not_secret(key):
    assert not redact.is_secret_key(key)


def _provider(exporter) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "redaction-test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _emit_secret_span(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("someone-elses-instrumentation")
    with tracer.start_as_current_span("GET /ws/chat/c1/", record_exception=False) as span:
        span.set_attribute("http.url", f"http://h/ws/chat/c1/?token={JWT}")
        span.set_attribute("http.request.header.authorization", (f"Bearer {SECRET}",))
        span.set_attribute("http.request.header.cookie", f"sessionid={SECRET}")
        span.set_attribute("ws.path", "/ws/chat/c1/")
        try:
            raise ValueError(f"invalid token {JWT}")
        except ValueError as exc:
            span.record_exception(exc)
        span.add_event("auth", {"header": f"Bearer {SECRET}"})
        span.set_status(Status(StatusCode.ERROR, f"rejected access_token={SECRET}"))


def test_the_file_store_writes_no_secret_from_any_instrumentation(tmp_path):
    provider = _provider(FileSpanExporter(tmp_path, "web", 1 << 20))

    _emit_secret_span(provider)
    provider.shutdown()

    written = "".join(p.read_text() for p in tmp_path.glob("*.jsonl"))
    assert written
    assert SECRET not in written and JWT not in written
    [span] = read_spans(tmp_path)
    assert span.attributes["http.request.header.authorization"] == redact.REDACTED
    assert span.attributes["http.request.header.cookie"] == redact.REDACTED
    assert span.attributes["ws.path"] == "/ws/chat/c1/"
    assert span.attributes["http.url"] == "http://h/ws/chat/c1/?token=[redacted]"
    assert span.status_message == "rejected access_token=[redacted]"
    assert [e["name"] for e in span.events] == ["exception", "auth"]


def test_exporters_wstrace_does_not_encode_get_redacted_copies():
    inner = InMemorySpanExporter()
    provider = _provider(RedactingExporter(inner))

    _emit_secret_span(provider)

    [span] = inner.get_finished_spans()
    dumped = span.to_json()
    assert SECRET not in dumped and JWT not in dumped
    assert span.attributes["http.request.header.authorization"] == redact.REDACTED
    assert span.attributes["ws.path"] == "/ws/chat/c1/"
    assert span.status.status_code is StatusCode.ERROR
    assert span.name == "GET /ws/chat/c1/"


def test_a_clean_span_is_passed_through_unchanged():
    finished = InMemorySpanExporter()
    tracer = _provider(finished).get_tracer("t")
    with tracer.start_as_current_span("ws.receive") as span:
        span.set_attribute("ws.hop", "receive")
    [readable] = finished.get_finished_spans()
    inner = InMemorySpanExporter()

    RedactingExporter(inner).export([readable])

    assert inner.get_finished_spans()[0] is readable  # no copy when nothing is secret


def _record(msg: str, args: tuple = ()) -> logging.LogRecord:
    return logging.LogRecord("core.agents", logging.WARNING, __file__, 1, msg, args, None)


def test_correlation_formatter_redacts_the_whole_line():
    line = CorrelationFormatter("%(levelname)s %(message)s").format(
        _record("rejected %s", (f"/ws/chat/c1/?token={JWT}",))
    )

    assert JWT not in line
    assert line.startswith("WARNING rejected /ws/chat/c1/?token=")


def test_redacting_filter_strips_tokens_from_a_message():
    record = _record(f"connect with Authorization: Bearer {SECRET}")

    assert RedactingFilter().filter(record) is True
    assert SECRET not in record.getMessage()


def test_redacting_filter_strips_tokens_passed_as_arguments():
    record = _record("connect %s", (f"/ws/chat/c1/?token={SECRET}",))

    RedactingFilter().filter(record)

    assert SECRET not in record.getMessage()
    assert record.getMessage() == "connect /ws/chat/c1/?token=[redacted]"


def test_redacting_filter_leaves_clean_records_with_arguments_alone():
    record = _record("chunk %d of %s", (3, "chat_c1"))

    RedactingFilter().filter(record)

    assert (record.msg, record.args) == ("chunk %d of %s", (3, "chat_c1"))
