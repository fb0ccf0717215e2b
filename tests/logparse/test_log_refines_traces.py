"""With traces and logs: log lines tied to a message exactly are listed in its evidence,
prefixed with their source, even when its spans decided the verdict; they never count
as a run of the task (no duplicate delivery). Also Celery's revoke lines from logs alone.

Spans come from ``wsanalyze.verdicts.testing.Trace`` written as OTLP files; log lines are
in the formats the real Celery worker and the example app print (see test_log_verdicts).
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from wsanalyze.analysis import conversation_list, conversation_report
from wsanalyze.verdicts.testing import START, Trace, write_otlp
from wstrace import conventions as c

TASK = "336da05e-7c3b-4122-97dc-90cbd469fb51"
OTHER = "9f1c2b3a-0d4e-4f5a-8b6c-7d8e9f0a1b2c"
LOST = (
    "Task handler raised error: WorkerLostError('Worker exited prematurely: "
    "signal 9 (SIGKILL) Job: 0.')"
)


def stamp(ms: float) -> str:
    """Celery's local stamp (UTC here) ``ms`` after the traces' start."""
    from datetime import timedelta

    t = START + timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%d %H:%M:%S,") + f"{t.microsecond // 1000:03d}"


def celery(ms: float, text: str, level: str = "INFO", proc: str = "MainProcess") -> str:
    return f"[{stamp(ms)}: {level}/{proc}] {text}"


def received(ms: float, task: str = TASK) -> str:
    return celery(ms, f"Task chat.tasks.run_agent[{task}] received")


def succeeded(ms: float, task: str = TASK) -> str:
    return celery(ms, f"Task chat.tasks.run_agent[{task}] succeeded in 0.05s: None",
                  proc="ForkPoolWorker-1")  # fmt: skip


def with_task_id(t: Trace, task: str = TASK) -> Trace:
    for row in t.rows:
        if row.get("task_id"):
            row["task_id"] = task
    return t


def store(tmp_path: Path, t: Trace, worker: list[str], web: list[str] = ()) -> tuple[str, str]:
    traces, logs = tmp_path / "traces", tmp_path / "logs"
    write_otlp(t, traces)
    logs.mkdir()
    (logs / "worker.log").write_text("\n".join(worker) + "\n")
    if web:
        (logs / "web.log").write_text("\n".join(web) + "\n")
    return str(traces), str(logs)


def killed_child(t: Trace) -> dict[str, str]:
    """receive → enqueue → ws.task_lost: the child died, the main process recorded the loss."""
    conn = t.connect("k1")
    rec = t.receive("m1", "k1", 10)
    enq = t.enqueue("m1", rec, 11)
    t.span(
        "ws.task_lost", c.HOP_TASK, c.EV_TASK_LOST, 2000, 0, parent=enq, service="worker",
        message_id="m1", task_id="x", task_name="chat.tasks.run_agent", status="error",
        cause="task_stuck", exception="WorkerLostError: Worker exited prematurely: signal 9",
    )  # fmt: skip
    t.disconnect("k1", 20000)
    return {"connect": conn, "receive": rec, "enqueue": enq}


def test_a_sigkilled_child_lists_the_workers_workerlosterror_line_next_to_ws_task_lost(
    tmp_path,
):
    t = Trace("c1")
    killed_child(t)
    traces, logs = store(
        tmp_path, with_task_id(t), [received(15), celery(1990, LOST, level="ERROR")]
    )
    report = conversation_report("c1", traces=traces, logs=logs)
    (m,) = report.messages
    assert (m.outcome, m.hop, m.cause) == ("lost", "task", "task_stuck"), m.summary
    assert m.confidence == "exact" and not m.log_only
    assert any(line.startswith("ws.task_lost (span, recorded by the worker's main process")
               for line in m.evidence), m.evidence  # fmt: skip
    lost = [line for line in m.evidence if "WorkerLostError(" in line]
    assert len(lost) == 1 and lost[0].startswith("log: worker (celery) 10:00:01.990: "), lost
    assert "the one task open on worker" in lost[0]
    assert any(line.startswith("log: worker (celery) 10:00:00.015: ") and "received" in line
               for line in m.evidence)  # fmt: skip


def test_a_workerlosterror_with_two_tasks_open_on_the_worker_joins_neither(tmp_path):
    t = Trace("c1")
    killed_child(t)
    worker = [received(15), received(16, OTHER), celery(1990, LOST, level="ERROR")]
    traces, logs = store(tmp_path, with_task_id(t), worker)
    (m,) = conversation_report("c1", traces=traces, logs=logs).messages
    assert m.cause == "task_stuck"
    assert not any("WorkerLostError(" in line for line in m.evidence), m.evidence
    assert any("received" in line and line.startswith("log: ") for line in m.evidence)


def test_a_raised_unexpected_line_is_evidence_of_a_task_failed_verdict_from_spans(tmp_path):
    t = Trace("c1")
    t.connect("k1")
    rec = t.receive("m1", "k1", 10)
    enq = t.enqueue("m1", rec, 11)
    t.task("m1", enq, 15, 30, status="error", exception="KeyError: 'x'")
    t.disconnect("k1", 5000)
    raised = celery(44, f"Task chat.tasks.run_agent[{TASK}] raised unexpected: KeyError('x')",
                    level="ERROR", proc="ForkPoolWorker-1")  # fmt: skip
    traces, logs = store(tmp_path, with_task_id(t), [received(14), raised])
    (m,) = conversation_report("c1", traces=traces, logs=logs).messages
    assert (m.outcome, m.hop, m.cause) == ("lost", "task", "task_failed"), m.summary
    assert any(
        line.startswith("log: worker (celery) 10:00:00.044: ")
        and "raised unexpected: KeyError" in line
        for line in m.evidence
    ), m.evidence
    assert any(line.startswith("ws.task (span) errored") for line in m.evidence), m.evidence


def test_a_task_with_spans_and_log_lines_is_one_run_and_still_delivered(tmp_path):
    t = Trace("c1")
    t.connect("k1")
    t.message("m1", "k1", 10, chunks=2)
    t.disconnect("k1", 5000)
    traces, logs = store(tmp_path, with_task_id(t), [received(14), succeeded(50)])
    report = conversation_report("c1", traces=traces, logs=logs)
    (m,) = report.messages
    assert (m.outcome, m.cause) == ("delivered", "ok"), m.summary
    assert m.confidence == "exact"
    assert "task: 1 run(s)" in " ".join(m.evidence), m.evidence
    assert any("succeeded in" in line and line.startswith("log: ") for line in m.evidence)
    rows, _ = conversation_list(traces=traces, logs=logs)
    assert [(r.verdict.outcome, r.verdict.cause) for r in rows] == [("delivered", "ok")]


def test_an_app_line_naming_the_message_joins_its_evidence_and_another_message_does_not(
    tmp_path,
):
    t = Trace("c1")
    t.connect("k1")
    t.message("m1", "k1", 10, chunks=1)
    t.message("m2", "k1", 100, chunks=1)
    t.disconnect("k1", 5000)
    web = ['ts=2026-01-02T10:00:00.012Z level=info msg="frame received" conv=c1 message_id=m1']
    traces, logs = store(tmp_path, t, [], web)
    report = conversation_report("c1", traces=traces, logs=logs)
    by_id = {m.message_id: m for m in report.messages}
    assert any(line.startswith("log: web (app) 10:00:00.012: ") and "frame received" in line
               for line in by_id["m1"].evidence), by_id["m1"].evidence  # fmt: skip
    assert not any("frame received" in line for line in by_id["m2"].evidence)
    assert (by_id["m1"].outcome, by_id["m1"].cause) == ("delivered", "ok")


# --- revoke lines, logs alone ---------------------------------------------------------------

T = "2026-12-04T07:41"


def access(second: str, verb: str, conv: str, port: int = 55212) -> str:
    return f'127.0.0.1:{port} - - [04/Dec/2026:07:41:{second}] "{verb} /ws/chat/{conv}/" - -'


def app(ms: str, msg: str, conv: str, **kv: str) -> str:
    extra = "".join(f" {k}={v}" for k, v in kv.items())
    return f'ts={T}:{ms}Z level=info logger=core.agents.consumers msg="{msg}" conv={conv}{extra}'


def worker(ms: str, text: str, level: str = "INFO", proc: str = "MainProcess") -> str:
    return f"[2026-12-04 07:41:{ms}: {level}/{proc}] {text}"


def log_only(tmp_path: Path, worker_lines: list[str]) -> str:
    web = [
        access("25", "WSCONNECTING", "c1"), access("25", "WSCONNECT", "c1"),
        app("25.864", "message queued", "c1", message_id="m1", task=TASK, queue="celery"),
        access("40", "WSDISCONNECT", "c1"), app("40.100", "ws disconnected", "c1", code="1000"),
    ]  # fmt: skip
    (tmp_path / "web.log").write_text("\n".join(web) + "\n")
    (tmp_path / "worker.log").write_text("\n".join(worker_lines) + "\n")
    return str(tmp_path)


def test_a_terminated_task_from_logs_alone_is_task_revoked(tmp_path):
    logs = log_only(tmp_path, [
        worker("25,866", f"Task core.agents.tasks.run_agent[{TASK}] received"),
        worker("27,000", f"Terminating {TASK} (Signals.SIGTERM)"),
    ])  # fmt: skip
    report = conversation_report("c1", logs=logs)
    (m,) = report.messages
    assert (m.outcome, m.hop, m.cause) == ("lost", "task", "task_revoked"), m.summary
    assert any(f"Terminating {TASK} (Signals.SIGTERM)" in line and line.startswith("log: worker")
               for line in m.evidence), m.evidence  # fmt: skip
    assert any(line.startswith("the worker's revoke line") and "terminated (Signals.SIGTERM)"
               in line for line in m.evidence), m.evidence  # fmt: skip
    rows, _ = conversation_list(logs=logs)
    assert (rows[0].verdict.outcome, rows[0].verdict.cause) == ("lost", "task_revoked")


def test_a_revoked_task_discarded_before_it_ran_is_task_revoked(tmp_path):
    line = f"Discarding revoked task: core.agents.tasks.run_agent[{TASK}]"
    logs = log_only(tmp_path, [worker("26,000", line)])
    (m,) = conversation_report("c1", logs=logs).messages
    assert (m.outcome, m.hop, m.cause) == ("lost", "task", "task_revoked"), m.summary


def test_a_revoke_flagged_after_the_task_succeeded_stops_nothing(tmp_path):
    logs = log_only(tmp_path, [
        worker("25,866", f"Task core.agents.tasks.run_agent[{TASK}] received"),
        worker("26,100", f"Task core.agents.tasks.run_agent[{TASK}] succeeded in 0.2s: None",
               proc="ForkPoolWorker-1"),
        worker("30,000", f"Tasks flagged as revoked: {TASK}"),
    ])  # fmt: skip
    (m,) = conversation_report("c1", logs=logs).messages
    assert (m.outcome, m.cause) == ("delivered", "ok"), m.summary


# --- Redis and broker errors, logs alone -------------------------------------------------------

REFUSED = "Error 111 connecting to 127.0.0.1:6379. Connection refused."


def test_a_redis_error_inside_the_one_running_task_is_channel_layer_unavailable(tmp_path):
    logs = log_only(tmp_path, [
        worker("25,866", f"Task core.agents.tasks.run_agent[{TASK}] received"),
        worker("26,500", f"layer send failed: {REFUSED}", level="ERROR", proc="ForkPoolWorker-1"),
    ])  # fmt: skip
    report = conversation_report("c1", logs=logs)
    (m,) = report.messages
    assert (m.outcome, m.hop, m.cause) == ("lost", "publish", "channel_layer_unavailable"), (
        m.summary
    )
    assert m.confidence == "time"  # the error line names no task: joined by time
    assert any(
        line.startswith("log: worker (app) 07:41:26.500: ")
        and "Error 111" in line
        and "the one task running on worker" in line
        for line in m.evidence
    ), m.evidence
    rows, _ = conversation_list(logs=logs)
    assert rows[0].verdict.cause == "channel_layer_unavailable"


def test_a_redis_error_while_two_tasks_ran_on_the_worker_joins_neither(tmp_path):
    logs = log_only(tmp_path, [
        worker("25,866", f"Task core.agents.tasks.run_agent[{TASK}] received"),
        worker("25,900", f"Task core.agents.tasks.run_agent[{OTHER}] received"),
        worker("26,500", f"layer send failed: {REFUSED}", level="ERROR", proc="ForkPoolWorker-1"),
    ])  # fmt: skip
    m = next(m for m in conversation_report("c1", logs=logs).messages if m.message_id == "m1")
    assert m.cause != "channel_layer_unavailable", m.summary
    assert not any("Error 111" in line for line in m.evidence), m.evidence


def broker_down(ms: str) -> str:
    return worker(ms, f"consumer: Cannot connect to redis://127.0.0.1:6379/0: {REFUSED}\n"
                      "Trying again in 2.00 seconds... (1/100)\n", level="ERROR")  # fmt: skip


def test_a_task_enqueued_while_the_workers_broker_was_down_is_broker_unavailable(tmp_path):
    logs = log_only(tmp_path, [
        worker("10,000", "celery@host ready."), broker_down("20,000"), broker_down("22,000"),
    ])  # fmt: skip
    report = conversation_report("c1", logs=logs)
    (m,) = report.messages
    assert (m.outcome, m.hop, m.cause) == ("lost", "enqueue", "broker_unavailable"), m.summary
    assert any(
        line.startswith("log: worker (celery) 07:41:20.000: ")
        and "consumer: Cannot connect to redis://" in line
        for line in m.evidence
    ), m.evidence
    assert any(line.startswith("no worker received the task") for line in m.evidence)
    rows, _ = conversation_list(logs=logs)
    assert rows[0].verdict.cause == "broker_unavailable"


def test_a_broker_that_came_back_before_the_enqueue_is_not_the_cause(tmp_path):
    logs = log_only(tmp_path, [
        worker("10,000", "celery@host ready."), broker_down("20,000"),
        worker("24,000", "Connected to redis://127.0.0.1:6379/0"),
    ])  # fmt: skip
    (m,) = conversation_report("c1", logs=logs).messages
    assert m.cause != "broker_unavailable", m.summary


# --- real captured output ------------------------------------------------------------------------


@pytest.mark.stack
def test_a_really_killed_prefork_child_is_task_stuck_from_spans_with_the_workers_lines(
    captured, tmp_path
):
    """The worker's real output (tests/logparse/capture.py SIGKILLs chat.killed's child) beside
    spans for that task: the spans decide, the worker's lines are its evidence; the
    WorkerLostError line (no task id on it) joins the one task the worker never finished."""
    import polars as pl
    from wsanalyze.logparse import parse_lines, read_file

    logs = tmp_path / "logs"
    logs.mkdir()
    for path in captured.files["celery"]:
        shutil.copy(path, logs / f"worker.{path.name.split('.')[-1]}.log")
    events = parse_lines(pl.concat([read_file(p) for p in logs.iterdir()])).collect()
    killed = events.filter(
        (pl.col("event") == "task_received") & (pl.col("task_name") == "chat.killed")
    ).row(0, named=True)
    lost = events.filter(pl.col("event") == "worker_lost").row(0, named=True)
    t = Trace("c-killed", start=killed["ts"] - timedelta(milliseconds=20))
    t.connect("k1")
    rec = t.receive("m1", "k1", 5)
    enq = t.enqueue("m1", rec, 10)
    at = (lost["ts"] - t.start).total_seconds() * 1000
    t.span(
        "ws.task_lost", c.HOP_TASK, c.EV_TASK_LOST, at, 0, parent=enq, service="worker",
        message_id="m1", task_id="x", task_name="chat.killed", status="error",
        cause="task_stuck", exception="WorkerLostError: Worker exited prematurely: signal 9",
    )  # fmt: skip
    t.disconnect("k1", at + 5000)
    with_task_id(t, killed["task_id"])
    write_otlp(t, tmp_path / "traces")
    report = conversation_report("c-killed", traces=str(tmp_path / "traces"), logs=str(logs))
    (m,) = report.messages
    assert (m.outcome, m.hop, m.cause, m.confidence) == ("lost", "task", "task_stuck", "exact")
    assert any(line.startswith("ws.task_lost (span") for line in m.evidence), m.evidence
    mine = [line for line in m.evidence if line.startswith("log: ")]
    assert any(f"chat.killed[{killed['task_id']}] received" in line for line in mine), mine
    # the tasks the worker had received by then and that never logged an end
    ends = ("task_succeeded", "task_failed", "task_time_limit")
    ended = set(events.filter(pl.col("event").is_in(ends))["task_id"])
    received = events.filter((pl.col("event") == "task_received") & (pl.col("ts") <= lost["ts"]))
    open_ = set(received["task_id"]) - ended
    assert open_ == {killed["task_id"]}  # the capture: every other task logged its end
    joined = [line for line in mine if "WorkerLostError(" in line]
    assert len(joined) == 1 and joined[0].startswith("log: worker (celery) "), mine
    assert "the one task open on worker then" in joined[0]


def test_an_app_json_traceback_naming_workerlosterror_is_the_apps_line_not_celerys(tmp_path):
    """The room app logs `task raised` with the traceback (`raise WorkerLostError(`) in
    exc_info: its own stamp and task id, not Celery's WorkerLostError line (which once
    came out with no time and crashed the time joins)."""
    import json

    import polars as pl
    from wsanalyze.logparse import parse_lines, read_file

    trace = (
        'Traceback (most recent call last):\n  File "billiard/pool.py", line 1265, in '
        "mark_as_worker_lost\n    raise WorkerLostError(\n"
        "billiard.exceptions.WorkerLostError: Worker exited prematurely: signal 9 (SIGKILL) Job: 5."
    )
    raised = json.dumps({
        "timestamp": "2026-12-04T07:41:27.100000+00:00", "level": "error",
        "logger": "rooms.tasks", "event": "task raised", "task_name": "rooms.tasks.stream_bot",
        "conversation_id": "c1", "message_id": "m1", "task_id": TASK, "exc_info": trace,
    })  # fmt: skip
    logs = log_only(tmp_path, [
        worker("25,866", f"Task core.agents.tasks.run_agent[{TASK}] received"),
        worker("27,000", LOST, level="ERROR"), raised,
    ])  # fmt: skip
    rows = parse_lines(read_file(tmp_path / "worker.log")).collect()
    assert rows.filter(pl.col("event") == "worker_lost").height == 1  # Celery's line only
    app = rows.filter(pl.col("task_id") == TASK, pl.col("name") == "app").row(0, named=True)
    assert app["ts"] is not None and app["status"] == "error"
    (m,) = conversation_report("c1", logs=logs).messages
    assert (m.outcome, m.hop, m.cause) == ("lost", "task", "task_stuck"), m.summary


def test_a_consumer_that_died_of_a_redis_connection_error_lost_its_channel_layer(tmp_path):
    crash = ("2026-12-04 07:41:27,656 ERROR    Exception inside application: "
             "Connection closed by server.")  # fmt: skip
    web = [access("25", "WSCONNECTING", "c1"), access("25", "WSCONNECT", "c1"), crash,
           access("27", "WSDISCONNECT", "c1")]  # fmt: skip
    (tmp_path / "web.log").write_text("\n".join(web) + "\n")
    report = conversation_report("c1", logs=str(tmp_path))
    (k,) = report.connections
    assert (k.outcome, k.cause, k.hop) == ("lost", "channel_layer_unavailable", "deliver"), k
    v = report.verdict
    assert (v.outcome, v.cause) == ("lost", "channel_layer_unavailable"), v.summary
    other = tmp_path / "other"
    other.mkdir()
    web[2] = crash.replace("Connection closed by server.", "KeyError: 'room'")
    (other / "web.log").write_text("\n".join(web) + "\n")
    (k,) = conversation_report("c1", logs=str(other)).connections
    assert k.cause == "consumer_error", k
