"""The command line: thin commands, clean one-line errors, every output format."""

from __future__ import annotations

import json

import pytest
import typer.main
from typer.testing import CliRunner
from wsanalyze.cli import app
from wsanalyze.verdicts.testing import Trace, write_otlp

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def store(tmp_path):
    ok = Trace("conv-healthy")
    ok.worker_ready(["celery"], at=-5000)
    ok.connect("k1")
    ok.message("m1", "k1", chunks=3)
    ok.disconnect("k1", 1000)
    gone = Trace("conv-gone", start=ok.start)
    gone.connect("k2", at=2000)
    gone.message("m2", "k2", 2010, chunks=4, deliver_upto=0)
    late = Trace("conv-queue", start=ok.start)
    late.connect("k3", at=60_000)
    late.enqueue("m3", late.receive("m3", "k3", 60_010), 60_011, queue="priority")
    late.disconnect("k3", 60_500)  # the client gave up waiting
    path = tmp_path / "traces"
    write_otlp([ok, gone, late], path)
    return path


def test_every_command_has_help_text():
    group = typer.main.get_command(app)
    assert group.help
    for name, command in group.commands.items():
        assert command.help and command.help.strip(), name
        result = run(name, "--help")
        assert result.exit_code == 0, name
        for param in command.params:
            if param.name != "help" and getattr(param, "param_type_name", "") == "option":
                assert param.help, f"{name} {param.name}"


def test_conversation_prints_verdict_table_and_timeline(store):
    result = runner.invoke(
        app, ["conversation", "conv-gone", "--traces", str(store)], env={"COLUMNS": "160"}
    )
    assert result.exit_code == 0, result.output
    assert "consumer_gone" in result.output
    assert "Timeline" in result.output


