"""An app's own logfmt and JSON lines become event rows that join their conversations.

The example apps run for real (Daphne, a Celery prefork worker, Redis): the chat
app logs its events as logfmt, the room app as JSON lines. Small hand-written
cases pin quoting, escapes, nested JSON, time stamps, the user's mapping and
what a bad mapping file says.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner
from wsanalyze.cli import app as cli_app
from wsanalyze.logmap import LogMap, LogMapError, LogPattern, load_log_map
from wsanalyze.logparse import parse_lines, read_file
from wsanalyze.sources.logs import load_log_events

from tests.logparse.appcapture import JWT, AppRun, capture_apps


@pytest.fixture(scope="module")
def apps(tmp_path_factory) -> tuple[AppRun, AppRun]:
    """What both example apps logged while they played a few scenarios."""
    return capture_apps(tmp_path_factory.mktemp("apps"))


def _app_rows(events: pl.DataFrame, conversation: str) -> pl.DataFrame:
    return events.filter(pl.col("name") == "app", pl.col("conversation_id") == conversation)


def _parse(tmp_path: Path, text: str, name: str = "app.log", **kwargs) -> pl.DataFrame:
    path = tmp_path / name
    path.write_text(text)
    return parse_lines(read_file(path), **kwargs).collect()


# --- real processes ---------------------------------------------------------------------
def test_chatapp_logfmt_lines_trace_a_healthy_message_hop_by_hop(apps):
    chat, _ = apps
    events = load_log_events(chat.dir).events.collect()
    rows = _app_rows(events, chat.conversations["ok"])
    message_id = chat.ids["ok"]["message"]
    assert set(rows["confidence"]) == {"exact"}
    assert {"accept", "receive", "enqueue", "task", "disconnect"} <= set(rows["hop"].drop_nulls())
    assert {"task_started", "task_succeeded"} <= set(rows["event"])
    enqueue = rows.filter(pl.col("hop") == "enqueue").row(0, named=True)
    assert enqueue["message_id"] == message_id
    assert enqueue["queue"] == "celery"
    # Celery's own lines name only the task id: they join through the app's enqueue line
    celery = events.filter(pl.col("name") == "celery", pl.col("task_id") == enqueue["task_id"])
    assert not celery.is_empty()
    assert set(celery["conversation_id"]) == {chat.conversations["ok"]}
    closed = rows.filter(pl.col("hop") == "disconnect")
    assert closed["close_code"].to_list() == [1000]


def test_chatapp_policy_closes_are_disconnect_rows_with_their_code(apps):
    chat, _ = apps
    events = load_log_events(chat.dir).events.collect()
    auth = _app_rows(events, chat.conversations["auth_rejected"]).filter(
        pl.col("hop") == "disconnect"
    )
    assert set(auth["close_code"]) == {4001}
    assert set(auth["event"]) == {"disconnect"}
    rate = _app_rows(events, chat.conversations["rate_limited"]).filter(
        pl.col("hop") == "disconnect"
    )
    assert 4004 in set(rate["close_code"])


def test_chatapp_task_raised_keeps_its_traceback_as_one_record(apps):
    chat, _ = apps
    events = load_log_events(chat.dir).events.collect()
    raised = _app_rows(events, chat.conversations["task_failed"]).filter(
        pl.col("event") == "task_failed"
    )
    assert raised.height == 1
    row = raised.row(0, named=True)
    assert row["status"] == "error"
    assert row["hop"] == "task"
    assert row["message_id"] == chat.ids["task_failed"]["message"]
    assert row["exception"].startswith("AgentToolError: tool 'web_search' failed")
    assert "Traceback (most recent call last)" in row["detail"]


def test_roomapp_json_lines_join_their_conversation_exactly(apps):
    _, room = apps
    events = load_log_events(room.dir).events.collect()
    rows = _app_rows(events, room.conversations["ok"])
    message_id = room.ids["ok"]["message"]
    assert set(rows["confidence"]) == {"exact"}
    assert {"accept", "receive", "enqueue", "task", "disconnect"} <= set(rows["hop"].drop_nulls())
    enqueue = rows.filter(pl.col("hop") == "enqueue").row(0, named=True)
    assert enqueue["message_id"] == message_id
    assert enqueue["task_name"] == "rooms.tasks.stream_bot"
    started = rows.filter(pl.col("event") == "task_started").row(0, named=True)
    assert started["task_id"] == enqueue["task_id"]
    # the JSON's own stamp (with its zone) times a plain log's line, to the microsecond
    assert started["ts"].microsecond != 0 or started["ts"].second != 0
    # a JSON record reads as `message key=value ...`, not as the raw object
    assert enqueue["detail"].startswith("message queued ")
    assert f"message_id={message_id}" in enqueue["detail"]
    assert json.loads(enqueue["attributes"])["fields"]["queue"] == "celery"


def test_roomapp_json_exc_info_becomes_the_exception(apps):
    _, room = apps
    events = load_log_events(room.dir).events.collect()
    raised = _app_rows(events, room.conversations["task_failed"]).filter(
        pl.col("event") == "task_failed"
    )
    assert raised.height == 1
    row = raised.row(0, named=True)
    assert row["status"] == "error"
    assert row["exception"] == "BotError: bot backend failed: upstream model API returned HTTP 502"
    assert "\nTraceback (most recent call last):" in row["detail"]


def test_roomapp_rejection_is_a_4001_disconnect(apps):
    _, room = apps
    events = load_log_events(room.dir).events.collect()
    rows = _app_rows(events, room.conversations["auth_rejected"])
    # "ws rejected" (the app closing it) and "ws disconnected" both carry the code
    codes = rows.filter(pl.col("hop") == "disconnect")["close_code"].to_list()
    assert codes and set(codes) == {4001}


def _reframed(source: Path, out: Path, kind: str) -> Path:
    """The real web.log as compose `-t`, json-file or `docker logs -t` output."""
    lines = source.read_text().splitlines()
    stamps = [f"2026-01-01T00:00:{i // 1000:02d}.{i % 1000:03d}000000Z" for i in range(len(lines))]
    if kind == "compose":
        text = "".join(f"web-1  | {ts} {ln}\n" for ts, ln in zip(stamps, lines, strict=True))
        path = out / "compose.log"
    elif kind == "json-file":
        docs = [
            json.dumps({"log": ln + "\n", "stream": "stderr", "time": ts})
            for ts, ln in zip(stamps, lines, strict=True)
        ]
        text = "\n".join(docs) + "\n"
        path = out / "abc-json.log"
    else:
        text = "".join(f"{ts} {ln}\n" for ts, ln in zip(stamps, lines, strict=True))
        path = out / "web.stderr"
    path.write_text(text)
    return path


@pytest.mark.parametrize("kind", ["compose", "json-file", "docker-t"])
def test_structured_lines_read_the_same_in_every_framing(apps, tmp_path, kind):
    keys = ["conversation_id", "hop", "event", "message_id", "task_id", "close_code"]
    for run in apps:
        plain = parse_lines(read_file(run.dir / "web.log")).collect()
        framed = parse_lines(read_file(_reframed(run.dir / "web.log", tmp_path, kind))).collect()
        want = plain.filter(pl.col("name") == "app").select(keys).sort(keys, nulls_last=True)
        got = framed.filter(pl.col("name") == "app").select(keys).sort(keys, nulls_last=True)
        assert want.height >= 8
        assert got.to_dicts() == want.to_dicts()


# --- redaction --------------------------------------------------------------------------
def test_a_jwt_in_a_logged_url_never_reaches_conversation_json(apps):
    chat, _ = apps
    events = load_log_events(chat.dir).events.collect()
    row = _app_rows(events, "chat-secret").row(0, named=True)
    assert JWT not in row["detail"] and "[redacted]" in row["detail"]
    assert JWT not in row["attributes"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "wsanalyze.cli",
            "conversation",
            "chat-secret",
            "--logs",
            str(chat.dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "chat-secret" in result.stdout
    assert JWT not in result.stdout
    assert JWT.split(".")[1] not in result.stdout
    assert JWT not in result.stderr


def test_bearer_cookie_and_drf_token_values_are_redacted(tmp_path):
    lines = [
        '{"event": "upstream call", "conversation_id": "c1", "level": "error",'
        ' "headers": {"Authorization": "Bearer abc.def-123456", "Cookie": "sessionid=s3cr3t"}}',
        'level=error msg="auth header Authorization: Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"'
        " conv=c2",
    ]
    events = _parse(tmp_path, "\n".join(lines) + "\n")
    text = " ".join(events["detail"].to_list() + events["attributes"].to_list())
    for secret in ("abc.def-123456", "s3cr3t", "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"):
        assert secret not in text
    assert set(events["conversation_id"]) == {"c1", "c2"}


# --- logfmt -------------------------------------------------------------------------------
def test_logfmt_quoted_values_keep_spaces_quotes_and_escapes(tmp_path):
    line = r'level=info msg="ws \"closed\" now" conv="room one" code=4005 note="a\\b\nc"' + "\n"
    row = _parse(tmp_path, line).row(0, named=True)
    assert row["conversation_id"] == "room one"
    assert row["close_code"] == 4005
    assert row["hop"] == "disconnect"
    fields = json.loads(row["attributes"])["fields"]
    assert fields["msg"] == 'ws "closed" now'
    assert fields["note"] == "a\\b\nc"


def test_bare_words_are_the_message_of_a_logfmt_line(tmp_path):
    text = (
        "ws disconnected conv=abc code=4001\nmessage queued conv=abc task=8832aa16-1 queue=agents\n"
    )
    events = _parse(tmp_path, text)
    assert events.select("hop", "event", "close_code", "task_id", "queue").rows() == [
        ("disconnect", "disconnect", 4001, None, None),
        ("enqueue", "enqueue", None, "8832aa16-1", "agents"),
    ]


def test_a_disconnect_without_a_code_is_still_a_disconnect(tmp_path):
    events = _parse(tmp_path, "client disconnected conv=d1\nreconnect scheduled conv=d2\n")
    rows = {r["conversation_id"]: r for r in events.iter_rows(named=True)}
    assert (rows["d1"]["hop"], rows["d1"]["close_code"]) == ("disconnect", None)
    assert rows["d2"]["hop"] is None


def test_msg_is_a_message_id_only_when_shaped_like_one(tmp_path):
    text = 'msg=m-17 conv=a\nmsg=hello conv=b\nmsg="task queued" conv=c msg_id=x-99\n'
    events = _parse(tmp_path, text).sort("conversation_id")
    assert events["message_id"].to_list() == ["m-17", None, "x-99"]


def test_look_alike_values_are_not_taken_as_ids_or_close_codes(tmp_path):
    text = (
        '{"message": "request done", "thread": 140234567890123, "code": 200, "conv": "c9"}\n'
        'level=info msg="server started" port=8000\n'
        'task=run_agent conv=c8 msg="task started"\n'
    )
    events = _parse(tmp_path, text).sort("conversation_id")
    assert events["conversation_id"].to_list() == ["c8", "c9"]
    assert events["close_code"].to_list() == [None, None]
    assert events.filter(pl.col("conversation_id") == "c8").row(0, named=True)["task_name"] == (
        "run_agent"
    )
    assert events.filter(pl.col("conversation_id") == "c8")["task_id"].to_list() == [None]


# --- JSON ---------------------------------------------------------------------------------
def test_nested_json_keys_count_by_their_last_part(tmp_path):
    line = json.dumps(
        {
            "event": "message queued",
            "ctx": {"conversation_id": "c1", "task_id": "t-1", "ws.message_id": "m-2"},
            "severity": "WARNING",
        }
    )
    row = _parse(tmp_path, line + "\n").row(0, named=True)
    assert (row["conversation_id"], row["task_id"], row["message_id"]) == ("c1", "t-1", "m-2")
    assert row["hop"] == "enqueue"
    assert json.loads(row["attributes"])["level"] == "WARNING"


def test_a_pretty_printed_json_record_stays_one_record(tmp_path):
    text = '{\n  "event": "ws closed",\n  "room": "r7",\n  "close_code": 4003\n}\n'
    events = _parse(tmp_path, text)
    assert events.height == 1
    row = events.row(0, named=True)
    assert (row["conversation_id"], row["close_code"], row["hop"]) == ("r7", 4003, "disconnect")


def test_app_time_stamps_are_read_in_their_zone_and_engine_stamps_win(tmp_path):
    text = (
        '{"timestamp": "2026-01-02T03:04:05.250+02:00", "conv": "z", "event": "ws connected"}\n'
        'time=1767322800.5 conv=e msg="ws connected"\n'
        'asctime="2026-01-02 03:04:05,250" conv=n msg="ws connected"\n'
    )
    events = _parse(tmp_path, text)
    ts = {r["conversation_id"]: r["ts"].isoformat() for r in events.iter_rows(named=True)}
    assert ts == {
        "z": "2026-01-02T01:04:05.250000+00:00",
        "e": "2026-01-02T03:00:00.500000+00:00",
        "n": "2026-01-02T03:04:05.250000+00:00",
    }
    compose = 'web-1  | 2026-05-05T05:05:05.000000001Z {"timestamp": "2026-01-02T03:04:05Z", "conv": "k", "event": "ws connected"}\n'
    row = _parse(tmp_path, compose, "compose.log").row(0, named=True)
    assert row["ts"].isoformat().startswith("2026-05-05T05:05:05")


def test_a_traceback_after_a_logfmt_line_stays_with_it_in_a_stamped_log(tmp_path):
    text = (
        "2026-01-01 00:00:00,000 INFO daphne.server Listening\n"
        'ts=2026-01-01T00:00:01Z level=error msg="consumer crashed" conv=q\n'
        "Traceback (most recent call last):\n"
        '  File "a.py", line 3, in f\n'
        "KeyError: 'content'\n"
        'ts=2026-01-01T00:00:02Z level=info msg="ws disconnected" conv=q code=1011\n'
    )
    events = _parse(tmp_path, text).filter(pl.col("conversation_id") == "q")
    assert events.select("status", "exception", "close_code").rows() == [
        ("error", "KeyError: 'content'", None),
        ("unset", None, 1011),
    ]


# --- the user's mapping -------------------------------------------------------------------
ROOM_LINE = "room r9 closed with 4003\nchat_room=zz level=error msg=boom\n"
MAP_TOML = """
[log_keys]
conversation = ["chat_room"]

