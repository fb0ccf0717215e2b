"""Traces and container logs on one timeline: Celery lines join their task's spans exactly."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from wsanalyze.analysis import conversation_report
from wsanalyze.demo.client import converse

pytestmark = pytest.mark.stack

FAST_FLUSH = {"OTEL_BSP_SCHEDULE_DELAY": "100"}


def test_celery_lines_join_the_conversation_by_task_id(shared_stack: Any, tmp_path: Path) -> None:
    stack = shared_stack(layer="core", wstrace_enabled=True, env=FAST_FLUSH)
    conversation = uuid.uuid4().hex[:12]
    transcript = asyncio.run(converse(stack.ws_url(conversation), ["hello"], token=stack.token()))
    assert transcript.all_done
    task_id = transcript.task_id(transcript.message_ids[0])

    logs = tmp_path / "logs"
    logs.mkdir()
    for _ in range(50):  # until the worker's spans and lines are both written
        for name in ("web.log", "worker.log"):
            shutil.copy(stack.workdir / name, logs / name)
        report = conversation_report(conversation, traces=str(stack.trace_dir), logs=str(logs))
        lines = [e for e in report.timeline if e.source == "log" and task_id in e.detail]
        spans = [e for e in report.timeline if e.source == "trace" and e.hop == "task"]
        # (the worker's lines may come before its spans: the logs then fill the run)
        if len(lines) >= 2 and spans and report.verdict.outcome == "delivered":
            break
        time.sleep(0.2)
    assert report.verdict.outcome == "delivered"
    # the task's log lines join its spans and are not counted again: one run, no duplicate
    (message,) = report.messages
    assert (message.cause, message.confidence, message.log_only) == ("ok", "exact", False)
    assert any(line.startswith("task: 1 run(s)") for line in message.evidence), message.evidence

    task_lines = [e for e in report.timeline if e.source == "log" and task_id in e.detail]
    assert {e.event for e in task_lines} >= {"task_received", "task_succeeded"}
    assert all(e.confidence == "exact" for e in task_lines)
    assert any(e.source == "trace" and e.hop == "task" for e in report.timeline)
    access = [e for e in report.timeline if e.source == "log" and "WSCONNECT " in e.detail]
    assert access and access[0].confidence == "path"
