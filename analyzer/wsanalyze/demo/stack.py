"""Run an example app for real: Daphne and a Celery prefork worker as subprocesses on one Redis.

Used by the test suite, ``wsanalyze demo``, the benchmarks and the docker tests::

    with RedisServer() as redis, Stack(Path("/tmp/run"), redis.url) as stack:
        transcript = stack.talk(["hello"])                      # a healthy conversation
        transcript = stack.run_scenario(FAULTS["consumer_gone"])

    with RedisServer() as redis, Stack(Path("/tmp/rooms"), redis.url, app="roomapp") as stack:
        ...  # drive it with wsanalyze.demo.roomclient

The apps are ``example_apps.APPS`` (``chatapp`` by default, ``roomapp``); the Redis
is ``redis_server.RedisServer``; the chat app's faults are ``chatapp_faults.FAULTS``.
Nothing here imports Django: the app runs in its own processes, configured by
environment variables.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .chatapp_faults import ChatAppFault
from .client import Transcript, converse, make_token
from .example_apps import APPS, example_app_dir
from .processes import HOST, POLL, StackError, file_tail, free_port, port_open, stop_process

__all__ = ["SERVICES", "TOKEN_KINDS", "Stack"]

SERVICES = ("web", "worker")
TOKEN_KINDS = ("valid", "none", "expired", "wrong_secret", "garbage")


class Stack:
    """Daphne serving an example app plus a Celery prefork worker, sharing one Redis.

    ``app`` picks the example app (``APPS``: ``chatapp`` by default, ``roomapp``).
    ``env`` goes to both processes, ``web_env`` / ``worker_env`` to one (they win
    over ``env``). Logs go to ``workdir/web.log`` and ``workdir/worker.log``;
    wstrace files to ``trace_dir`` (default ``workdir/traces``). ``worker=False``
    starts no worker at all (the "worker down" deployment); ``stop_worker()``
    stops it later.
    """

    def __init__(
        self,
        workdir: Path,
        redis_url: str,
        *,
        layer: str = "core",
        env: Mapping[str, str] | None = None,
        web_env: Mapping[str, str] | None = None,
        worker_env: Mapping[str, str] | None = None,
        wstrace_enabled: bool = True,
        trace_dir: Path | None = None,
        concurrency: int = 2,
        queues: str = "celery",
        python: str = sys.executable,
        app_dir: Path | None = None,
        startup_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        app: str = "chatapp",
        worker: bool = True,
    ) -> None:
        if layer not in ("core", "pubsub"):
            raise ValueError(f"layer must be 'core' or 'pubsub', not {layer!r}")
        if app not in APPS:
            raise ValueError(f"app must be one of {tuple(APPS)}, not {app!r}")
        self.app = APPS[app]
        self.with_worker = worker
        self.workdir = Path(workdir)
        self.redis_url = redis_url
        self.layer = layer
        self.env = dict(env or {})
        self.web_env = dict(web_env or {})
        self.worker_env = dict(worker_env or {})
        self.wstrace_enabled = wstrace_enabled
        self.trace_dir = Path(trace_dir) if trace_dir else self.workdir / "traces"
        self.concurrency = concurrency
        self.queues = queues
        self.python = python
        self.app_dir = Path(app_dir) if app_dir else example_app_dir(app)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.port = free_port()
        self.worker_name = f"{self.app.worker_prefix}-{uuid.uuid4().hex[:8]}"
        self.web_log = self.workdir / "web.log"
        self.worker_log = self.workdir / "worker.log"
        self.procs: dict[str, subprocess.Popen] = {}
        self._worker_log_start = 0
        self._terminated = False

    # --- addresses and credentials -------------------------------------------------
    @property
    def web_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def ws_url(self, conversation_id: str, token: str | None = None) -> str:
        """Return the WebSocket URL of a conversation, with ``?token=`` when given (chatapp)."""
        url = f"ws://{HOST}:{self.port}" + self.app.ws_path.format(conversation_id=conversation_id)
        return f"{url}?token={token}" if token and self.app.token_in_query else url

    def user_ws_url(self, user_id: str) -> str:
        """Return the notification WebSocket URL of a user (roomapp)."""
        return f"ws://{HOST}:{self.port}/ws/user/{user_id}/"

    @property
    def jwt_secret(self) -> str:
        var = f"{self.app.env_prefix}_JWT_SECRET"
        return self.process_env("web").get(var, self.app.default_secret)

    def token(self, user_id: int | str = 1, name: str = "alice", *, expired: bool = False) -> str:
        """Mint a connection token the web process accepts (or an expired one)."""
        return make_token(user_id, name, self.jwt_secret, expired=expired)

    def token_of(self, kind: str) -> str | None:
        """A token of one of TOKEN_KINDS: valid, none, expired, wrong_secret, garbage."""
        if kind not in TOKEN_KINDS:
            raise ValueError(f"token kind must be one of {TOKEN_KINDS}, not {kind!r}")
        return {
            "valid": lambda: self.token(),
            "none": lambda: None,
            "expired": lambda: self.token(expired=True),
            "wrong_secret": lambda: make_token(1, "mallory", "x" * 32 + "-not-the-secret"),
            "garbage": lambda: "not.a.jwt",
        }[kind]()

    def talk(
        self,
        messages: list[str],
        *,
        conversation_id: str | None = None,
        token: str | None = "valid",
        **kwargs: Any,
    ) -> Transcript:
        """Run one client connection (``converse`` kwargs) in a conversation; blocking.

        ``token`` is a token kind (TOKEN_KINDS) or a token string.
        """
        token = self.token_of(token) if token in TOKEN_KINDS else token
        url = self.ws_url(conversation_id or uuid.uuid4().hex[:12])
        return asyncio.run(converse(url, list(messages), token=token, **kwargs))

    def run_scenario(
        self, scenario: ChatAppFault, conversation_id: str | None = None
    ) -> Transcript:
        """Play a chat-app fault's client side on this stack (configure ``worker_env`` yourself)."""
        return self.talk(
            list(scenario.messages),
            conversation_id=conversation_id,
            token=scenario.token,
            **dict(scenario.client),
        )

    # --- what runs -------------------------------------------------------------------
    def web_command(self) -> list[str]:
        """The Daphne command line (run with cwd = the example app)."""
        return [
            self.python, "-m", "daphne", "-b", HOST, "-p", str(self.port),
            "config.asgi:application",
        ]  # fmt: skip

    def worker_command(self) -> list[str]:
        """The Celery worker command line (run with cwd = the example app)."""
        return [
            self.python, "-m", "celery", "-A", "config", "worker",
            "-P", "prefork", "-c", str(self.concurrency), "-Q", self.queues, "-l", "info",
            "-n", f"{self.worker_name}@%h", "--without-mingle", "--without-gossip",
        ]  # fmt: skip

    def process_env(self, service: str) -> dict[str, str]:
        """The variables this stack sets for ``service`` ("web" / "worker") over os.environ."""
        if service not in SERVICES:
            raise ValueError(f"service must be one of {SERVICES}, not {service!r}")
        prefix = self.app.env_prefix
        env = {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "PYTHONPATH": str(self.app_dir),
            "PYTHONUNBUFFERED": "1",
            "REDIS_URL": self.redis_url,
            f"{prefix}_LAYER": self.layer,
            f"{prefix}_JWT_SECRET": self.app.default_secret,
            f"{prefix}_DB_PATH": str(self.workdir / "db.sqlite3"),
            # redis-py 8's default 5 s socket timeout occasionally loses the cancel of a
            # consumer's layer receive(); the orphaned receive loop then drains the whole
            # process's channel into per-channel buffers (drop-oldest), which makes
            # scenarios such as channel_full nondeterministic. Pass "" to keep it.
            f"{prefix}_LAYER_SOCKET_TIMEOUT": "none",
            "WSTRACE_ENABLED": "1" if self.wstrace_enabled else "0",
            "WSTRACE_DIR": str(self.trace_dir),
            "WSTRACE_SERVICE": service,
        }
        env.update(self.env)
        env.update(self.web_env if service == "web" else self.worker_env)
        return env

    def _full_env(self, service: str) -> dict[str, str]:
        env = dict(os.environ)
        own = self.process_env(service)
        inherited = os.environ.get("PYTHONPATH")
        if inherited and own["PYTHONPATH"] == str(self.app_dir):
            own["PYTHONPATH"] = os.pathsep.join([own["PYTHONPATH"], inherited])
        env.update(own)
        return env

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> Stack:
        """Start Daphne and the worker; return once both serve (or raise StackError)."""
        return self.launch().wait_ready()

    def launch(self) -> Stack:
        """Spawn both processes without waiting (``wait_ready`` waits); lets stacks boot in parallel."""
        if self.procs:
            raise StackError("stack already started")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.trace_dir.mkdir(parents=True, exist_ok=True)
        self._worker_log_start = self.worker_log.stat().st_size if self.worker_log.exists() else 0
        try:
            for service, command, log in (
                ("web", self.web_command(), self.web_log),
                ("worker", self.worker_command(), self.worker_log),
            ):
                if service == "worker" and not self.with_worker:
                    continue
                with open(log, "ab") as out:
                    self.procs[service] = subprocess.Popen(
                        command,
                        cwd=self.app_dir,
                        env=self._full_env(service),
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self) -> Stack:
        """Wait until Daphne accepts TCP and the worker logged ``ready``; stop and raise if not."""
        try:
            self._wait_ready(self._worker_log_start)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, worker_log_start: int) -> None:
        deadline = time.monotonic() + self.startup_timeout
        web_ready = False
        worker_ready = not self.with_worker
        while not (web_ready and worker_ready):
            self._check_alive()
            web_ready = web_ready or port_open(self.port)
            worker_ready = worker_ready or self._worker_says_ready(worker_log_start)
            if time.monotonic() > deadline:
                waiting = [
                    name for name, ok in (("web", web_ready), ("worker", worker_ready)) if not ok
                ]
                late = ", ".join(waiting)
                raise StackError(
                    f"{late} not ready after {self.startup_timeout}s\n{self.log_tails()}"
                )
            time.sleep(POLL)

    def _worker_says_ready(self, offset: int) -> bool:
        try:
            with open(self.worker_log, "rb") as log:
                log.seek(offset)
                return b" ready." in log.read()
        except OSError:
            return False

    def _check_alive(self) -> None:
        for service, proc in self.procs.items():
            if proc.poll() is not None:
                raise StackError(
                    f"{service} exited with status {proc.returncode}\n{self.log_tail(service)}"
                )

    def stop_worker(self) -> None:
        """Stop the Celery worker only (warm shutdown, telemetry flushed); Daphne keeps serving."""
        proc = self.procs.pop("worker", None)
        if proc is not None:
            stop_process(proc, self.stop_timeout)

    def running(self) -> bool:
        """True while both processes are alive."""
        return bool(self.procs) and all(proc.poll() is None for proc in self.procs.values())

    def terminate(self) -> None:
        """Send SIGTERM to both processes without waiting (``stop`` waits)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        self._terminated = True

    def stop(self) -> None:
        """SIGTERM both processes (telemetry flushes), wait; SIGKILL after ``stop_timeout``."""
        if not self._terminated:
            self.terminate()
        procs, self.procs = self.procs, {}
        for proc in procs.values():
            stop_process(proc, self.stop_timeout, terminate=False)
        self._terminated = False

    def __enter__(self) -> Stack:
        return self.start()

    @staticmethod
    def stop_all(stacks: list[Stack]) -> None:
        """Stop several stacks at once: signal them all, then wait for each."""
        for stack in stacks:
            stack.terminate()
        for stack in stacks:
            stack.stop()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- inspection ------------------------------------------------------------------
    def log_tail(self, service: str, lines: int = 40) -> str:
        """Return the last lines of a service's log, headed by its name."""
        path = self.web_log if service == "web" else self.worker_log
        return f"--- {service} ({path}) ---\n{file_tail(path, lines)}"

    def log_tails(self, lines: int = 40) -> str:
        return "\n".join(self.log_tail(service, lines) for service in SERVICES)

    def log_text(self, service: str) -> str:
        """Return the whole log of a service."""
        path = self.web_log if service == "web" else self.worker_log
        return path.read_text(errors="replace") if path.exists() else ""

    def _redis(self) -> Any:
        import redis  # the demo extra ships it; imported late so the module stays light

        return redis.Redis.from_url(self.redis_url, socket_timeout=5)

    def task_result(self, task_id: str, timeout: float = 10.0) -> dict[str, Any] | None:
        """Wait for a task's stored result (``status``, ``result``, ``traceback``), else None."""
        key = f"celery-task-meta-{task_id}"
        deadline = time.monotonic() + timeout
        with self._redis() as client:
            while True:
                raw = client.get(key)
                if raw is not None:
                    meta = json.loads(raw)
                    if meta.get("status") in ("SUCCESS", "FAILURE", "REVOKED"):
                        return meta
                if time.monotonic() > deadline:
                    return None
                time.sleep(POLL)

    def queue_length(self, queue: str) -> int:
        """Return how many task messages wait in a broker queue."""
        with self._redis() as client:
            return int(client.llen(queue))
