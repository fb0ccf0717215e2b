"""``wsanalyze watch``: follows the store as it grows, reports each message once it settles, with
the verdict ``conversation --at`` gives; and ``lost --fail-on-lost``, the CI gate."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner
from wsanalyze.analysis import conversation_report
from wsanalyze.cli import app
from wsanalyze.render.json import message_dict
from wsanalyze.verdicts.testing import START, Trace, otlp_span
from wsanalyze.watch import Watcher

runner = CliRunner()
LATER = START + timedelta(hours=1)  # long after every span below: everything is quiet
OLD = "2026-01-01T00:00Z"  # --since before the spans below: all of them are printed


def append(path: Path, rows: list[dict[str, Any]], *, newline: bool = True) -> int:
    """Append rows as one OTLP/JSON line (one export batch, as wstrace writes); its bytes."""
    by_service: dict[str, list] = {}
    for row in rows:
        by_service.setdefault(row["service"], []).append(otlp_span(row))
    doc = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": s}}]},
                "scopeSpans": [{"scope": {"name": "wstrace"}, "spans": spans}],
            }
            for s, spans in by_service.items()
        ]
    }
    text = json.dumps(doc) + ("\n" if newline else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)
    return len(text.encode())


def healthy(conversation_id: str, at: float = 0) -> Trace:
    t = Trace(conversation_id)
    t.worker_ready(["celery"], at=at - 5000)
    t.connect("k1", at=at)
    t.message(f"{conversation_id}-m1", "k1", at + 10, chunks=3)
    t.disconnect("k1", at + 1000)
    return t


def waiting(conversation_id: str, queue: str = "celery") -> Trace:
    """A message enqueued that no worker has started, its connection still open."""
    t = Trace(conversation_id)
    t.worker_ready(["celery"], at=-5000)
    t.connect("k1")
    t.enqueue(
        f"{conversation_id}-m1", t.receive(f"{conversation_id}-m1", "k1", 10), 11, queue=queue
    )
    return t


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """Three conversations long finished: delivered, consumer_gone, queued where nobody consumes."""
    ok = healthy("conv-healthy")
    gone = Trace("conv-gone")
    gone.connect("k2", at=2000)
    gone.message("m2", "k2", 2010, chunks=4, deliver_upto=0)
    late = Trace("conv-queue")
    late.connect("k3", at=60_000)
    late.enqueue("m3", late.receive("m3", "k3", 60_010), 60_011, queue="priority")
    late.disconnect("k3", 60_500)
    path = tmp_path / "traces" / "web-test-1-20260102T100000.0.jsonl"
    append(path, ok.rows + gone.rows + late.rows)
    return path.parent


def verdicts(settled) -> dict[str, tuple]:
    return {s.conversation_id: (s.message.outcome, s.message.hop, s.message.cause) for s in settled}


def test_each_message_is_reported_once_with_the_verdict_conversation_gives(store: Path) -> None:
    watcher = Watcher(str(store))
    first = watcher.tick(now=LATER)
    assert verdicts(first.settled) == {
        "conv-healthy": ("delivered", "send", "ok"),
        "conv-gone": ("lost", "deliver", "consumer_gone"),
        "conv-queue": ("lost", "task", "no_worker"),
    }
    for settled in first.settled:
        report = conversation_report(settled.conversation_id, traces=str(store), at=settled.at)
        (message,) = report.messages
        assert message_dict(settled.message) == message_dict(message)
        assert not settled.changed
    again = watcher.tick(now=LATER + timedelta(seconds=1))
    assert again.settled == [] and again.analyzed == 0 and again.bytes_read == 0


def test_a_waiting_message_settles_once_its_horizon_passes_without_newer_traffic(
    tmp_path: Path,
) -> None:
    path = tmp_path / "web.0.jsonl"
    append(path, waiting("conv-wait").rows)
    watcher = Watcher(str(tmp_path), in_flight=timedelta(seconds=5))
    assert watcher.tick(now=START + timedelta(seconds=3)).settled == []
    assert watcher.counts()["in_flight"] == 1
    idle = watcher.tick(now=START + timedelta(seconds=4))
    assert idle.analyzed == 0  # nothing new, horizon not reached: nothing re-analyzed
    (settled,) = watcher.tick(now=START + timedelta(seconds=6)).settled
    assert (settled.message.outcome, settled.message.hop, settled.message.cause) == (
        "lost",
        "task",
        "no_worker",
    )
    (message,) = conversation_report("conv-wait", traces=str(tmp_path), at=settled.at).messages
    assert message_dict(message) == message_dict(settled.message)
    # without --at the data ends at the enqueue: still waiting, as the horizon says
    (now,) = conversation_report("conv-wait", traces=str(tmp_path)).messages
    assert now.outcome == "in_flight"


def test_fresh_evidence_is_reported_once_it_has_been_quiet(tmp_path: Path) -> None:
    path = tmp_path / "web.0.jsonl"
    append(path, healthy("conv-a").rows)
    watcher = Watcher(str(tmp_path), settle=timedelta(seconds=2))
    assert watcher.tick(now=START + timedelta(seconds=2)).settled == []  # ended ~1 s ago
    assert verdicts(watcher.tick(now=START + timedelta(seconds=3.1)).settled) == {
        "conv-a": ("delivered", "send", "ok")
    }
    # rows that arrive later wait from their arrival, whatever their timestamps
    append(path, healthy("conv-b", at=100).rows)
    arrived = START + timedelta(seconds=10)
    assert watcher.tick(now=arrived).settled == []
    assert watcher.tick(now=arrived + timedelta(seconds=1)).settled == []
    assert set(verdicts(watcher.tick(now=arrived + timedelta(seconds=2)).settled)) == {"conv-b"}


def test_a_changed_verdict_is_reported_again_saying_what_it_was(tmp_path: Path) -> None:
    path = tmp_path / "web.0.jsonl"
    t = waiting("conv-late")
    append(path, t.rows)
    watcher = Watcher(str(tmp_path))
    assert verdicts(watcher.tick(now=START + timedelta(seconds=30)).settled) == {
        "conv-late": ("lost", "task", "no_worker")
    }
    # a worker picks it up after all: task, publish, deliver, send arrive
    before = len(t.rows)
    enqueue = next(r["span_id"] for r in t.rows if r["name"] == "ws.enqueue")
    task = t.task("conv-late-m1", enqueue, 31_000, 20)
    publish = t.publish("conv-late-m1", task, 31_005, 1)
    t.send("conv-late-m1", t.deliver("conv-late-m1", publish, 31_007, 1), 31_008, 1)
    t.disconnect("k1", 32_000)
    append(path, t.rows[before:])
    arrived = START + timedelta(seconds=40)
    assert watcher.tick(now=arrived).settled == []
    (settled,) = watcher.tick(now=arrived + timedelta(seconds=3)).settled
    assert (settled.message.outcome, settled.previous) == (
        "delivered",
        ("lost", "task", "no_worker"),
    )
    assert settled.changed


def test_new_grown_and_rotated_files_are_read_once(tmp_path: Path) -> None:
    first = tmp_path / "web-host-7-20260102T100000.0.jsonl"
    size = append(first, healthy("conv-1").rows)
    watcher = Watcher(str(tmp_path), settle=timedelta(0))  # report as soon as read
    tick = watcher.tick(now=LATER)
    assert set(verdicts(tick.settled)) == {"conv-1"} and tick.bytes_read == size

    grown = append(first, healthy("conv-2").rows)
    half = json.dumps({"resourceSpans": []})  # a batch being written: no newline yet
    with open(first, "a") as fh:
        fh.write(half[:10])
    rotated = append(first.with_name("web-host-7-20260102T100000.1.jsonl"), healthy("conv-3").rows)
    tick = watcher.tick(now=LATER)
    assert set(verdicts(tick.settled)) == {"conv-2", "conv-3"}
    assert (tick.files_read, tick.bytes_read) == (2, grown + rotated)

    with open(first, "a") as fh:  # the batch finishes; and another follows
        fh.write(half[10:] + "\n")
    rest = append(first, healthy("conv-4").rows)
    tick = watcher.tick(now=LATER)
    assert set(verdicts(tick.settled)) == {"conv-4"}
    assert tick.bytes_read == len(half) + 1 + rest

    # rotated by renaming (a collector's backups): the same file, not read again
    first.rename(first.with_name(first.name + ".1"))
    tick = watcher.tick(now=LATER)
    assert (tick.files_read, tick.bytes_read, tick.settled) == (0, 0, [])
    assert watcher.counts()["delivered"] == 4


def test_the_backlog_before_since_stays_quiet_even_when_its_conversation_moves(
    tmp_path: Path,
) -> None:
    path = tmp_path / "web.0.jsonl"
    old = healthy("conv-old")
    append(path, old.rows + healthy("conv-new", at=60_000).rows)
    append(path, healthy("conv-older", at=-60_000).rows)
    since = START + timedelta(seconds=30)
    watcher = Watcher(str(tmp_path), since=since, settle=timedelta(0))
    assert set(verdicts(watcher.tick(now=LATER).settled)) == {"conv-new"}
    # a new message in the old conversation: only it is reported, not the old one again
    before = len(old.rows)
    old.connect("k9", at=90_000)
    old.message("conv-old-m2", "k9", 90_010, chunks=2)
    old.disconnect("k9", 91_000)
    append(path, old.rows[before:])
    (settled,) = watcher.tick(now=LATER).settled
    assert (settled.conversation_id, settled.message.message_id) == ("conv-old", "conv-old-m2")
    assert watcher.counts()["delivered"] == 2


def test_a_message_seen_waiting_is_reported_when_it_settles_whenever_it_was_sent(
    tmp_path: Path,
) -> None:
    append(tmp_path / "web.0.jsonl", waiting("conv-wait").rows)
    watcher = Watcher(str(tmp_path), since=START + timedelta(seconds=2))  # after its receive
    assert watcher.tick(now=START + timedelta(seconds=3)).settled == []
    assert set(verdicts(watcher.tick(now=START + timedelta(seconds=6)).settled)) == {"conv-wait"}


# --- the command ------------------------------------------------------------------------------
def _watch(*args: str) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "wsanalyze.cli", "watch", "--interval", "0.2", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _stop(proc: subprocess.Popen, lines: int) -> tuple[list[str], str, int]:
    """Read ``lines`` lines, then Ctrl-C; (stdout lines, stderr, exit status)."""
    got = [proc.stdout.readline() for _ in range(lines)]
    time.sleep(0.5)  # a few more ticks: nothing may be printed twice
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    return got + out.splitlines(keepends=True), err, proc.returncode


def test_watch_json_prints_one_object_per_message_and_stops_on_ctrl_c(store: Path) -> None:
    lines, err, status = _stop(_watch("--traces", str(store), "--json", "--since", OLD), 3)
    assert status == 0 and "Traceback" not in err, err
    objects = [json.loads(line) for line in lines if line.strip()]
    assert sorted(o["conversation_id"] for o in objects) == [
        "conv-gone",
        "conv-healthy",
        "conv-queue",
    ]
    for o in objects:
        assert {"conversation_id", "message_id", "outcome", "hop", "cause", "confidence",
                "summary", "chunks", "evidence", "hint", "at", "changed"} <= set(o)  # fmt: skip
        report = conversation_report(o["conversation_id"], traces=str(store), at=_at(o["at"]))
        assert {k: o[k] for k in message_dict(report.messages[0])} == json.loads(
            json.dumps(message_dict(report.messages[0]))
        )


def _at(text: str):
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_watch_terminal_prints_a_line_per_message_and_a_summary(store: Path) -> None:
    lines, err, status = _stop(_watch("--traces", str(store), "--lost-only", "--since", OLD), 2)
    assert status == 0 and "Traceback" not in err, err
    shown = [line for line in lines if line.strip()]
    assert len(shown) == 3, shown  # the two lost messages, then the summary
    assert "consumer_gone" in "".join(shown[:2]) and "no_worker" in "".join(shown[:2])
    assert shown[2].startswith("watched ") and "3 message(s) settled" in shown[2]
    assert "top cause" in shown[2]


@pytest.mark.parametrize(
    ("source", "says"),
    [("jaeger://localhost:16686", "cannot follow"), ("no/such/dir", "no traces at")],
)
def test_watch_refuses_what_it_cannot_follow_in_one_line(source: str, says: str) -> None:
    result = runner.invoke(app, ["watch", "--traces", source])
    assert result.exit_code == 1
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1


# --- lost --fail-on-lost -----------------------------------------------------------------------
def test_fail_on_lost_exits_3_with_a_one_line_summary(store: Path) -> None:
    result = runner.invoke(app, ["lost", "--traces", str(store), "--fail-on-lost"])
    assert result.exit_code == 3
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("2 message(s) lost: top cause ")
    assert " at hop " in line


def test_fail_on_lost_with_json_keeps_stdout_json_and_the_exit_status(store: Path) -> None:
    result = runner.invoke(
        app,
        [
            "lost",
            "--traces",
            str(store),
            "--fail-on-lost",
            "--json",
            "--since",
            "2026-01-02T09:00Z",
        ],
    )
    assert result.exit_code == 3
    assert json.loads(result.stdout)["lost"] == 2
    assert result.stderr.startswith("2 message(s) lost since 2026-01-02T09:00:00Z: top cause ")


def test_fail_on_lost_exits_0_when_nothing_was_lost(tmp_path: Path) -> None:
    append(tmp_path / "web.0.jsonl", healthy("conv-ok").rows)
    result = runner.invoke(app, ["lost", "--traces", str(tmp_path), "--fail-on-lost"])
    assert result.exit_code == 0
    assert result.stderr.startswith("no message lost: 1 message(s) checked")
