"""Common token schemes lose their key in headers and in prose; ordinary words stay readable.

DRF's ``Authorization: Token <key>``, ``Bearer <jwt>``, ``Basic <b64>``, ``X-API-Key``,
``Api-Key <key>``, ``apikey=``, ``?token=``, a key in an app's own log line
(``Invalid token 9944b0…``) and JWTs anywhere. ``CASES`` is shared with the analyzer's
tests (tests/logparse/test_redaction_tokens.py): both sides must hide the same forms.
"""

from __future__ import annotations

import base64

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode
from wstrace import redact
from wstrace.file_exporter import FileSpanExporter
from wstrace.logging import RedactingFilter

from .spans import read_spans

KEY = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"  # a DRF token key
SHORT = "k3y-77"  # too short to be told from a word, but a header says what it is
JWT = jwt.encode({"sub": "42", "scope": "chat"}, "k" * 32, algorithm="HS256")
BASIC = base64.b64encode(b"alice:s3cr3t-pass").decode()

# (text, the secret it holds)
HEADERS = [
    (f"Authorization: Token {KEY}", KEY),
    (f"authorization: token {KEY}", KEY),
    (f"Authorization: Token {SHORT}", SHORT),
    (f"Authorization: Bearer {JWT}", JWT),
    (f"Authorization: Basic {BASIC}", BASIC),
    (f"Authorization: Api-Key {KEY}", KEY),
    (f"Authorization: Api-Key {SHORT}", SHORT),
    (f"X-API-Key: {KEY}", KEY),
    (f"x-api-key: {SHORT}", SHORT),
    (f"Proxy-Authorization: Basic {BASIC}", BASIC),
    (f'{{"Authorization": "Token {KEY}", "Accept": "*/*"}}', KEY),
    (f'{{"X-API-Key": "{SHORT}", "Accept": "*/*"}}', SHORT),
    (f"{{'HTTP_AUTHORIZATION': 'Token {SHORT}'}}", SHORT),
    (f"[(b'authorization', b'Token {SHORT}'), (b'host', b'chat.example')]", SHORT),
    (f"[(b'x-api-key', b'{SHORT}'), (b'host', b'chat.example')]", SHORT),
]
FREE_TEXT = [
    (f"Invalid token {KEY}", KEY),
    (f"token {KEY} was revoked", KEY),
    (f"rejected Token {KEY} for user 7", KEY),
    (f"Api-Key {KEY} is not active", KEY),
    (f"client secret {KEY} rotated", KEY),
    (f"token={KEY}", KEY),
    (f"token={SHORT}", SHORT),
    (f"GET /api/items/?token={SHORT}&page=2 400", SHORT),
    (f"wss://chat.example/ws/c1/?token={JWT}", JWT),
    (f"apikey={SHORT} quota exceeded", SHORT),
    (f"api_key={SHORT}", SHORT),
    (f"upstream said: Bearer {JWT} expired", JWT),
    (f"login with Basic {BASIC}", BASIC),
    (f"ExpiredSignatureError for {JWT}", JWT),
    (f"path=/ws/chat/{JWT}/", JWT),
    (f'{{"detail": "bad signature in {JWT}"}}', JWT),
    (f"jwt={JWT}", JWT),
]
CASES = HEADERS + FREE_TEXT

# Prose about tokens that names none: it must read as it was written.
READABLE = [
    "token expired",
    "Invalid token format",
    "Invalid token.",
    "Token has expired",
    "token revoked by user 7",
    "the api key is missing",
    "Api-Key header required",
    "secret rotation scheduled",
    "usage prompt_tokens=512 completion_tokens=64 total_tokens=576",
    "tokenizer loaded in 120 ms",
    "KeyError: 'content'",
    "redis://cache:6379/0",
]


@pytest.fixture(autouse=True)
def _default_redaction():
    redact.configure(())
    yield
    redact.configure(())


