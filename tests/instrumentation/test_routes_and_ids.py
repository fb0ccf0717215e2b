"""Real apps (issue 10): conversations only from routing, the app's own ids, frame types,
and a channel layer that fails under an open consumer.

Each fixture runs ``routes_app.py`` (a real Channels stack: ProtocolTypeRouter →
OriginValidator → middleware → URLRouter, driven by ``WebsocketCommunicator``)
in a subprocess with one WSTRACE setting, and reads back the spans it wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from wsanalyze.demo.redis_server import RedisServer
from wstrace import conventions as c

from .spans import Span, by_name, read_spans

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RESOLVER = {"CONVERSATION_RESOLVER": "routes_app.resolve", "ANSWERED_TYPES": ["message"]}
EVERY_SCENARIO = [
    *("route", "nested", "notice", "query", "header", "user", "first_frame", "boom"),
    *("origin_chat", "origin_user", "origin_unrouted", "big_frame", "handler_error"),
]


@dataclass
class Run:
    """What one run of the app left: its spans, its output and its stderr (wstrace's log)."""

    spans: list[Span]
    stdout: str
    stderr: str

    def connection(self, *, path: str | None = None, message_id: str | None = None) -> list[Span]:
        """Every span of the one connection with this path (or whose receive had this id)."""
        if path is not None:
            ids = {
                s.attributes[c.CONNECTION_ID]
                for s in by_name(self.spans, c.SPAN_CONNECT)
                if s.attributes[c.PATH] == path
            }
        else:
            ids = {
                s.attributes[c.CONNECTION_ID]
                for s in by_name(self.spans, c.SPAN_RECEIVE)
                if s.attributes[c.MESSAGE_ID] == message_id
            }
        assert len(ids) == 1, (path, message_id, ids)
        return [s for s in self.spans if s.attributes.get(c.CONNECTION_ID) in ids]


def run_app(tmp_path: Path, settings: dict[str, Any], scenarios: list[str], **env: str) -> Run:
    result = subprocess.run(
        [
            sys.executable,
            str(HERE / "routes_app.py"),
            str(tmp_path),
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
            **env,
        },
    )
    assert result.returncode == 0, result.stderr
    return Run(read_spans(tmp_path), result.stdout, result.stderr)


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Every scenario with the test's CONVERSATION_RESOLVER and ANSWERED_TYPES = ["message"]."""
    return run_app(tmp_path_factory.mktemp("resolved"), RESOLVER, EVERY_SCENARIO)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """No resolver, no pattern, no answered types: routing alone names conversations."""
    scenarios = ["route", "notice", "no_resolver", "first_frame", "origin_chat"]
    return run_app(tmp_path_factory.mktemp("plain"), {}, scenarios)


def one(spans: list[Span], name: str) -> Span:
    (span,) = by_name(spans, name)
    return span


def conversations(spans: list[Span]) -> set[Any]:
    return {s.attributes.get(c.CONVERSATION_ID) for s in spans}


# --- conversations only from routing -------------------------------------------------
def test_a_route_with_the_conversation_kwarg_names_the_conversation(resolved: Run) -> None:
    spans = resolved.connection(path="/ws/chat/c-route/")

    connect = one(spans, c.SPAN_CONNECT)
    assert connect.attributes[c.CONVERSATION_ID] == "c-route"
    assert connect.attributes[c.CONVERSATION_SOURCE] == "route"
    assert connect.attributes[c.ROUTE] == "ws/chat/<conversation_id>/"  # the pattern, no value
    assert conversations(spans) == {"c-route"}  # every hop of every message carries it


def test_a_nested_router_gives_the_joined_route(resolved: Run) -> None:
    connect = one(resolved.connection(path="/ws/rooms/r-7/"), c.SPAN_CONNECT)

    assert connect.attributes[c.ROUTE] == "ws/rooms/<conversation_id>/"
    assert connect.attributes[c.CONVERSATION_ID] == "r-7"


def test_a_route_without_the_kwarg_has_no_conversation_only_its_route(resolved: Run) -> None:
    # /ws/user/5/ used to become conversation "5" (the last path segment).
    spans = resolved.connection(path="/ws/user/5/")

    connect = one(spans, c.SPAN_CONNECT)
    assert connect.attributes[c.ROUTE] == "ws/user/<user_id>/"
    assert connect.attributes[c.PATH] == "/ws/user/5/"
    assert conversations(spans) == {None}
    assert {s.name for s in spans} >= {c.SPAN_RECEIVE, c.SPAN_SEND, c.SPAN_DISCONNECT}


def test_without_a_resolver_a_single_socket_path_has_no_conversation(plain: Run) -> None:
    spans = plain.connection(message_id="m-n")

    assert conversations(spans) == {None}
    assert one(spans, c.SPAN_CONNECT).attributes[c.ROUTE] == "^ws/$"


def test_a_configured_pattern_names_the_conversation(tmp_path: Path) -> None:
    run = run_app(
        tmp_path, {"CONVERSATION_PATTERN": r"^/ws/user/(?P<conversation_id>\d+)/$"}, ["notice"]
    )
    spans = run.connection(path="/ws/user/5/")

    connect = one(spans, c.SPAN_CONNECT)
    assert connect.attributes[c.CONVERSATION_SOURCE] == "pattern"
    assert conversations(spans) == {"5"}


@pytest.mark.parametrize(
    ("message_id", "conversation"),
    [("m-q", "q-9"), ("m-h", "h-3"), ("m-u", "u-7")],
    ids=["query-parameter", "header", "user"],
)
def test_the_resolver_names_the_conversation_from_the_scope(
    resolved: Run, message_id: str, conversation: str
) -> None:
    spans = resolved.connection(message_id=message_id)

    connect = one(spans, c.SPAN_CONNECT)
    assert connect.attributes[c.CONVERSATION_SOURCE] == "resolver"
    assert connect.attributes[c.PATH] == "/ws/"
    assert conversations(spans) == {conversation}


def test_the_query_string_is_never_recorded(resolved: Run) -> None:
    spans = resolved.connection(message_id="m-q")

    values = [str(v) for s in spans for v in s.attributes.values()]
    assert not [v for v in values if "token" in v or "secret" in v or "?" in v]


def test_the_resolver_names_the_conversation_from_the_first_frame_onwards(resolved: Run) -> None:
    spans = resolved.connection(message_id="j-1")

    before = [s for s in spans if s.name in (c.SPAN_CONNECT, c.SPAN_AUTH, c.SPAN_ACCEPT)]
    assert len(before) == 3 and conversations(before) == {None}
    first, second = sorted(by_name(spans, c.SPAN_RECEIVE), key=lambda s: s.start_ns)
    assert first.attributes[c.CONVERSATION_SOURCE] == "resolver"
    later = [
        s
        for s in spans
        if s.name in (c.SPAN_PUBLISH, c.SPAN_DELIVER, c.SPAN_SEND, c.SPAN_GROUP_ADD)
    ]
    assert len(by_name(later, c.SPAN_PUBLISH)) == 2  # group_send from both receive handlers
    assert conversations([first, second, *later]) == {"f-1"}


def test_a_one_argument_resolver_is_asked_at_connect_only(tmp_path: Path) -> None:
    settings = {"CONVERSATION_RESOLVER": "routes_app.resolve_scope_only"}
    run = run_app(tmp_path, settings, ["query", "first_frame"])

    assert conversations(run.connection(message_id="m-q")) == {"q-9"}
    assert conversations(run.connection(message_id="j-1")) == {None}


def test_a_resolver_that_cannot_be_imported_is_reported_once_and_names_nothing(
    tmp_path: Path,
) -> None:
    settings = {"CONVERSATION_RESOLVER": "routes_app.no_such_resolver"}
    run = run_app(tmp_path, settings, ["query", "first_frame", "route"])

    assert conversations(run.connection(message_id="m-q")) == {None}
    assert conversations(run.connection(path="/ws/chat/c-route/")) == {"c-route"}
    assert run.stderr.count("importing CONVERSATION_RESOLVER") == 1, run.stderr


def test_without_a_resolver_the_first_frame_names_nothing(plain: Run) -> None:
    assert conversations(plain.connection(message_id="j-1")) == {None}


def test_a_resolver_that_raises_is_reported_once_and_names_nothing(resolved: Run) -> None:
    connects = [
        s for s in by_name(resolved.spans, c.SPAN_CONNECT) if s.attributes[c.PATH] == "/ws/boom/"
    ]

    assert len(connects) == 2
    assert conversations(
        [s for s in resolved.spans if s.attributes.get(c.PATH) == "/ws/boom/"]
    ) == {None}
    assert resolved.stderr.count("CONVERSATION_RESOLVER failed (RuntimeError: resolver bug)") == 1


@pytest.mark.parametrize("run", ["resolved", "plain"])
def test_a_handshake_refused_before_routing_falls_back_to_a_routed_pattern(
    request: pytest.FixtureRequest, run: str
) -> None:
    spans = request.getfixturevalue(run).connection(path="/ws/chat/c-origin/")

    connect = one(spans, c.SPAN_CONNECT)
    assert connect.attributes[c.CAUSE] == "origin_rejected"
    assert connect.attributes[c.CONVERSATION_SOURCE] == "path"
    assert connect.attributes[c.ROUTE] == "ws/chat/<conversation_id>/"
    assert conversations(spans) == {"c-origin"}


@pytest.mark.parametrize("path", ["/ws/user/6/", "/ws/nowhere/abc/"])
def test_a_refused_handshake_without_a_routed_kwarg_has_no_conversation(
    resolved: Run, path: str
) -> None:
    spans = resolved.connection(path=path)

    assert one(spans, c.SPAN_CONNECT).attributes[c.CAUSE] == "origin_rejected"
    assert conversations(spans) == {None}


# --- the app's own ids ----------------------------------------------------------------
def test_app_ids_are_recorded_on_receive_and_send(resolved: Run) -> None:
    spans = resolved.connection(path="/ws/chat/c-route/")

    receive = next(s for s in by_name(spans, c.SPAN_RECEIVE) if s.attributes[c.MESSAGE_ID] == "m-1")
    assert receive.attributes[c.APP_MESSAGE_ID] == "m-1"
    sends = by_name(spans, c.SPAN_SEND)
    ack = next(
        s for s in sends if c.SEQ not in s.attributes and s.attributes[c.MESSAGE_ID] == "m-1"
    )
    chunk = next(
        s for s in sends if s.attributes.get(c.SEQ) == 1 and s.attributes[c.MESSAGE_ID] == "m-1"
    )
    assert ack.attributes[c.APP_MESSAGE_ID] == "m-1"  # {"type": "ack", "id": "m-1"}
    assert chunk.attributes[c.APP_MESSAGE_ID] == "m-1"  # {"type": "chunk", "message_id": "m-1"}


def test_app_ids_one_level_under_an_envelope_and_on_frames_without_a_message(
    resolved: Run,
) -> None:
    spans = resolved.connection(path="/ws/user/5/")

    receive = one(spans, c.SPAN_RECEIVE)  # {"action": "subscribe", "data": {"client_id": …}}
    assert receive.attributes[c.APP_MESSAGE_ID] == "sub-1"
    assert receive.attributes[c.MESSAGE_ID] != "sub-1"  # MESSAGE_ID_FIELD ("id") is absent
    notice, reply = sorted(by_name(spans, c.SPAN_SEND), key=lambda s: s.start_ns)
    assert notice.attributes[c.APP_MESSAGE_ID] == "n-1"  # {"type": "notice", "uuid": "n-1"}
    assert reply.attributes[c.APP_MESSAGE_ID] == "sub-1"  # {"data": {"client_id": "sub-1"}}


def test_a_frame_too_large_to_parse_still_gives_its_ids_and_type(resolved: Run) -> None:
    receive = one(resolved.connection(path="/ws/chat/c-big/"), c.SPAN_RECEIVE)

    assert receive.attributes[c.MESSAGE_ID] == "m-big"
    assert receive.attributes[c.APP_MESSAGE_ID] == "m-big"
    assert receive.attributes[c.FRAME_TYPE] == "message"
    assert receive.attributes[c.FRAME_BYTES] > 64 * 1024
    assert c.BODY not in receive.attributes


def test_a_frame_without_any_id_field_records_no_app_id(resolved: Run) -> None:
    spans = resolved.connection(path="/ws/chat/c-route/")

    ping = next(s for s in by_name(spans, c.SPAN_RECEIVE) if s.attributes[c.FRAME_TYPE] == "ping")
    assert c.APP_MESSAGE_ID not in ping.attributes


# --- frame types ------------------------------------------------------------------------
def test_frame_types_and_whether_they_must_be_answered(resolved: Run) -> None:
    receives = by_name(resolved.connection(path="/ws/chat/c-route/"), c.SPAN_RECEIVE)
    by_type = {s.attributes[c.FRAME_TYPE]: s.attributes[c.EXPECTS_ANSWER] for s in receives}

    assert by_type == {"message": True, "ping": False}


@pytest.mark.parametrize(
    ("path", "message_id", "frame_type"),
    [("/ws/user/5/", None, "subscribe"), (None, "m-h", "hello")],
    ids=["action", "event"],
)
def test_action_and_event_stand_in_for_a_missing_type(
    resolved: Run, path: str | None, message_id: str | None, frame_type: str
) -> None:
    receive = one(resolved.connection(path=path, message_id=message_id), c.SPAN_RECEIVE)

    assert receive.attributes[c.FRAME_TYPE] == frame_type
    assert receive.attributes[c.EXPECTS_ANSWER] is False


def test_without_answered_types_expects_answer_is_not_written(plain: Run) -> None:
    receives = by_name(plain.spans, c.SPAN_RECEIVE)

    assert receives and all(c.EXPECTS_ANSWER not in s.attributes for s in receives)
    assert {s.attributes.get(c.FRAME_TYPE) for s in receives} >= {"message", "ping"}


# --- layer failures inside the consumer ---------------------------------------------------
def test_a_handler_that_raises_even_a_connection_error_stays_consumer_error(
    resolved: Run,
) -> None:
    assert "crashed: builtins ConnectionError" in resolved.stdout
    spans = resolved.connection(path="/ws/chat/c-handler/")

    disconnect = one(spans, c.SPAN_DISCONNECT)
    assert disconnect.is_error
    assert disconnect.attributes[c.CLOSE_CODE] == 1011
    assert disconnect.attributes[c.CAUSE] == "consumer_error"


@pytest.mark.stack  # a real redis-server, stopped under the consumer
def test_redis_dying_under_the_consumers_layer_receive_is_channel_layer_unavailable(
    tmp_path: Path,
) -> None:
    server = RedisServer().start()
    try:
        assert server.proc is not None
        run = run_app(
            tmp_path,
            {},
            ["layer_down"],
            REDIS_URL=server.url,
            REDIS_PID=str(server.proc.pid),
        )
    finally:
        server.stop()

    assert "crashed: redis.exceptions ConnectionError" in run.stdout, run.stdout + run.stderr
    spans = run.connection(path="/ws/chat/c-layer/")
    disconnect = one(spans, c.SPAN_DISCONNECT)
    assert disconnect.is_error
    assert disconnect.attributes[c.CLOSE_CODE] == 1011
    assert disconnect.attributes[c.CAUSE] == "channel_layer_unavailable"
    assert disconnect.attributes[c.CONVERSATION_ID] == "c-layer"
    (event,) = disconnect.events
    assert event["attributes"]["exception.type"] == "redis.exceptions.ConnectionError"
