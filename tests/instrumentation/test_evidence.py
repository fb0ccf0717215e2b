"""Each hop leaves evidence: the spans wstrace writes on the real stack, per fault.

The example app runs on Daphne + a Celery prefork worker + Redis with the
instrumentation on; a real websocket client drives it; the spans are read back
from the store files. For every fault switch the test names the spans that
must exist (with the attributes that reveal the fault) and the ones that must not.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from wsanalyze.demo.client import Transcript, converse
from wsanalyze.demo.processes import free_port
from wsanalyze.demo.stack import Stack
from wstrace import conventions as c

from .spans import Span, by_name, wait_for

pytestmark = pytest.mark.stack

FAST_FLUSH = {"OTEL_BSP_SCHEDULE_DELAY": "100"}
IDS = (c.CONVERSATION_ID, c.CONNECTION_ID)


@pytest.fixture(params=["core", "pubsub"])
def stack(request: pytest.FixtureRequest, shared_stack: Any) -> Stack:
    """The session's instrumented stack on each channel layer."""
    return shared_stack(layer=request.param, wstrace_enabled=True, env=FAST_FLUSH)


@pytest.fixture
def core(shared_stack: Any) -> Stack:
    """The session's instrumented stack on RedisChannelLayer."""
    return shared_stack(layer="core", wstrace_enabled=True, env=FAST_FLUSH)


def talk(stack: Stack, messages: list[str], **kwargs: Any) -> tuple[str, Transcript]:
    conversation = uuid.uuid4().hex[:12]
    kwargs.setdefault("token", stack.token())
    transcript = asyncio.run(converse(stack.ws_url(conversation), messages, **kwargs))
    return conversation, transcript


def spans_of(
    stack: Stack, conversation: str, until: Callable[[list[Span]], Any], timeout: float = 15
) -> list[Span]:
    """The conversation's spans, once ``until`` holds for them."""

    def ready(spans: list[Span]) -> Any:
        return until(mine(spans, conversation))

    return mine(wait_for(stack.trace_dir, ready, timeout=timeout), conversation)


def mine(spans: list[Span], conversation: str) -> list[Span]:
    return [s for s in spans if s.attributes.get(c.CONVERSATION_ID) == conversation]


def has(name: str, count: int = 1, **attrs: Any) -> Callable[[list[Span]], bool]:
    def check(spans: list[Span]) -> bool:
        found = [s for s in by_name(spans, name) if _matches(s, attrs)]
        return len(found) >= count

    return check


def _matches(span: Span, attrs: dict[str, Any]) -> bool:
    return all(span.attributes.get(f"ws.{k}") == v for k, v in attrs.items())


def complete_chain(spans: list[Span]) -> bool:
    """Web and worker both flushed: 6 deliveries, the disconnect, every parent present."""
    ids = {s.span_id for s in spans}
    return (
        len(by_name(spans, "ws.deliver")) >= 6
        and bool(by_name(spans, "ws.disconnect"))
        and all(s.parent_id in ids for s in spans if s.parent_id)
    )


def test_healthy_conversation_is_one_connected_chain_across_processes(stack: Stack) -> None:
    conversation, transcript = talk(stack, ["hello"], message_ids=["m-healthy"])
    assert transcript.all_done
    spans = spans_of(stack, conversation, complete_chain)

    by_id = {s.span_id: s for s in spans}
    roots = [s for s in spans if s.parent_id is None]
    assert [r.name for r in roots] == ["ws.connect"]
    assert {s.trace_id for s in spans} == {roots[0].trace_id}
    assert all(s.parent_id in by_id for s in spans if s.parent_id), "a parent is missing"
    for span in spans:
        assert all(span.attributes.get(key) for key in IDS), f"{span.name} lacks an id"
    chain = [s for s in spans if s.attributes.get(c.MESSAGE_ID) == "m-healthy"]
    names = {s.name for s in chain}
    assert {"ws.receive", "ws.enqueue", "ws.task", "ws.publish", "ws.deliver", "ws.send"} <= names
    task = by_name(chain, "ws.task")[0]
    assert task.service == "worker" and by_id[task.parent_id].name == "ws.enqueue"
    assert task.file != by_name(chain, "ws.receive")[0].file  # another process wrote it
    published = sorted(s.attributes[c.SEQ] for s in by_name(chain, "ws.publish"))
    delivered = sorted(s.attributes[c.SEQ] for s in by_name(chain, "ws.deliver"))
    sent = sorted(s.attributes[c.SEQ] for s in by_name(chain, "ws.send") if c.SEQ in s.attributes)
    assert published == delivered == sent == list(range(1, 7))  # 5 chunks + done
    for deliver in by_name(chain, "ws.deliver"):
        assert by_id[deliver.parent_id].name == "ws.publish"
    publish = by_name(chain, "ws.publish")[0]
    if stack.layer == "core":
        assert publish.attributes[c.MEMBERS] == 1
        # The capacity check was seen and refused nothing: evidence, not an absence.
        assert all(p.attributes[c.OVER_CAPACITY] == 0 for p in by_name(chain, "ws.publish"))
    else:
        assert publish.attributes[c.RECEIVERS] >= 1
    group_add = by_name(spans, "ws.group_add")[0]
    assert group_add.attributes[c.LAYER] == publish.attributes[c.LAYER]
    assert by_name(spans, "ws.auth")[0].attributes[c.USER_AUTHENTICATED] is True
    assert not [s for s in spans if s.is_error]