[[log_patterns]]
regex = '^room (?P<conversation_id>\\S+) closed with (?P<close_code>\\d+)$'
hop = "disconnect"
event = "disconnect"
"""


def test_a_log_map_file_adds_keys_and_line_patterns(tmp_path):
    (tmp_path / "map.toml").write_text(MAP_TOML)
    (tmp_path / "app.log").write_text(ROOM_LINE)
    without = load_log_events(tmp_path / "app.log", log_map=LogMap()).events.collect()
    # without the map: the error line is kept, but names no conversation; the room line is prose
    assert without["conversation_id"].to_list() == [None]
    log_map = load_log_map(tmp_path / "map.toml")
    events = load_log_events(tmp_path / "app.log", log_map=log_map).events.collect()
    rows = {r["conversation_id"]: r for r in events.iter_rows(named=True)}
    assert (rows["r9"]["hop"], rows["r9"]["close_code"]) == ("disconnect", 4003)
    assert rows["r9"]["confidence"] == "exact"
    assert rows["zz"]["status"] == "error"


def test_pyproject_tool_wsanalyze_is_found_from_a_subdirectory(tmp_path, monkeypatch):
    section = MAP_TOML.replace("[log_keys]", "[tool.wsanalyze.log_keys]").replace(
        "[[log_patterns]]", "[[tool.wsanalyze.log_patterns]]"
    )
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n' + section)
    (tmp_path / "app.log").write_text(ROOM_LINE)
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    events = load_log_events(tmp_path / "app.log").events.collect()
    assert set(events["conversation_id"]) == {"r9", "zz"}


def test_a_pattern_can_match_the_message_of_a_json_line(tmp_path):
    log_map = LogMap(patterns=(LogPattern(r"^kicked (?P<conversation_id>\w+)$", hop="disconnect"),))
    line = '{"event": "kicked lobby", "level": "info"}\n'
    row = _parse(tmp_path, line, log_map=log_map).row(0, named=True)
    assert (row["conversation_id"], row["hop"]) == ("lobby", "disconnect")


@pytest.mark.parametrize(
    ("name", "text", "key"),
    [
        ("bad.toml", "[log_keys]\nconvo = ['x']\n", "log_keys.convo"),
        (
            "bad.toml",
            "[[log_patterns]]\nregex = '(?<=a)(?P<conversation_id>b)'\n",
            "log_patterns[0].regex",
        ),
        ("bad.toml", "[[log_patterns]]\nregex = 'room (\\S+)'\n", "log_patterns[0].regex"),
        (
            "bad.toml",
            "[[log_patterns]]\nregex = '(?P<conv>x)'\nhop = 'elsewhere'\n",
            "log_patterns[0].hop",
        ),
        ("bad.json", '{"log_keys": {"conversation": 5}}', "log_keys.conversation"),
        ("bad.json", '{"log_keys": ', "not valid JSON"),
        ("bad.toml", "log_keys = [", "not valid TOML"),
        ("bad.toml", "log_key = {}\n", "log_key"),
    ],
)
def test_a_bad_log_map_is_one_error_naming_the_file_and_key(tmp_path, name, text, key):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(LogMapError) as caught:
        load_log_map(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert key in message
    assert "\n" not in message


def test_the_cli_reports_a_bad_log_map_in_one_line(tmp_path):
    (tmp_path / "bad.toml").write_text("[log_keys]\nconvo = ['x']\n")
    (tmp_path / "app.log").write_text(ROOM_LINE)
    result = CliRunner().invoke(
        cli_app,
        [
            "conversations",
            "--logs",
            str(tmp_path / "app.log"),
            "--log-map",
            str(tmp_path / "bad.toml"),
        ],
    )
    assert result.exit_code == 1
    output = result.output.strip()
    assert "log_keys.convo" in output and "bad.toml" in output
    assert "Traceback" not in output
    assert len(output.splitlines()) <= 2  # one line, however rich wraps it


def test_the_cli_log_map_reaches_the_conversation_report(tmp_path):
    (tmp_path / "map.toml").write_text(MAP_TOML)
    (tmp_path / "app.log").write_text(ROOM_LINE)
    args = ["conversation", "r9", "--logs", str(tmp_path / "app.log"), "--json"]
    without = CliRunner().invoke(cli_app, args)
    assert without.exit_code == 1  # nothing names r9 without the pattern
    result = CliRunner().invoke(cli_app, [*args, "--log-map", str(tmp_path / "map.toml")])
    assert result.exit_code == 0, result.output
    timeline = json.loads(result.output)["timeline"]
    assert [(t["hop"], t["detail"]) for t in timeline] == [
        ("disconnect", "room r9 closed with 4003")
    ]


def test_a_frame_sent_on_the_socket_is_a_send_row(tmp_path):
    rows = _parse(
        tmp_path,
        'ts=2026-03-12T10:00:01.5Z msg="answer sent" conv=abc message_id=m-1 chunks=5\n'
        'ts=2026-03-12T10:00:01.6Z msg="chunk sent" conv=abc task=7f3e-11 message_id=m-1\n',
    )
    # a line with a task id is the task's (a worker publishing), not the socket's
    assert rows["hop"].to_list() == ["send", None]
    assert rows["message_id"].to_list() == ["m-1", "m-1"]


def test_a_refused_handshake_with_a_reason_names_the_cause_by_its_path(tmp_path):
    rows = _parse(
        tmp_path,
        'ts=2026-03-12T10:00:01.5Z level=warning msg="ws rejected" reason="origin not allowed"'
        " path=/ws/chat/abc-1/\n"
        '{"ts": "2026-03-12T10:00:02Z", "event": "ws closing", "room": "r1", "close_code": 4004,'
        ' "reason": "too many messages"}\n'
        'ts=2026-03-12T10:00:03Z msg="ws closing" conv=abc code=4001 reason=custom_cause_x\n',
    )
    assert rows.select("conversation_id", "event", "cause").rows() == [
        ("abc-1", "reject", "origin_rejected"),  # the conversation comes from the ws path
        ("r1", "disconnect", "rate_limited"),
        ("abc", "disconnect", None),  # a reason that names no cause leaves it to the code
    ]


def test_group_join_and_leave_lines_are_membership_rows(tmp_path):
    rows = _parse(
        tmp_path,
        'ts=2026-03-12T10:00:01Z msg="joined group" conv=abc group=chat_abc\n'
        'ts=2026-03-12T10:00:02Z msg="left group" conv=abc group=chat_abc\n'
        'ts=2026-03-12T10:00:03Z msg="group cleanup" group=chat_abc\n',
    )
    assert rows.select("event", "group").rows() == [
        ("group_add", "chat_abc"),
        ("group_discard", "chat_abc"),
    ]


def test_a_process_naming_its_channel_layer_keeps_the_layer_without_credentials(tmp_path):
    rows = _parse(
        tmp_path,
        'ts=2026-03-12T10:00:01Z msg="channel layer loaded" '
        'layer="channels_redis.core.RedisChannelLayer redis://:s3cret-pw@redis:6379/1"\n',
    )
    (layer,) = rows["layer"].to_list()
    assert layer.startswith("channels_redis.core.RedisChannelLayer redis://")
    assert "s3cret-pw" not in layer


def test_celery_banner_queues_go_on_the_worker_ready_row(tmp_path):
    banner = (
        " \n -------------- celery@w1 v5.4.0 (opalescent)\n--- ***** ----- \n"
        "- ** ---------- [config]\n- ** ---------- .> transport:   redis://:**@redis:6379/0\n"
        " -------------- [queues]\n                .> celery           exchange=celery(direct)"
        " key=celery\n                .> agents           exchange=agents(direct) key=agents\n"
        "\n[tasks]\n  . app.tasks.run\n\n"
        "[2026-03-12 10:00:00,100: INFO/MainProcess] Connected to redis://:**@redis:6379/0\n"
        "[2026-03-12 10:00:00,200: INFO/MainProcess] celery@w1 ready.\n"
        "\nworker: Warm shutdown (MainProcess)\n"
    )
    rows = _parse(tmp_path, banner, name="worker.log")
    ready = rows.filter(pl.col("event") == "worker_ready")
    assert ready["queues"].to_list() == [["celery", "agents"]]
    assert "worker_shutdown" in rows["event"].to_list()
