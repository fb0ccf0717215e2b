"""Log-only verdicts of the one engine (``verdicts.logchains`` + ``verdicts/rules``).

The lines are the formats the real processes print (Daphne's access lines, Celery's
worker lines, the example chat app's logfmt lines, copied from captured runs of
tests/logparse/test_log_only_faults.py). Each case checks the verdict, its
confidence, that the evidence names the log lines, and that ``conversations`` and
``conversation`` agree.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from wsanalyze.analysis import conversation_list, conversation_report, lost_report

T = "2026-12-04T07:41"
TASK = "336da05e-7c3b-4122-97dc-90cbd469fb51"


def access(second: str, verb: str, conv: str, port: int = 55212) -> str:
    return f'127.0.0.1:{port} - - [04/Dec/2026:07:41:{second}] "{verb} /ws/chat/{conv}/" - -'


def app(stamp: str, msg: str, conv: str, **kv: str) -> str:
    extra = "".join(f" {k}={v}" for k, v in kv.items())
    return f'ts={T}:{stamp}Z level=info logger=core.agents.consumers msg="{msg}" conv={conv}{extra}'


def celery(stamp: str, text: str, level: str = "INFO", proc: str = "MainProcess") -> str:
    return f"[2026-12-04 07:41:{stamp}: {level}/{proc}] {text}"


def received(stamp: str, task: str = TASK) -> str:
    return celery(stamp, f"Task core.agents.tasks.run_agent[{task}] received")


def succeeded(stamp: str, task: str = TASK) -> str:
    return celery(stamp, f"Task core.agents.tasks.run_agent[{task}] succeeded in 0.3s: None",
                  proc="ForkPoolWorker-1")  # fmt: skip


def write(tmp_path: Path, web: list[str], worker: list[str]) -> str:
    (tmp_path / "web.log").write_text("\n".join(web) + "\n")
    (tmp_path / "worker.log").write_text("\n".join(worker) + "\n")
    return str(tmp_path)


def judged(logs: str, conv: str):
    report = conversation_report(conv, logs=logs)
    rows, _ = conversation_list(logs=logs)
    row = next(r for r in rows if r.conversation_id == conv)
    v = report.verdict
    assert (row.verdict.outcome, row.verdict.hop, row.verdict.cause) == (v.outcome, v.hop, v.cause)
    return report


def queued(stamp: str, conv: str, task: str = TASK, msg: str = "m1", queue: str = "celery"):
    return app(stamp, "message queued", conv, message_id=msg, task=task, queue=queue)


def opened(second: str, conv: str, port: int = 55212) -> list[str]:
    return [access(second, "WSCONNECTING", conv, port), access(second, "WSCONNECT", conv, port)]


def test_a_task_that_succeeded_while_the_socket_was_open_is_delivered_inferred(tmp_path):
    logs = write(
        tmp_path,
        [*opened("25", "c1"), queued("25.864", "c1"), access("26", "WSDISCONNECT", "c1"),
         app("26.176", "ws disconnected", "c1", code="1000")],
        [received("25,866"), succeeded("26,100")],
    )  # fmt: skip
    report = judged(logs, "c1")
    v = report.verdict
    assert (v.outcome, v.hop, v.cause, v.confidence) == ("delivered", "send", "ok", "inferred")
    (m,) = report.messages
    assert m.message_id == "m1" and m.confidence == "inferred" and m.log_only
    assert any("ws.send" in line for line in m.evidence)  # what would make it certain
    assert any(line.startswith("log: worker (celery)") for line in m.evidence)


def test_enqueued_and_never_received_by_a_worker_is_no_worker(tmp_path):
    other = "aaaaaaaa-0000-0000-0000-000000000000"
    logs = write(
        tmp_path,
        [*opened("25", "c1"), queued("25.864", "c1", queue="agents-priority"),
         access("27", "WSDISCONNECT", "c1"), app("27.100", "ws disconnected", "c1", code="1000")],
        # the worker keeps working well past the horizon and never receives it
        [received("40,000", other), succeeded("40,100", other)],
    )  # fmt: skip
    v = judged(logs, "c1").verdict
    assert (v.outcome, v.hop, v.cause) == ("lost", "task", "no_worker")


def test_without_the_workers_logs_no_absence_is_claimed(tmp_path):
    logs = write(
        tmp_path,
        [*opened("25", "c1"), queued("25.864", "c1"), access("40", "WSDISCONNECT", "c1"),
         app("40.100", "ws disconnected", "c1", code="1000")],
        [],
    )  # fmt: skip
    report = judged(logs, "c1")
    assert report.verdict.cause != "no_worker"
    (m,) = report.messages
    assert m.cause == "unknown" and "no Celery worker's log" in " ".join(m.evidence)


def test_a_received_task_whose_worker_child_was_killed_is_task_stuck(tmp_path):
    lost = ("Task handler raised error: WorkerLostError('Worker exited prematurely: "
            "signal 9 (SIGKILL) Job: 0.')")  # fmt: skip
    logs = write(
        tmp_path,
        [*opened("25", "c1"), queued("25.864", "c1"), access("40", "WSDISCONNECT", "c1"),
         app("40.100", "ws disconnected", "c1", code="1000")],
        [received("25,866"), celery("27,000", lost, level="ERROR")],
    )  # fmt: skip
    report = judged(logs, "c1")
    v = report.verdict
    assert (v.outcome, v.hop, v.cause) == ("lost", "task", "task_stuck")
    (m,) = report.messages
    assert any("WorkerLostError" in line and line.startswith("log: ") for line in m.evidence)


def test_a_task_that_raised_is_task_failed(tmp_path):
    raised = f"Task core.agents.tasks.run_agent[{TASK}] raised unexpected: KeyError('x')"
    logs = write(
        tmp_path,
        [*opened("25", "c1"), queued("25.864", "c1"), access("28", "WSDISCONNECT", "c1"),
         app("28.100", "ws disconnected", "c1", code="1000")],
        [received("25,866"), celery("26,000", raised, level="ERROR", proc="ForkPoolWorker-1")],
    )  # fmt: skip
    v = judged(logs, "c1").verdict
    assert (v.outcome, v.hop, v.cause) == ("lost", "task", "task_failed")
    assert lost_report(logs=logs).groups[0].cause == "task_failed"


def test_the_client_closing_before_the_task_finished_is_client_disconnected(tmp_path):
    logs = write(
        tmp_path,
        [*opened("25", "c1"), queued("25.864", "c1"), access("26", "WSDISCONNECT", "c1"),
         app("26.000", "ws disconnected", "c1", code="1001")],
        [received("25,866"), succeeded("29,000")],
    )  # fmt: skip
    v = judged(logs, "c1").verdict
    assert (v.outcome, v.hop, v.cause) == ("lost", "deliver", "client_disconnected")


def test_with_daphne_alone_a_cut_answer_names_both_candidates(tmp_path):
    logs = write(
        tmp_path,
        [*opened("25", "c1"), queued("25.864", "c1"), access("26", "WSDISCONNECT", "c1")],
        [received("25,866"), succeeded("29,000")],
    )  # fmt: skip
    report = judged(logs, "c1")
    assert (report.verdict.outcome, report.verdict.cause) == ("lost", "unknown")
    assert "client_disconnected" in " ".join(report.messages[0].evidence)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("4001", ("rejected", "auth", "auth_rejected")),
        ("4004", ("rejected", "receive", "rate_limited")),
        ("4005", ("rejected", "receive", "invalid_message")),
    ],
)
def test_close_codes_the_app_logged_go_through_the_close_code_table(tmp_path, code, expected):
    logs = write(
        tmp_path,
        [*opened("25", "c1"), app("25.500", "ws disconnected", "c1", code=code),
         access("25", "WSDISCONNECT", "c1")],
        [],
    )  # fmt: skip
    v = judged(logs, "c1").verdict
    assert (v.outcome, v.hop, v.cause) == expected


def test_a_daphne_reject_is_handshake_rejected_unless_the_app_logged_why(tmp_path):
    lines = [access("25", "WSCONNECTING", "c1"), access("25", "WSREJECT", "c1"),
             access("25", "WSDISCONNECT", "c1")]  # fmt: skip
    v = judged(write(tmp_path, lines, []), "c1").verdict
    assert (v.outcome, v.hop, v.cause, v.confidence) == (
        "rejected", "connect", "handshake_rejected", "path"
    )  # fmt: skip
    why = tmp_path / "why"
    why.mkdir()
    lines.insert(1, app("25.100", "origin refused", "c1", code="4003"))
    v = judged(write(why, lines, []), "c1").verdict
    assert (v.outcome, v.cause) == ("rejected", "origin_rejected")


def test_an_ambiguous_time_join_is_never_an_absence(tmp_path):
    """Two conversations open when an untagged task ran: it joins neither, and neither is
    said to have sent nothing."""
    logs = write(
        tmp_path,
        [*opened("25", "c1", 1), *opened("25", "c2", 2),
         access("30", "WSDISCONNECT", "c1", 1), access("30", "WSDISCONNECT", "c2", 2)],
        [received("26,000"), succeeded("26,500")],
    )  # fmt: skip
    for conv in ("c1", "c2"):
        report = judged(logs, conv)
        assert (report.verdict.outcome, report.verdict.cause) == ("unknown", "unknown")
        assert "not in the logs" in report.verdict.summary
        assert report.messages == ()


TASK2 = "9e55dc7c-2150-4eef-b5b5-2dc5175c29f6"


def test_where_the_app_logs_its_sends_a_finished_task_with_none_is_lost_not_delivered(tmp_path):
    web = [
        *opened("25", "c1"), app("25.100", "message received", "c1", message_id="m1"),
        queued("25.101", "c1"), app("25.500", "answer sent", "c1", message_id="m1"),
        access("26", "WSDISCONNECT", "c1"), app("26.100", "ws disconnected", "c1", code="1000"),
        *opened("30", "c2", 55300), app("30.100", "message received", "c2", message_id="m2"),
        queued("30.101", "c2", task=TASK2, msg="m2"),
        access("32", "WSDISCONNECT", "c2", 55300),
        app("32.100", "ws disconnected", "c2", code="1000"),
    ]  # fmt: skip
    worker = [received("25,102"), succeeded("25,450"),
              received("30,102", TASK2), succeeded("30,450", TASK2)]  # fmt: skip
    logs = write(tmp_path, web, worker)
    ok = judged(logs, "c1")
    assert (ok.verdict.outcome, ok.verdict.confidence) == ("delivered", "path")
    assert ok.messages[0].rule == "log_sent"
    assert "answer sent on the socket" in ok.messages[0].summary  # not "finished without answering"
    report = judged(logs, "c2")
    v = report.verdict
    assert (v.outcome, v.hop, v.cause) == ("lost", "deliver", "unknown")
    (m,) = report.messages
    assert m.rule == "log_unsent" and "logs the answers it sends" in " ".join(m.evidence)


def test_a_task_run_while_the_group_was_empty_is_consumer_gone(tmp_path):
    group = "chat_c1"
    web = [
        *opened("25", "c1"), app("25.050", "joined group", "c1", group=group),
        app("25.100", "message received", "c1", message_id="m1"),
        app("25.100", "left group", "c1", group=group), queued("25.101", "c1"),
        app("25.700", "joined group", "c1", group=group),
        access("27", "WSDISCONNECT", "c1"), app("27.100", "ws disconnected", "c1", code="1000"),
    ]  # fmt: skip
    logs = write(tmp_path, web, [received("25,102"), succeeded("25,600")])
    report = judged(logs, "c1")
    v = report.verdict
    assert (v.outcome, v.hop, v.cause, v.confidence) == ("lost", "deliver", "consumer_gone", "time")
    assert any("left group" in line for line in report.messages[0].evidence)
    # the socket back in its group before the task ran: delivered
    back = tmp_path / "back"
    back.mkdir()
    web[5] = app("25.101", "joined group", "c1", group=group)
    v = judged(write(back, web, [received("25,102"), succeeded("25,600")]), "c1").verdict
    assert (v.outcome, v.cause) == ("delivered", "ok")


def test_web_and_worker_on_different_channel_layers_is_layer_mismatch(tmp_path):
    def layer(stamp: str, prefix: str) -> str:
        return (f'ts={T}:{stamp}Z level=info logger=core.agents.apps msg="channel layer loaded" '
                f'layer="channels_redis.core.RedisChannelLayer redis:6379/1 prefix={prefix}"')  # fmt: skip

    web = [layer("20.000", "asgi"), *opened("25", "c1"), queued("25.101", "c1"),
           access("27", "WSDISCONNECT", "c1"), app("27.100", "ws disconnected", "c1", code="1000")]  # fmt: skip
    worker = [layer("21.000", "agents"), received("25,102"), succeeded("25,600")]
    report = judged(write(tmp_path, web, worker), "c1")
    v = report.verdict
    assert (v.outcome, v.hop, v.cause) == ("lost", "deliver", "layer_mismatch")
    assert any("prefix=agents" in line for line in report.messages[0].evidence)
    same = tmp_path / "same"
    same.mkdir()
    worker[0] = layer("21.000", "asgi")
    v = judged(write(same, web, worker), "c1").verdict
    assert (v.outcome, v.cause) == ("delivered", "ok")


def test_a_handled_frame_with_no_task_is_delivered_inferred_and_a_crash_after_it_is_not(tmp_path):
    web = [*opened("25", "c1"), app("25.100", "message received", "c1", message_id="m1"),
           access("27", "WSDISCONNECT", "c1"), app("27.100", "ws disconnected", "c1", code="1000")]  # fmt: skip
    report = judged(write(tmp_path, web, []), "c1")
    assert (report.verdict.outcome, report.verdict.confidence) == ("delivered", "inferred")
    assert report.messages[0].rule == "log_handled"
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    web = [*opened("25", "c1"), app("25.100", "message received", "c1", message_id="m1"),
           "2026-12-04 07:41:25,900 ERROR    Exception inside application: boom",
           "Traceback (most recent call last):", "RuntimeError: boom",
           access("26", "WSDISCONNECT", "c1")]  # fmt: skip
    v = judged(write(crashed, web, []), "c1").verdict
    assert (v.outcome, v.cause) == ("lost", "consumer_error")


def test_queued_after_every_worker_shut_down_is_no_worker(tmp_path):
    web = [*opened("25", "c1"), queued("25.101", "c1"),
           access("27", "WSDISCONNECT", "c1"), app("27.100", "ws disconnected", "c1", code="1000")]  # fmt: skip
    worker = [celery("00,100", "celery@w1 ready."), "", "worker: Warm shutdown (MainProcess)"]
    report = judged(write(tmp_path, web, worker), "c1")
    v = report.verdict
    assert (v.outcome, v.hop, v.cause) == ("lost", "task", "no_worker")
    assert any("ended with its shutdown" in line for line in report.messages[0].evidence)


def test_the_reason_for_a_refused_handshake_joins_even_when_stamped_after_daphne(tmp_path):
    """Engine stamps of stdout and stderr are taken per stream: the app's line may come
    after Daphne's WSREJECT / WSDISCONNECT it explains."""
    lines = [access("25", "WSCONNECTING", "c1"), access("25", "WSREJECT", "c1"),
             access("25", "WSDISCONNECT", "c1"),
             f'ts={T}:26.300Z level=warning msg="ws rejected" reason="origin not allowed"'
             " path=/ws/chat/c1/"]  # fmt: skip
    v = judged(write(tmp_path, lines, []), "c1").verdict
    assert (v.outcome, v.hop, v.cause) == ("rejected", "connect", "origin_rejected")


def test_an_answer_sent_line_stamped_after_the_close_is_still_the_sockets(tmp_path):
    """Engine stamps (`docker logs -t`): the app's `answer sent` (stderr) may land after
    Daphne's WSDISCONNECT (stdout) of the same socket when the client closes right after
    the last frame."""

    def engine(second: str, line: str) -> str:
        return f"{T}:{second}000000Z {line}"

    web = [engine("25.000", access("25", "WSCONNECTING", "c1")),
           engine("25.001", access("25", "WSCONNECT", "c1")),
           engine("25.100", app("25.100", "message received", "c1", message_id="m1")),
           engine("25.101", queued("25.101", "c1")),
           engine("25.400", access("25", "WSDISCONNECT", "c1")),
           engine("25.450", app("25.390", "answer sent", "c1", message_id="m1"))]  # fmt: skip
    worker = [engine("25.102", received("25,102")), engine("25.300", succeeded("25,300"))]
    report = judged(write(tmp_path, web, worker), "c1")
    assert (report.verdict.outcome, report.verdict.cause) == ("delivered", "ok")
    assert report.messages[0].rule == "log_sent"
