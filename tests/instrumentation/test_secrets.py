"""Tokens stay out of the evidence; the reserved carrier key never reaches a client.

On the real stack: a client authenticates with ``?token=<jwt>`` or with an
``Authorization: Bearer <jwt>`` header; afterwards the token appears in no
file under the trace dir and in no log line wstrace wrote. A consumer that
echoes every channel-layer event it handles back to its client (user code
seeing exactly what wstrace hands it) shows no ``__wstrace__`` key and no
trace context.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
from wsanalyze.demo.example_apps import example_app_dir
from wsanalyze.demo.stack import Stack
from wstrace import conventions as c

from .spans import by_name, read_spans, wait_for

pytestmark = pytest.mark.stack

# User code: a consumer method that echoes every chat.* event it is handed, verbatim.
ECHO_SITECUSTOMIZE = """
import json
import channels.consumer

_dispatch = channels.consumer.AsyncConsumer.dispatch


async def dispatch(self, message):
    if str(message.get("type", "")).startswith("chat."):
        await self.send(text_data=json.dumps({"type": "echo", "event": message}, default=repr))
    return await _dispatch(self, message)


channels.consumer.AsyncConsumer.dispatch = dispatch
"""


@pytest.fixture(scope="module")
def echo_site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("echo-site")
    (site / "sitecustomize.py").write_text(ECHO_SITECUSTOMIZE)
    return site


@pytest.fixture(scope="module", params=["core", "pubsub"])
def stack(request, shared_stack, echo_site) -> Stack:
    """The example app with wstrace on and an echoing consumer, on each channel layer."""
    return shared_stack(
        layer=request.param,
        env={
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "PYTHONPATH": os.pathsep.join([str(example_app_dir()), str(echo_site)]),
        },
    )


def unique_token(stack: Stack) -> str:
    # A user name of its own, so no other test's token can be the same string.
    return stack.token(user_id=7, name=f"secret-{uuid.uuid4().hex}")


def converse(stack: Stack, token: str, *, bearer: bool):
    conversation = uuid.uuid4().hex[:12]
    transcript = stack.talk(["hello"], conversation_id=conversation, token=token, bearer=bearer)
    assert transcript.all_done, stack.log_tails()
    # Wait until the whole chain, down to the last chunk's send, is on disk.
    wait_for(
        stack.trace_dir,
        lambda spans: (
            sum(
                s.name == c.SPAN_SEND and s.attributes.get(c.CONVERSATION_ID) == conversation
                for s in spans
            )
            >= 7 + 6
        ),  # ack, 5 chunks, done, plus the echo of each of the 6 events
        timeout=15,
    )
    return conversation, transcript


def files_containing(directory: Path, needle: str) -> list[str]:
    found = []
    for path in directory.rglob("*"):
        if path.is_file() and needle.encode() in path.read_bytes():
            found.append(str(path))
    return found


def wstrace_log_lines(stack: Stack) -> list[str]:
    """Lines of the web and worker logs that wstrace (or an exporter it set up) wrote."""
    return [
        line
        for service in ("web", "worker")
        for line in stack.log_text(service).splitlines()
        if "wstrace" in line or "export" in line.lower()
    ]


@pytest.mark.parametrize("bearer", [False, True], ids=["query-token", "bearer-header"])
def test_the_token_is_in_no_trace_file_and_no_wstrace_log_line(stack, bearer):
    token = unique_token(stack)
    signature = token.rsplit(".", 1)[1]

    conversation, _ = converse(stack, token, bearer=bearer)

    spans = read_spans(stack.trace_dir)
    [connect] = [
        s
        for s in by_name(spans, c.SPAN_CONNECT)
        if s.attributes.get(c.CONVERSATION_ID) == conversation
    ]
    assert connect.attributes[c.PATH] == f"/ws/chat/{conversation}/"  # no query string
    [auth] = [
        s
        for s in by_name(spans, c.SPAN_AUTH)
        if s.attributes.get(c.CONVERSATION_ID) == conversation
    ]
    assert auth.attributes[c.USER_AUTHENTICATED] is True  # the token was used, and worked
    assert files_containing(stack.trace_dir, token) == []
    assert files_containing(stack.trace_dir, signature) == []
    assert [line for line in wstrace_log_lines(stack) if signature in line] == []


def test_no_user_code_sees_the_reserved_key_or_trace_context(stack):
    _, transcript = converse(stack, unique_token(stack), bearer=False)

    echoes = [json.loads(raw) for raw in transcript.unexpected if '"echo"' in raw]
    assert len(echoes) == 6, transcript.unexpected  # 5 chat.chunk + chat.done, as handed over
    assert {e["event"]["type"] for e in echoes} == {"chat.chunk", "chat.done"}
    received = json.dumps([*transcript.frames, *echoes])
    assert c.CARRIER_KEY not in received
    assert "traceparent" not in received and "baggage" not in received
    for echo in echoes:
        assert set(echo["event"]) <= {"type", "message_id", "seq", "content", "chunks"}