@pytest.mark.parametrize(("text", "secret"), HEADERS)
def test_a_header_s_token_is_redacted_and_its_scheme_kept(text: str, secret: str) -> None:
    clean = redact.redact_text(text)

    assert secret not in clean
    assert redact.REDACTED in clean
    for scheme in ("Token", "Bearer", "Basic", "Api-Key"):
        if f"{scheme} {secret}" in text:
            assert f"{scheme} {redact.REDACTED}" in clean  # the reader still sees which scheme


@pytest.mark.parametrize(("text", "secret"), FREE_TEXT)
def test_a_token_in_free_text_is_redacted(text: str, secret: str) -> None:
    clean = redact.redact_text(text)

    assert secret not in clean
    assert redact.REDACTED in clean
    if secret == JWT:
        assert JWT.split(".")[1] not in clean  # not even the claims


@pytest.mark.parametrize("text", READABLE)
def test_prose_about_tokens_stays_readable(text: str) -> None:
    assert redact.redact_text(text) == text


def test_only_the_key_goes_from_an_app_s_log_line() -> None:
    line = f"WARNING core.auth Invalid token {KEY} from 10.0.0.7 conv=c1"

    assert redact.redact_text(line) == (
        f"WARNING core.auth Invalid token {redact.REDACTED} from 10.0.0.7 conv=c1"
    )


@pytest.mark.parametrize(("text", "secret"), CASES)
def test_every_changed_text_holds_one_of_the_hints(text: str, secret: str) -> None:
    # The analyzer skips the texts without a hint: none of these may be skipped.
    lowered = text.lower()
    assert any(hint in lowered for hint in redact.hints())


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [*(t for t, _ in CASES), *READABLE, " ", "=", ":", "x", "9" * 20, "Token ", "@"]
        ),
        max_size=6,
    ).map("".join)
)
def test_a_text_without_a_hint_is_never_changed(text: str) -> None:
    lowered = text.lower()
    if not any(hint in lowered for hint in redact.hints()):
        assert redact.redact_text(text) == text
    assert redact.redact_text(redact.redact_text(text)) == redact.redact_text(text)  # idempotent


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from([*(t for t, _ in CASES), *READABLE, '"', "'", "token=", "(", ","]),
        max_size=6,
    ).map(" | ".join)
)
def test_forms_side_by_side_in_one_line_all_go(line: str) -> None:
    clean = redact.redact_text(line)

    for text, secret in CASES:
        if text in line:
            assert secret not in clean


def test_a_log_record_loses_every_form() -> None:
    import logging

    for text, secret in CASES:
        record = logging.LogRecord("app", logging.WARNING, __file__, 1, "seen %s", (text,), None)
        RedactingFilter().filter(record)
        assert secret not in record.getMessage(), text


def test_no_form_reaches_the_store_from_any_span_field(tmp_path) -> None:
    provider = TracerProvider(resource=Resource.create({"service.name": "tokens"}))
    provider.add_span_processor(SimpleSpanProcessor(FileSpanExporter(tmp_path, "web", 1 << 20)))
    tracer = provider.get_tracer("someone-elses-instrumentation")
    with tracer.start_as_current_span("POST /api/items/", record_exception=False) as span:
        for i, (text, _) in enumerate(CASES):
            span.set_attribute(f"app.note.{i}", text)
        span.add_event("upstream", {"line": " | ".join(t for t, _ in FREE_TEXT)})
        try:
            raise PermissionError(f"Invalid token {KEY}")
        except PermissionError as exc:
            span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, f"Authorization: Api-Key {SHORT} refused"))
    provider.shutdown()

    written = "".join(p.read_text() for p in tmp_path.glob("*.jsonl"))
    assert written
    for secret in {s for _, s in CASES}:
        assert secret not in written
    [stored] = read_spans(tmp_path)
    assert stored.status_message == f"Authorization: Api-Key {redact.REDACTED} refused"