def test_reserved_carrier_key_never_reaches_the_client(core: Stack) -> None:
    _, transcript = talk(core, ["hello"])
    assert transcript.all_done
    assert transcript.frames and all(c.CARRIER_KEY not in str(f) for f in transcript.frames)
    assert all(c.CARRIER_KEY not in str(raw) for raw in transcript.unexpected)


def test_worker_records_the_queues_it_consumes(core: Stack) -> None:
    spans = wait_for(core.trace_dir, lambda s: by_name(s, "ws.worker_ready"))
    ready = by_name(spans, "ws.worker_ready")[0]
    assert ready.attributes[c.QUEUES] == ["celery"]
    assert ready.attributes[c.LAYER]


def test_auth_rejected_is_an_accept_then_close_4001(core: Stack) -> None:
    conversation, transcript = talk(core, ["hello"], token="not-a-jwt")
    assert transcript.close_code == 4001
    spans = spans_of(core, conversation, has("ws.disconnect"))

    assert by_name(spans, "ws.auth")[0].attributes[c.USER_AUTHENTICATED] is False
    close = by_name(spans, "ws.close")[0]
    assert close.attributes[c.CLOSE_CODE] == 4001
    assert close.attributes[c.CAUSE] == "auth_rejected"
    assert close.attributes[c.CLOSED_BY] == "server" and close.is_error
    assert by_name(spans, "ws.accept") and not by_name(spans, "ws.receive")


def test_origin_rejected_is_a_refused_handshake(core: Stack) -> None:
    conversation, transcript = talk(core, ["hello"], origin="http://evil.example")
    assert transcript.handshake_status == 403
    spans = spans_of(core, conversation, has("ws.close"))

    connect = by_name(spans, "ws.connect")[0]
    assert connect.is_error and connect.attributes[c.HANDSHAKE_REJECTED] is True
    assert connect.attributes[c.ORIGIN_ALLOWED] is False
    assert connect.attributes[c.CAUSE] == "origin_rejected"
    assert by_name(spans, "ws.close")[0].attributes[c.ACCEPTED] is False
    assert not by_name(spans, "ws.accept") and not by_name(spans, "ws.auth")


def test_rate_limited_close_hangs_under_the_offending_receive(core: Stack) -> None:
    conversation, transcript = talk(core, [f"m{i}" for i in range(12)], timeout=5)
    assert transcript.close_code == 4004
    spans = spans_of(core, conversation, has("ws.close", close_code=4004))

    close = next(s for s in by_name(spans, "ws.close") if s.attributes[c.CLOSE_CODE] == 4004)
    assert close.attributes[c.CAUSE] == "rate_limited"
    parent = {s.span_id: s for s in spans}[close.parent_id]
    assert parent.name == "ws.receive"
    assert close.attributes[c.MESSAGE_ID] == parent.attributes[c.MESSAGE_ID]


def test_invalid_message_closes_4005_under_its_receive(core: Stack) -> None:
    conversation, transcript = talk(core, [], raw_frames=["not json"], settle=1)
    assert transcript.close_code == 4005
    spans = spans_of(core, conversation, has("ws.close", close_code=4005))

    close = by_name(spans, "ws.close")[0]
    assert close.attributes[c.CAUSE] == "invalid_message"
    assert {s.span_id: s for s in spans}[close.parent_id].name == "ws.receive"
    assert not by_name(spans, "ws.enqueue")


def test_no_worker_leaves_an_enqueue_to_an_unconsumed_queue_and_no_task(core: Stack) -> None:
    conversation, _ = talk(core, ["fault:no_worker"], message_ids=["m-nw"], timeout=1.5)
    spans = spans_of(core, conversation, has("ws.disconnect"))

    enqueue = by_name(spans, "ws.enqueue")[0]
    assert enqueue.attributes[c.QUEUE] == "agents-priority"
    assert enqueue.attributes[c.TASK_ID]
    assert not by_name(spans, "ws.task") and not by_name(spans, "ws.publish")


def test_task_failed_errors_the_task_span_after_two_publishes(stack: Stack) -> None:
    conversation, _ = talk(stack, ["fault:task_failed"], settle=0.5)
    spans = spans_of(stack, conversation, has("ws.task"))

    task = by_name(spans, "ws.task")[0]
    assert task.is_error and task.attributes[c.TASK_STATE] == "FAILURE"
    assert any(e["name"] == "exception" for e in task.events)
    publishes = by_name(spans, "ws.publish")
    assert sorted(p.attributes[c.SEQ] for p in publishes) == [1, 2]
    assert not [p for p in publishes if p.is_error]


