"""A client message id far past the header limits still joins web and worker (issue 13).

A 9,000-character id used to be dropped from the Celery task's baggage (the W3C
propagator drops a member over 4 KiB), so the worker's spans had no message id
and the answer could not be joined to its message. wstrace now carries a bounded
stand-in for it (``wstrace.current.capped_id``: prefix + hash) everywhere.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest
from typer.testing import CliRunner
from wsanalyze.cli import app
from wsanalyze.demo.client import converse
from wstrace import conventions as c
from wstrace.current import ID_LIMIT, capped_id

from tests.instrumentation.spans import read_spans

pytestmark = pytest.mark.stack

FAST_FLUSH = {"OTEL_BSP_SCHEDULE_DELAY": "100"}
HOPS = ("receive", "enqueue", "task", "publish", "deliver", "send")


def conversation_json(conversation: str, traces: str) -> dict[str, Any]:
    """``wsanalyze conversation ID --traces DIR --json``, parsed."""
    args = ["conversation", conversation, "--traces", traces, "--json", "--in-flight", "0"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_a_9000_character_message_id_is_delivered_and_joined(shared_stack: Any) -> None:
    stack = shared_stack(layer="core", wstrace_enabled=True, env=FAST_FLUSH)
    conversation = uuid.uuid4().hex[:12]
    long_id = "m" + uuid.uuid4().hex + "x" * 8967
    assert len(long_id) == 9000
    url = stack.ws_url(conversation)
    transcript = asyncio.run(converse(url, ["hello"], token=stack.token(), message_ids=[long_id]))
    assert transcript.all_done  # the app itself never had a problem with it
    short = capped_id(long_id)

    for _ in range(60):  # until the worker's and the web's spans are all written
        report = conversation_json(conversation, str(stack.trace_dir))
        spans = [
            s
            for s in read_spans(stack.trace_dir)
            if s.attributes.get(c.CONVERSATION_ID) == conversation
        ]
        sends = [s for s in spans if s.hop == "send"]
        if [m["outcome"] for m in report["messages"]] == ["delivered"] and len(sends) >= 7:
            break
        time.sleep(0.25)

    (message,) = report["messages"]
    assert (message["message_id"], message["outcome"], message["cause"]) == (
        short,
        "delivered",
        "ok",
    ), message["summary"]
    # every hop, on both services, names the message by the same short id
    of_message = [s for s in spans if s.hop in HOPS]
    assert {s.hop for s in of_message} == set(HOPS)
    assert {s.service for s in of_message} == {"web", "worker"}
    assert {s.attributes.get(c.MESSAGE_ID) for s in of_message} == {short}
    ids = {row.get("message_id") for row in report["timeline"]} - {None, ""}
    assert ids == {short} and len(short) <= ID_LIMIT
    assert long_id not in json.dumps(report)