def test_conversation_json_is_the_contract_shape(store):
    result = run("conversation", "conv-gone", "--traces", str(store), "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["verdict"]["cause"] == "consumer_gone"
    chunks = data["messages"][0]["chunks"]
    assert {k: chunks[k] for k in ("published", "delivered", "sent")} == {
        "published": 4,
        "delivered": 0,
        "sent": 0,
    }
    # additive: the stream that produced them, with its gap, and nobody receiving
    [stream] = chunks["streams"]
    assert (stream["published"], stream["gaps"]) == (4, 4)
    assert stream["producer"].startswith("task chat.tasks.run_agent")
    assert chunks["connections"] == [] and chunks["side_effects"] == 0


def test_worker_queues_are_found_outside_the_conversation(store):
    data = json.loads(run("conversation", "conv-queue", "--traces", str(store), "--json").stdout)
    assert (data["verdict"]["outcome"], data["verdict"]["cause"]) == ("lost", "no_worker")
    assert any("priority" in line for line in data["messages"][0]["evidence"])


def test_conversation_html_and_mermaid(store, tmp_path):
    page = tmp_path / "report.html"
    result = run("conversation", "conv-gone", "--traces", str(store), "--html", str(page), "--json")
    assert result.exit_code == 0
    assert "<svg" in page.read_text()
    mermaid = run("conversation", "conv-gone", "--traces", str(store), "--mermaid")
    assert mermaid.stdout.startswith("sequenceDiagram")


def test_unknown_conversation_exits_non_zero_with_the_closest_ids(store):
    result = run("conversation", "conv-gon", "--traces", str(store))
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "conv-gone" in lines[0] and "Traceback" not in result.output


def test_missing_store_says_where_it_looked(tmp_path):
    missing = tmp_path / "nowhere"
    result = run("conversation", "abc", "--traces", str(missing))
    assert result.exit_code == 1
    assert str(missing) in result.stderr and "Traceback" not in result.output
    assert run("conversations", "--traces", str(missing)).exit_code == 1


def test_default_store_is_named_when_nothing_is_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WSTRACE_DIR", raising=False)
    result = run("lost")
    assert result.exit_code == 1
    assert ".wstrace" in result.stderr


def test_conversations_lists_verdicts_and_filters(store):
    data = json.loads(run("conversations", "--traces", str(store), "--json").stdout)
    causes = {row["conversation_id"]: row["verdict"]["cause"] for row in data}
    assert causes == {"conv-healthy": "ok", "conv-gone": "consumer_gone", "conv-queue": "no_worker"}
    lost = json.loads(
        run("conversations", "--traces", str(store), "--outcome", "lost", "--json").stdout
    )
    assert {row["conversation_id"] for row in lost} == {"conv-gone", "conv-queue"}
    one = json.loads(
        run("conversations", "--traces", str(store), "--cause", "no_worker", "--json").stdout
    )
    assert [row["conversation_id"] for row in one] == ["conv-queue"]
    table = runner.invoke(app, ["conversations", "--traces", str(store)], env={"COLUMNS": "200"})
    assert "conv-gone" in table.output


def test_conversations_rejects_unknown_filters(store):
    assert run("conversations", "--traces", str(store), "--outcome", "bogus").exit_code == 1
    assert run("conversations", "--traces", str(store), "--cause", "bogus").exit_code == 1
    assert run("conversations", "--traces", str(store), "--since", "yesterday-ish").exit_code == 1


def test_since_accepts_an_age_and_an_iso_time(store):
    assert (
        json.loads(run("conversations", "--traces", str(store), "--since", "1h", "--json").stdout)
        == []
    )
    rows = json.loads(
        run("conversations", "--traces", str(store), "--since", "2026-01-01T00:00", "--json").stdout
    )
    assert len(rows) == 3


def test_lost_aggregates_by_hop_and_cause(store):
    data = json.loads(run("lost", "--traces", str(store), "--json").stdout)
    assert data["lost"] == 2 and data["messages"] == 3
    assert {(g["hop"], g["cause"]) for g in data["groups"]} == {
        ("deliver", "consumer_gone"),
        ("task", "no_worker"),
    }
    assert "consumer_gone" in run("lost", "--traces", str(store)).output


def test_explain_known_and_unknown_causes():
    result = run("explain", "consumer_gone")
    assert result.exit_code == 0 and "How to fix" in result.output
    data = json.loads(run("explain", "no_worker", "--json").stdout)
    assert set(data) == {"cause", "meaning", "signals", "fix"}
    bad = run("explain", "gremlins")
    assert bad.exit_code == 1
    assert len(bad.stderr.strip().splitlines()) == 1 and "consumer_gone" in bad.stderr


def test_close_codes_option_overrides_the_table(tmp_path):
    t = Trace("conv-4010")
    root = t.connect("k1")
    t.close("k1", 10, 4010, parent=root)
    write_otlp(t, tmp_path / "t")
    override = '{"4010": ["auth_rejected", "auth"]}'
    args = ["--traces", str(tmp_path / "t"), "--close-codes", override, "--json"]
    data = json.loads(run("conversation", "conv-4010", *args).stdout)
    assert data["verdict"]["cause"] == "auth_rejected"
    bad = run(
        "conversation", "conv-4010", "--traces", str(tmp_path / "t"), "--close-codes", "{nope"
    )
    assert bad.exit_code == 1 and "--close-codes" in bad.stderr


def test_ingest_compacts_then_conversation_reads_the_store(store, tmp_path):
    target = tmp_path / "compact"
    result = run("ingest", "--traces", str(store), "--store", str(target), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["spans_added"] > 0
    again = json.loads(
        run("ingest", "--traces", str(store), "--store", str(target), "--json").stdout
    )
    assert again["spans_added"] == 0
    data = json.loads(run("conversation", "conv-gone", "--traces", str(target), "--json").stdout)
    assert data["verdict"]["cause"] == "consumer_gone"


def test_logs_only_source_is_accepted_or_explained(tmp_path):
    log = tmp_path / "web.log"
    log.write_text("nothing to see\n")
    result = run("conversations", "--logs", str(log), "--json")
    assert result.exit_code in (0, 1)
    assert "Traceback" not in result.output


def test_a_window_cutting_a_conversation_still_judges_all_of_it(store):
    from wsanalyze.verdicts.testing import START

    middle = (START.replace(tzinfo=None)).isoformat(timespec="milliseconds")
    cut = middle.replace("10:00:00.000", "10:00:02.020")  # after conv-gone's connect and receive
    rows = json.loads(run("conversations", "--traces", str(store), "--since", cut, "--json").stdout)
    by_id = {row["conversation_id"]: row["verdict"]["cause"] for row in rows}
    assert by_id.get("conv-gone") == "consumer_gone"
    assert "conv-healthy" not in by_id  # over before the window


def test_logs_only_conversation_is_judged_by_the_same_engine(tmp_path):
    log = tmp_path / "web.log"
    log.write_text(
        '127.0.0.1:40000 - - [02/Jan/2026:10:00:00] "WSCONNECTING /ws/chat/conv-logs/" - -\n'
        '127.0.0.1:40000 - - [02/Jan/2026:10:00:00] "WSREJECT /ws/chat/conv-logs/" - -\n'
        '127.0.0.1:40000 - - [02/Jan/2026:10:00:00] "WSDISCONNECT /ws/chat/conv-logs/" - -\n'
    )
    result = run("conversation", "conv-logs", "--logs", str(log), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["verdict"]["outcome"] == "rejected"
    assert data["verdict"]["cause"] == "handshake_rejected"
    assert data["verdict"]["confidence"] == "path"  # the conversation is named by the path
    assert "from log lines" in data["verdict"]["summary"]
    assert data["connections"][0]["evidence"][0].startswith("log: ")
    listed = json.loads(run("conversations", "--logs", str(log), "--json").stdout)
    assert [(r["verdict"]["outcome"], r["verdict"]["cause"]) for r in listed] == [
        ("rejected", "handshake_rejected")
    ]
    missing = run("conversation", "conv-nope", "--logs", str(log))
    assert missing.exit_code == 1 and "conv-logs" in missing.stderr


def test_a_bug_of_ours_is_one_line_not_a_traceback(store, monkeypatch, capsys):
    import wsanalyze.render.terminal as terminal
    from wsanalyze.cli import main

    def broken(*_args, **_kwargs):
        raise RuntimeError("renderer exploded\nsecond line")

    monkeypatch.setattr(terminal, "conversations_view", broken)
    monkeypatch.delenv("WSANALYZE_DEBUG", raising=False)
    monkeypatch.setattr("sys.argv", ["wsanalyze", "conversations", "--traces", str(store)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 70
    err = capsys.readouterr().err
    assert "RuntimeError: renderer exploded" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_connections_lists_sockets_of_routes_without_a_conversation(tmp_path):
    room = Trace("room-1")
    room.connect("k1", route="ws/rooms/<conversation_id>/")
    note = Trace(None, start=room.start)  # /ws/user/5/: the route names no conversation
    note.connect("n1", at=5, group="user_5", route="ws/user/<user_id>/")
    note.disconnect("n1", 900)
    path = tmp_path / "traces"
    write_otlp([room, note], path)
    rows = json.loads(run("connections", "--traces", str(path), "--json").stdout)
    assert {(r["connection_id"], r["conversation_id"], r["route"]) for r in rows} == {
        ("k1", "room-1", "ws/rooms/<conversation_id>/"),
        ("n1", None, "ws/user/<user_id>/"),
    }
    alone = json.loads(
        run("connections", "--traces", str(path), "--without-conversation", "--json").stdout
    )
    assert [(r["connection_id"], r["outcome"], r["close_code"]) for r in alone] == [
        ("n1", "delivered", 1000)
    ]
    conversations = json.loads(run("conversations", "--traces", str(path), "--json").stdout)
    assert [c["conversation_id"] for c in conversations] == ["room-1"]
    table = runner.invoke(app, ["connections", "--traces", str(path)], env={"COLUMNS": "200"})
    assert "ws/user/<user_id>/" in table.output and "(none)" in table.output


def test_at_gives_the_verdict_as_of_that_moment(store):
    # conv-queue: enqueued at +60.011 s, the client gave up at +60.5 s (the fixture's start
    # is the builder's START, 2026-01-02T10:00:00Z)
    early = run("conversation", "conv-queue", "--traces", str(store), "--json",
                "--at", "2026-01-02T10:01:00.200Z")  # fmt: skip
    data = json.loads(early.stdout)
    assert (data["verdict"]["outcome"], data["verdict"]["cause"]) == ("in_flight", "no_worker")
    late = json.loads(run("conversation", "conv-queue", "--traces", str(store), "--json").stdout)
    assert (late["verdict"]["outcome"], late["verdict"]["cause"]) == ("lost", "no_worker")
    assert run("conversation", "conv-queue", "--traces", str(store), "--at", "soon").exit_code == 1