def test_client_disconnected_leaves_later_publishes_to_an_empty_group(core: Stack) -> None:
    conversation, _ = talk(core, ["fault:client_disconnected"], close_after_chunks=2)
    spans = spans_of(core, conversation, has("ws.publish", count=21))

    disconnect = by_name(spans, "ws.disconnect")[0]
    assert disconnect.attributes[c.CLOSED_BY] == "client"
    assert disconnect.attributes[c.CLOSE_CODE] == 1000
    late = [p for p in by_name(spans, "ws.publish") if p.start_ns > disconnect.end_ns]
    assert late and all(p.attributes[c.MEMBERS] == 0 for p in late)
    assert by_name(spans, "ws.group_discard")


def test_consumer_gone_publishes_to_an_empty_group_of_the_same_layer(stack: Stack) -> None:
    conversation, _ = talk(
        stack, ["fault:consumer_gone", "again"], message_ids=["m-gone", "m-after"], gap=1.0
    )
    spans = spans_of(stack, conversation, has("ws.publish", count=12))

    gone = [p for p in by_name(spans, "ws.publish") if p.attributes[c.MESSAGE_ID] == "m-gone"]
    count_key = c.MEMBERS if stack.layer == "core" else c.RECEIVERS
    assert len(gone) == 6 and all(p.attributes[count_key] == 0 for p in gone)
    discard = by_name(spans, "ws.group_discard")[0]
    assert discard.start_ns < min(p.start_ns for p in gone)
    assert {s.attributes[c.LAYER] for s in by_name(spans, "ws.group_add")} == {
        gone[0].attributes[c.LAYER]
    }
    assert not [d for d in by_name(spans, "ws.deliver") if d.attributes[c.MESSAGE_ID] == "m-gone"]


def test_channel_full_records_refused_publishes(core: Stack) -> None:
    # The handler stalls until the task has published everything: stay long enough.
    conversation, _ = talk(core, ["fault:channel_full"], settle=8, timeout=40)

    def accounted(spans: list[Span]) -> bool:
        refused = [s for s in spans if s.attributes.get(c.CAUSE) == "channel_full"]
        return len(by_name(spans, "ws.deliver")) + len(refused) >= 301

    spans = spans_of(core, conversation, accounted, timeout=30)

    full = [p for p in by_name(spans, "ws.publish") if p.attributes.get(c.OVER_CAPACITY)]
    drops = by_name(spans, "ws.drop")
    assert full or drops, "no publish or drop recorded channel_full"
    assert all(p.is_error and p.attributes[c.CAUSE] == "channel_full" for p in full)
    assert all(any(e["name"] == c.EV_CHANNEL_FULL for e in p.events) for p in full)
    delivered = {d.attributes[c.SEQ] for d in by_name(spans, "ws.deliver")}
    refused = {s.attributes[c.SEQ] for s in full + drops}
    assert len(by_name(spans, "ws.publish")) == 301
    assert delivered | refused == set(range(1, 302)) and not delivered & refused


def test_consumer_error_errors_the_deliver_and_ends_1011(stack: Stack) -> None:
    conversation, transcript = talk(stack, ["fault:consumer_error"], timeout=5)
    assert transcript.close_code == 1011
    spans = spans_of(stack, conversation, has("ws.disconnect"))

    failed = [d for d in by_name(spans, "ws.deliver") if d.is_error]
    assert len(failed) == 1 and "KeyError" in failed[0].status_message
    disconnect = by_name(spans, "ws.disconnect")[0]
    assert disconnect.attributes[c.CLOSE_CODE] == 1011
    assert disconnect.attributes[c.CAUSE] == "consumer_error"
    assert disconnect.attributes[c.CLOSED_BY] == "server"


def test_channel_layer_unavailable_errors_the_publish(make_stack: Any) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    stack = make_stack(env=FAST_FLUSH, worker_env={"CHAT_LAYER_URL": closed})
    conversation, _ = talk(stack, ["hello"], timeout=3)
    spans = spans_of(stack, conversation, has("ws.task"))

    publish = by_name(spans, "ws.publish")[0]
    assert publish.is_error and publish.attributes[c.CAUSE] == "channel_layer_unavailable"
    assert by_name(spans, "ws.task")[0].is_error
    assert not by_name(spans, "ws.deliver")


def test_layer_mismatch_publishes_under_another_layer_identity(make_stack: Any) -> None:
    stack = make_stack(env=FAST_FLUSH, worker_env={"CHAT_LAYER_PREFIX": "other"})
    conversation, _ = talk(stack, ["hello"], timeout=3)
    spans = spans_of(stack, conversation, has("ws.publish", count=6))

    publishes = by_name(spans, "ws.publish")
    assert all(p.attributes[c.MEMBERS] == 0 for p in publishes)
    joined = by_name(spans, "ws.group_add")[0].attributes[c.LAYER]
    assert {p.attributes[c.LAYER] for p in publishes} == {publishes[0].attributes[c.LAYER]}
    assert publishes[0].attributes[c.LAYER] != joined
    assert "prefix=other" in publishes[0].attributes[c.LAYER_DESC]
