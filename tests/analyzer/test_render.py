"""Renderers: every view of one ConversationReport."""

from __future__ import annotations

import json
import re

import pytest
from rich.console import Console
from wsanalyze.render import json as render_json
from wsanalyze.render.html import to_html
from wsanalyze.render.mermaid import to_mermaid
from wsanalyze.render.terminal import conversation_view
from wsanalyze.verdicts import analyze_conversation
from wsanalyze.verdicts.testing import Trace


@pytest.fixture
def report():
    t = Trace("conv-r")
    t.worker_ready(["celery"])
    t.connect("k1")
    t.message("m-ok", "k1", 10, chunks=2)
    t.message("m-gone", "k1", 100, chunks=4, deliver_upto=1)
    t.disconnect("k1", 60_000)
    return analyze_conversation(t.frame(), "conv-r")


def test_json_has_exactly_the_contract_keys(report):
    data = json.loads(render_json.dumps(render_json.conversation_json(report)))
    assert {"conversation_id", "verdict", "connections", "messages", "timeline"} <= set(data)
    # the contract's keys, plus (additive) how sure the verdict is
    assert set(data["verdict"]) == {"outcome", "hop", "cause", "summary", "confidence"}
    assert data["verdict"]["confidence"] == "exact"  # spans decided it
    assert {m["confidence"] for m in data["messages"]} == {"exact"}
    assert {"connection_id", "opened", "closed", "close_code", "outcome", "cause"} <= set(
        data["connections"][0]
    )
    msg = data["messages"][1]
    assert {"message_id", "outcome", "hop", "cause", "chunks", "evidence", "hint"} <= set(msg)
    assert {k: msg["chunks"][k] for k in ("published", "delivered", "sent")} == {
        "published": 4,
        "delivered": 1,
        "sent": 1,
    }
    assert {"side_effects", "streams", "connections"} <= set(msg["chunks"])  # additive
    assert isinstance(msg["evidence"], list) and isinstance(msg["hint"], str)
    entry = data["timeline"][0]
    assert {
        "ts", "source", "service", "hop", "event", "message_id", "seq", "detail", "trace_id"
    } <= set(entry)  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", entry["ts"])
    assert data["verdict"] == {
        "outcome": "lost",
        "hop": "deliver",
        "cause": "consumer_gone",
        "summary": data["verdict"]["summary"],
        "confidence": "exact",
    }


def test_terminal_view_shows_verdict_messages_evidence_and_timeline(report):
    console = Console(record=True, width=160)
    console.print(conversation_view(report))
    text = console.export_text()
    assert "LOST" in text and "consumer_gone" in text
    assert "m-gone" in text and "fix:" in text
    assert "Timeline" in text and "group_send" in text


def test_html_is_self_contained_with_swimlanes_and_lost_marks(report):
    page = to_html(report)
    assert page.startswith("<!doctype html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "no network fetches"
    assert "<link" not in page and "@import" not in page
    assert page.count('class="lane"') == 3  # client, web, worker
    assert "hop-arrow" in page
    assert 'class="lost-mark" data-message="m-gone"' in page
    assert 'data-cause="consumer_gone"' in page


def test_mermaid_is_a_sequence_diagram_with_failed_publishes_crossed(report):
    text = to_mermaid(report)
    assert text.startswith("sequenceDiagram\n")
    assert "worker-xlayer" in text  # the publishes that found nobody
    assert "web->>client: send" in text
    assert "verdict lost / deliver / consumer_gone" in text
