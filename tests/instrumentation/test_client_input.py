"""What a client sends never becomes more than evidence (issue 13).

* a very long client message id travels as a bounded, stable short form, the
  same in every process and on every record wstrace writes;
* ids in a client's baggage never name a span, trusted trace context or not;
* with bodies off, an exception raised while handling a client frame is
  recorded as its type and location, never with the frame's text.

The span tests run ``client_input_app.py`` (a real Channels stack driven by
``WebsocketCommunicator``) in a subprocess with one WSTRACE setting.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import baggage, context, trace
from wstrace import carrier, current
from wstrace import conventions as c
from wstrace import logging as wslogging
from wstrace.channels.bare_exceptions import bare_traceback

from .client_input_app import CLIENT_TRACE_ID, FORGED, SECRET
from .spans import Span, by_name, read_spans

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LONG = "m-" + "x" * 8998


# --- capping long ids -------------------------------------------------------------------
@pytest.mark.parametrize("value", ["m-1", "", "x" * 128, "é" * 128])
def test_ids_up_to_the_limit_are_unchanged(value: str) -> None:
    assert current.capped_id(value) == value


def test_a_long_id_becomes_its_prefix_and_a_hash() -> None:
    short = current.capped_id(LONG)

    digest = hashlib.sha256(LONG.encode()).hexdigest()[:16]
    assert short == LONG[:48] + "~" + digest
    assert len(short) == 65 <= current.ID_LIMIT
    assert current.capped_id(LONG) == short  # stable
    assert current.capped_id(short) == short  # a short form stays as it is


def test_distinct_long_ids_with_one_prefix_get_distinct_short_forms() -> None:
    ids = [LONG[:-1] + tail for tail in "abcdefgh"] + ["x" * 129, "x" * 130]
    shorts = {current.capped_id(i) for i in ids}

    assert len(shorts) == len(ids)
    assert all(len(s) <= current.ID_LIMIT for s in shorts)


def test_any_text_can_be_capped() -> None:
    odd = "\ud800" + "☃" * 300  # a lone surrogate (JSON allows it) and non-ASCII
    assert len(current.capped_id(odd)) == 65


def test_the_worker_reads_the_short_form_the_web_wrote() -> None:
    web = carrier.with_ids(
        trace.set_span_in_context(_remote_span()), conversation_id="c-1", message_id=LONG
    )
    headers = carrier.inject(web)  # Celery task headers
    worker = carrier.extract(headers)

    assert len(headers["baggage"]) < 200
    assert current.ids(worker) == {
        c.CONVERSATION_ID: "c-1",
        c.MESSAGE_ID: current.capped_id(LONG),
    }
    layer = carrier.message_carrier(current.span_context(worker), current.ids(worker))
    delivered = carrier.extract_message(layer)
    assert current.ids(delivered)[c.MESSAGE_ID] == current.capped_id(LONG)


def test_long_ids_written_by_someone_else_are_capped_when_read() -> None:
    long = "m" * 300  # under the W3C member limit, over ours
    from_header = carrier.extract({"baggage": f"ws.message_id={long}"})
    from_message = carrier.extract_message({c.MESSAGE_ID: long, c.CONVERSATION_ID: long})
    raw = baggage.set_baggage(c.MESSAGE_ID, long, context.Context())

    for ctx in (from_header, from_message):
        assert carrier.baggage_of(ctx)[c.MESSAGE_ID] == current.capped_id(long)
    assert current.ids(from_message)[c.CONVERSATION_ID] == current.capped_id(long)
    assert current.ids(raw)[c.MESSAGE_ID] == current.capped_id(long)


def test_log_records_carry_the_short_form() -> None:
    ctx = carrier.with_ids(trace.set_span_in_context(_remote_span()), message_id=LONG)
    wslogging.install_record_factory()
    token = current.attach(ctx)
    try:
        record = logging.getLogRecordFactory()("x", logging.INFO, __file__, 1, "hi", (), None)
    finally:
        current.detach(token)
        wslogging.uninstall_record_factory()

    assert record.message_id == current.capped_id(LONG)


def _remote_span() -> trace.Span:
    return trace.NonRecordingSpan(trace.SpanContext(0xABC, 0xDEF, is_remote=True))


# --- the subprocess app -----------------------------------------------------------------
def run_app(trace_dir: Path, settings: dict[str, Any], scenarios: list[str]) -> list[Span]:
    result = subprocess.run(
        [
            sys.executable,
            str(HERE / "client_input_app.py"),
            str(trace_dir),
            json.dumps(settings),
            *scenarios,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": f"{ROOT / 'instrumentation'}:{HERE}",
        },
    )
    assert result.returncode == 0, result.stderr
    return read_spans(trace_dir)


def of_path(spans: list[Span], path: str) -> list[Span]:
    """Every span of the one connection opened on ``path``."""
    (connection,) = {
        s.attributes[c.CONNECTION_ID]
        for s in by_name(spans, c.SPAN_CONNECT)
        if s.attributes[c.PATH] == path
    }
    return [s for s in spans if s.attributes.get(c.CONNECTION_ID) == connection]


# --- ids in the client's baggage --------------------------------------------------------
@pytest.fixture(scope="module", params=[False, True], ids=["untrusted", "trusted"])
def forged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    trusted = request.param
    spans = run_app(
        tmp_path_factory.mktemp("forged"),
        {"TRUST_CLIENT_CONTEXT": trusted},
        ["forged_chat", "forged_lobby"],
    )
    return trusted, spans


def test_baggage_from_the_client_never_sets_a_span_id(forged: Any) -> None:
    _, spans = forged
    values = {str(v) for s in spans for k, v in s.attributes.items() if k.startswith("ws.")}

    assert not values & {*FORGED.values(), "forged-x"}
    assert spans and all(s.attributes.get(c.CONNECTION_ID) for s in spans)


def test_the_ids_are_the_route_s_and_the_frame_s(forged: Any) -> None:
    _, spans = forged
    chat = of_path(spans, "/ws/chat/c-real/")
    lobby = of_path(spans, "/ws/lobby/")

    assert {s.attributes.get(c.CONVERSATION_ID) for s in chat} == {"c-real"}
    assert {s.attributes.get(c.CONVERSATION_ID) for s in lobby} == {None}  # nothing named one
    for connection, message_id in ((chat, "m-real"), (lobby, "m-lobby")):
        hops = {s.hop for s in connection if s.attributes.get(c.MESSAGE_ID) == message_id}
        assert hops >= {"receive", "publish", "deliver", "send"}
        assert {s.attributes.get(c.MESSAGE_ID) for s in connection if s.hop == c.HOP_CONNECT} == {
            None
        }


def test_only_a_trusted_client_s_trace_is_continued(forged: Any) -> None:
    trusted, spans = forged
    connects = by_name(spans, c.SPAN_CONNECT)

    assert len(connects) == 2
    assert all((s.trace_id == CLIENT_TRACE_ID) is trusted for s in connects)


# --- exceptions that quote the frame ------------------------------------------------------
@pytest.fixture(scope="module", params=[False, True], ids=["bodies-off", "bodies-on"])
def crashed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    bodies = request.param
    spans = run_app(
        tmp_path_factory.mktemp("crashed"), {"RECORD_BODIES": bodies}, ["boom", "chained"]
    )
    return bodies, spans


def exception_events(spans: list[Span]) -> list[dict[str, Any]]:
    return [e["attributes"] for s in spans for e in s.events if e["name"] == "exception"]


def test_a_frame_s_text_in_an_exception_is_recorded_only_with_bodies_on(crashed: Any) -> None:
    bodies, spans = crashed
    spans = of_path(spans, "/ws/chat/c-boom/")
    (receive,) = by_name(spans, c.SPAN_RECEIVE)
    (disconnect,) = by_name(spans, c.SPAN_DISCONNECT)  # the crash the exception caused

    for span in (receive, disconnect):
        (event,) = exception_events([span])
        assert span.is_error and event["exception.type"] == "ValueError"
        stack = event["exception.stacktrace"]
        assert "client_input_app.py" in stack and ", in receive" in stack
        if bodies:
            assert SECRET in event["exception.message"] and SECRET in stack
        else:
            assert "exception.message" not in event
            assert stack.rstrip().endswith("\nValueError")
            assert SECRET not in json.dumps(event)
    if bodies:
        assert SECRET in receive.status_message
    else:
        assert receive.status_message == "ValueError"
        assert SECRET not in json.dumps([s.attributes for s in spans])


def test_a_chained_exception_keeps_every_type_and_location_and_no_text(crashed: Any) -> None:
    bodies, spans = crashed
    spans = of_path(spans, "/ws/chat/c-chained/")
    (receive,) = by_name(spans, c.SPAN_RECEIVE)
    (event,) = exception_events([receive])

    stack = event["exception.stacktrace"]
    assert event["exception.type"] == "RuntimeError"
    assert stack.index("KeyError") < stack.index("direct cause") < stack.index("RuntimeError")
    assert stack.count("client_input_app.py") == 2
    if not bodies:
        assert SECRET not in json.dumps(exception_events(spans))
        assert SECRET not in json.dumps([[s.attributes, s.status_message] for s in spans])


def test_a_bare_traceback_is_the_traceback_without_messages_or_source() -> None:
    def fail(text: str) -> None:
        try:
            {}[text]
        except KeyError:
            raise ValueError(text) from None

    try:
        try:
            fail(SECRET)
        except ValueError as exc:
            raise RuntimeError(SECRET) from exc
    except RuntimeError as exc:
        caught = exc

    bare = bare_traceback(caught)

    assert SECRET not in bare and "{}[text]" not in bare  # no message, no source line
    blocks = bare.split("\nThe above exception was the direct cause of the following exception:\n")
    assert len(blocks) == 2  # the suppressed KeyError context is left out, as Python does
    assert blocks[0].rstrip().endswith("\nValueError") and ", in fail\n" in blocks[0]
    assert blocks[1].rstrip().endswith("\nRuntimeError")
    assert f'File "{__file__}", line ' in blocks[1]
