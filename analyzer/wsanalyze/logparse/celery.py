"""Celery worker lines (`[%(asctime)s: %(levelname)s/%(processName)s] %(message)s`).

Task chat.run_agent[8832aa16-...] received
Task chat.run_agent[8832aa16-...] succeeded in 0.0008s: 'answered'
Task chat.explode[a07d4a65-...] raised unexpected: TypeError("can not serialize ...")
Task chat.flaky[35c80942-...] retry: Retry in 0s: ConnectionError(...)
Soft time limit (0.5s) exceeded for chat.slow[69e1c0ff-...]
Received unregistered task of type 'chat.not_registered'.   (task id in the record text)
Task handler raised error: WorkerLostError('Worker exited prematurely: signal 9 ...')
consumer: Cannot connect to redis://:**@127.0.0.1:6379/0: Error 111 connecting ...
Terminating 8832aa16-... (Signals.SIGTERM)          (revoke(terminate=True), worker/control.py)
Discarding revoked task: chat.run_agent[8832aa16-...]   (revoked before it ran, worker/request.py)
Tasks flagged as revoked: 8832aa16-...              (a revoke command; one id only)
"""

from __future__ import annotations

from wsanalyze.logparse.rules import Rule

_TASK = r"(?P<task_name>[\w.:-]+)\[(?P<task_id>[0-9a-fA-F-]{8,})\]"

RULES: tuple[Rule, ...] = (
    Rule(
        "task_received", "celery", "] received", rf"Task {_TASK} received", hop="task", priority=10
    ),
    Rule(
        "task_succeeded",
        "celery",
        "] succeeded in ",
        rf"Task {_TASK} succeeded in (?P<runtime>[\d.eE+-]+)s",
        hop="task",
        status="ok",
        priority=10,
    ),
    Rule(
        "task_failed",
        "celery",
        "] raised unexpected: ",
        rf"Task {_TASK} raised unexpected: (?P<exc>.*)$",
        hop="task",
        status="error",
        cause="task_failed",
        priority=10,
    ),
    Rule(
        "task_retry",
        "celery",
        "] retry: ",
        rf"Task {_TASK} retry: (?P<exc>.*)$",
        hop="task",
        status="error",
        priority=10,
    ),
    Rule(
        "task_soft_time_limit",
        "celery",
        "Soft time limit",
        rf"Soft time limit \((?P<limit>[\d.]+)s\) exceeded for {_TASK}",
        hop="task",
        status="error",
        cause="task_stuck",
        priority=10,
    ),
    Rule(
        "task_time_limit",
        "celery",
        "Hard time limit",
        rf"Hard time limit \((?P<limit>[\d.]+)s\) exceeded for {_TASK}",
        hop="task",
        status="error",
        cause="task_stuck",
        priority=10,
    ),
    Rule(
        "task_unregistered",
        "celery",
        "Received unregistered task",
        r"Received unregistered task of type '(?P<task_name>[^']+)'",
        hop="task",
        status="error",
        cause="no_worker",
        priority=10,
    ),
    Rule(
        "worker_lost",
        "celery",
        "WorkerLostError",
        # Celery's own line only: an app's line whose traceback says `raise WorkerLostError(`
        # (a JSON record's exc_info) is the app's, read with its own stamp and ids
        r"Task handler raised error: (?P<exc>WorkerLostError\(.*)$",
        hop="task",
        status="error",
        cause="task_stuck",
        priority=15,
    ),
    Rule(
        "task_terminating",
        "celery",
        "Terminating ",
        r"Terminating (?P<task_id>[0-9a-fA-F-]{8,}) \((?P<exc>[^)]*)\)",
        hop="task",
        cause="task_revoked",
        priority=10,
    ),
    Rule(
        "task_revoked_discarded",
        "celery",
        "Discarding revoked task: ",
        rf"Discarding revoked task: {_TASK}",
        hop="task",
        cause="task_revoked",
        priority=10,
    ),
    Rule(
        "task_revoke_flagged",
        "celery",
        "Tasks flagged as revoked: ",
        r"Tasks flagged as revoked: (?P<task_id>[0-9a-fA-F-]{8,})\s*$",
        hop="task",
        priority=10,
    ),
    Rule(
        "worker_process_exited",
        "celery",
        "exited with 'signal",
        r"Process '(?P<process>[^']+)' pid:(?P<pid>\d+) exited with '(?P<exc>[^']+)'",
        status="error",
        priority=15,
    ),
    Rule(
        "broker_unreachable",
        "celery",
        "consumer: Cannot connect to",
        r"consumer: Cannot connect to (?P<url>\S+?): (?P<exc>.*)$",
        status="error",
        priority=10,
    ),
    Rule(
        "broker_lost",
        "celery",
        "Connection to broker lost",
        r"consumer: (?P<exc>Connection to broker lost.*)$",
        status="error",
        priority=10,
    ),
    Rule(
        "broker_connected",
        "celery",
        "] Connected to ",
        r"\] Connected to (?P<url>\S+)$",
        status="ok",
        priority=30,
    ),
    Rule(
        "worker_ready",
        "celery",
        " ready.",
        r"\] (?P<worker>\S+@\S+) ready\.$",
        status="ok",
        priority=30,
    ),
    # printed, not logged: no time stamp of its own (an engine stamp when there is one)
    Rule(
        "worker_shutdown",
        "celery",
        " shutdown (MainProcess)",
        r"worker: (?P<msg>Warm|Cold) shutdown \(MainProcess\)",
        priority=30,
    ),
)

# The worker's start-up banner lists the queues it consumes (`[queues]` then one
# `.> <queue>  exchange=… key=…` line each); it has no time stamp of its own.
BANNER_QUEUES = "[queues]"
BANNER_QUEUE = r"\.>\s+(\S+)\s+exchange="

# The unregistered-task record carries the message headers; the id is in there.
UNREGISTERED_TASK_ID = r"'id': '(?P<id>[0-9a-fA-F-]{8,})'"
