"""``wsanalyze watch`` on a live run: Daphne + Celery + Redis write, watch reports each message
once, with the verdict ``wsanalyze conversation`` gives; ``lost --fail-on-lost`` gates on it."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from wsanalyze.demo.chatapp_faults import FAULTS
from wsanalyze.demo.run import EXPECT

pytestmark = pytest.mark.stack

FAST_FLUSH = {"OTEL_BSP_SCHEDULE_DELAY": "100"}
PLAYED = ("ok", "task_failed", "no_worker")
# what `watch --json` repeats of `conversation --json`'s message, besides the ids
SAME = ("outcome", "hop", "cause", "confidence", "summary", "chunks", "hint", "frame_type")


def wsanalyze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wsanalyze.cli", *args], capture_output=True, text=True, timeout=120
    )


def follow(proc: subprocess.Popen) -> queue.Queue:
    """The watch's stdout lines, as they come."""
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def test_watch_reports_each_live_message_once_as_conversation_does(
    make_stack: Any, tmp_path: Path
) -> None:
    stack = make_stack(env=FAST_FLUSH)
    before = set(stack.trace_dir.iterdir())
    watch = subprocess.Popen(
        [sys.executable, "-m", "wsanalyze.cli", "watch", "--traces", str(stack.trace_dir),
         "--json", "--interval", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # the same run from the processes' logs alone (web.log, worker.log in the stack's workdir)
    from_logs = subprocess.Popen(
        [sys.executable, "-m", "wsanalyze.cli", "watch", "--logs", str(stack.workdir), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        lines, log_lines = follow(watch), follow(from_logs)
        played = {}
        for cause in PLAYED:
            conversation = f"watch-{cause}-{uuid.uuid4().hex[:6]}"
            stack.run_scenario(FAULTS[cause], conversation_id=conversation)
            played[conversation] = EXPECT[cause]
        seen: list[dict] = []
        deadline = time.monotonic() + 60
        while {o["conversation_id"] for o in seen} < set(played) and time.monotonic() < deadline:
            try:
                seen.append(json.loads(lines.get(timeout=1)))
            except queue.Empty:
                continue
        time.sleep(2)  # a few more ticks: nothing may be reported twice
        logged: list[dict] = []
        while {o["conversation_id"] for o in logged} < set(played) and time.monotonic() < deadline:
            try:
                logged.append(json.loads(log_lines.get(timeout=1)))
            except queue.Empty:
                continue
    finally:
        for proc in (watch, from_logs):
            proc.send_signal(signal.SIGINT)
        _, err = watch.communicate(timeout=30)
        _, log_err = from_logs.communicate(timeout=30)
    assert watch.returncode == 0 and "Traceback" not in err, err
    assert from_logs.returncode == 0 and "Traceback" not in log_err, log_err
    while not lines.empty():
        seen.append(json.loads(lines.get()))
    assert {o["conversation_id"] for o in seen} >= set(played), (seen, err)
    # the worker's prefork child wrote its first spans after watch started: a new file, followed
    assert set(stack.trace_dir.iterdir()) - before

    for conversation, expected in played.items():
        data = json.loads(
            wsanalyze(
                "conversation", conversation, "--traces", str(stack.trace_dir), "--json"
            ).stdout
        )
        assert data["messages"], data
        for message in data["messages"]:
            reported = [o for o in seen if o["message_id"] == message["message_id"]]
            assert len(reported) == 1, reported  # once, and never changed since
            (line,) = reported
            assert line["conversation_id"] == conversation and not line["changed"]
            assert {k: line[k] for k in SAME} == {k: message[k] for k in SAME}
            assert (line["outcome"], line["hop"], line["cause"]) == expected
            # as of the tick that reported it, `conversation --at` says exactly the same
            at = json.loads(
                wsanalyze(
                    "conversation", conversation, "--traces", str(stack.trace_dir),
                    "--at", line["at"], "--json",
                ).stdout
            )  # fmt: skip
            (same,) = [m for m in at["messages"] if m["message_id"] == message["message_id"]]
            assert {k: line[k] for k in same} == same

    # from logs alone: each message once, as `conversation --logs` judges it
    while not log_lines.empty():
        logged.append(json.loads(log_lines.get()))
    for conversation in played:
        data = json.loads(
            wsanalyze("conversation", conversation, "--logs", str(stack.workdir), "--json").stdout
        )
        for message in data["messages"]:
            (line,) = [o for o in logged if o["message_id"] == message["message_id"]]
            assert {k: line[k] for k in SAME} == {k: message[k] for k in SAME}

    # the CI gate over the same store: a message was lost in the window, so exit 3
    gate = wsanalyze("lost", "--traces", str(stack.trace_dir), "--since", "10m", "--fail-on-lost")
    assert gate.returncode == 3, gate.stderr
    (summary,) = gate.stderr.strip().splitlines()
    assert summary.startswith("2 message(s) lost since ") and "top cause " in summary
    # and nothing lost after the run ended
    quiet = wsanalyze("lost", "--traces", str(stack.trace_dir), "--since", "0s", "--fail-on-lost",
                      "--json")  # fmt: skip
    assert quiet.returncode == 0 and json.loads(quiet.stdout)["lost"] == 0
    assert quiet.stderr.startswith("no message lost since ")
