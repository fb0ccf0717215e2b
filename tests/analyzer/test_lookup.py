"""`wsanalyze conversation ID`: ids the app knows (message and app message ids), HTTP-started chains."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner
from wsanalyze.analysis import UnknownConversation, conversation_report
from wsanalyze.cli import app
from wsanalyze.sources.store import ingest
from wsanalyze.verdicts.testing import Trace, write_otlp

runner = CliRunner()


def chat(t: Trace, message_id: str, at: float, app_message_id: str) -> None:
    """A message the app filed under its own id, answered in two delivered chunks."""
    rec = t.receive(message_id, "k1", at, app_message_id=app_message_id)
    task = t.task(message_id, t.enqueue(message_id, rec, at + 1), at + 5, 30)
    for seq in (1, 2):
        pub = t.publish(message_id, task, at + 5 + 10 * seq, seq)
        dlv = t.deliver(message_id, pub, at + 7 + 10 * seq, seq)
        t.send(message_id, dlv, at + 8 + 10 * seq, seq, connection_id="k1")


@pytest.fixture
def traces(tmp_path, monkeypatch):
    monkeypatch.setenv("WSANALYZE_STORE", str(tmp_path / "nostore"))
    a = Trace("conv-a")
    a.connect("k1")
    chat(a, "m-a1", 10, "db-42")
    b = Trace("conv-b", start=a.start)
    b.connect("k1", at=100)
    chat(b, "m-b1", 110, "db-7")
    c = Trace("conv-c", start=a.start)
    c.connect("k1", at=200)
    chat(c, "m-c1", 210, "db-7")  # the app reuses its ids across rooms
    path = tmp_path / "traces"
    write_otlp([a, b, c], path)
    return path


def test_an_app_message_id_analyzes_the_conversation_holding_it(traces):
    report = conversation_report("db-42", traces=str(traces))
    assert report.conversation_id == "conv-a"
    assert report.verdict.outcome == "delivered"
    assert report.problems[0] == "conversation conv-a holds message db-42"


def test_a_message_id_from_the_cli_names_its_conversation(traces):
    result = runner.invoke(app, ["conversation", "m-b1", "--traces", str(traces), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["conversation_id"] == "conv-b"
    assert "conversation conv-b holds message m-b1" in data["problems"]


def test_an_app_id_several_conversations_hold_is_a_one_line_error_naming_them(traces):
    result = runner.invoke(app, ["conversation", "db-7", "--traces", str(traces)])
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert "conv-b" in line and "conv-c" in line and "Traceback" not in result.output


def test_an_id_nobody_holds_is_still_unknown_with_the_closest_ids(traces):
    with pytest.raises(UnknownConversation) as info:
        conversation_report("conv-x", traces=str(traces))
    assert "conv-a" in info.value.suggestions


def test_the_lookup_by_app_id_works_on_a_compacted_store(traces, tmp_path):
    ingest(traces, tmp_path / "store")
    report = conversation_report("db-42", traces=str(tmp_path / "store"))
    assert report.conversation_id == "conv-a"
    assert "conversation conv-a holds message db-42" in report.problems


def test_an_http_edit_whose_task_raises_is_read_into_its_conversation(tmp_path, monkeypatch):
    monkeypatch.setenv("WSANALYZE_STORE", str(tmp_path / "nostore"))
    t = Trace("conv-a")
    t.connect("k1")
    chat(t, "m-a1", 10, "db-42")
    # The edit endpoint re-runs the message's task: no span of it names the conversation.
    http = t.span("POST /messages/db-43/edit", None, None, 100, 5, conversation_id=None)
    t.receive("m-a2", "k1", 90)  # the edited message, first seen over the socket
    enq = t.enqueue("m-a2", http, 101, conversation_id=None)
    t.task("m-a2", enq, 103, 5, conversation_id=None, status="error",
           exception="ValueError: edit failed")  # fmt: skip
    other = Trace("conv-z", start=t.start)
    other.task("m-z1", "p", 50, 5, conversation_id=None)  # untagged, another message
    write_otlp([t, other], tmp_path / "traces")
    report = conversation_report("conv-a", traces=str(tmp_path / "traces"))
    lost = {m.message_id: (m.outcome, m.hop, m.cause) for m in report.messages}
    assert lost["m-a2"] == ("lost", "task", "task_failed")
    assert "m-z1" not in lost
