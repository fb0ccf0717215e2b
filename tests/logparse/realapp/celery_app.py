"""A Celery app run by a real worker: tasks that succeed, raise, retry and hit a time limit."""

from __future__ import annotations

import os
import time

from celery import Celery

app = Celery("realapp", broker=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=True,
    task_soft_time_limit=None,
)


@app.task(name="chat.run_agent")
def run_agent(conversation_id: str) -> str:
    return f"answered {conversation_id}"


@app.task(name="chat.explode")
def explode(conversation_id: str) -> None:
    raise TypeError("can not serialize 'UUID' object")


@app.task(name="chat.flaky", bind=True, max_retries=1, default_retry_delay=0)
def flaky(self, conversation_id: str) -> str:
    if self.request.retries == 0:
        raise self.retry(exc=ConnectionError("Error 111 connecting to redis:6379."))
    return "ok"


@app.task(name="chat.slow", soft_time_limit=0.5)
def slow(conversation_id: str) -> None:
    time.sleep(3)


@app.task(name="chat.killed")
def killed(conversation_id: str) -> None:
    os.kill(os.getpid(), 9)
