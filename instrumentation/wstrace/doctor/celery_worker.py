"""``celery_worker``: a worker answers ping and consumes every queue tasks are routed to.

Each routed queue needs a worker consuming it, and that worker must have the queue's
tasks registered; otherwise an enqueued task waits forever and its answer never comes.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from wstrace.redact import redact_text, redact_url

from ._settings import celery_configured
from .registry import Check, Item, Options, register
from .status import FAIL, PASS, SKIP

CELERY_WORKER = Item("celery_worker")


def _celery_app(opts: Options) -> Any:
    """The project's Celery app: --celery-app, else <settings package>.celery, else current_app."""
    candidates = []
    if opts.celery_app:
        candidates.append(opts.celery_app)
    settings_module = os.environ.get("DJANGO_SETTINGS_MODULE", "")
    if "." in settings_module:
        candidates.append(settings_module.rsplit(".", 1)[0] + ".celery")
    from celery import Celery

    for spec in candidates:
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if attr:
            return getattr(module, attr)
        for name in ("app", "celery_app", "celery"):
            value = getattr(module, name, None)
            if isinstance(value, Celery):
                return value
        for value in vars(module).values():
            if isinstance(value, Celery):
                return value
    from celery import current_app

    return current_app._get_current_object()


def _route_queue(app: Any, task_name: str) -> str:
    """The queue ``task_name`` is routed to (the default queue when routing fails)."""
    try:
        route = app.amqp.router.route({}, task_name)
        queue = route.get("queue")
        return getattr(queue, "name", None) or str(queue)
    except Exception:
        return app.conf.task_default_queue or "celery"


def _consumers(
    app: Any, opts: Options, workers: list[str], routed: dict[str, list[str]], evidence: list[str]
) -> Check:
    """The answer once workers replied: every routed queue consumed, its tasks registered."""
    inspect = app.control.inspect(timeout=opts.timeout, destination=workers, limit=len(workers))
    active = inspect.active_queues() or {}
    registered = inspect.registered() or {}
    consumed: dict[str, list[str]] = {}
    for worker, queues in active.items():
        for queue in queues or []:
            consumed.setdefault(queue.get("name"), []).append(worker)
    evidence.append(f"workers: {', '.join(workers)}")
    evidence.append(
        "queues consumed: "
        + ", ".join(f"{q} ({', '.join(ws)})" for q, ws in sorted(consumed.items()))
        or "none"
    )
    problems = []
    for queue, names in sorted(routed.items()):
        if queue not in consumed:
            problems.append(f"queue {queue!r} (tasks {', '.join(names)}) is consumed by no worker")
            continue
        known = {t for w in consumed[queue] for t in registered.get(w, [])}
        missing = [n for n in names if registered and n not in known]
        if missing:
            problems.append(f"{', '.join(missing)} not registered in the workers of {queue!r}")
        evidence.append(f"{queue}: {', '.join(names)} → {', '.join(consumed[queue])}")
    if problems:
        evidence += problems
        return CELERY_WORKER(
            FAIL,
            "; ".join(problems),
            evidence,
            "Align task_routes with the worker's -Q list (celery -A proj worker -Q "
            f"{','.join(sorted(routed))}) and make the worker import the task modules.",
        )
    return CELERY_WORKER(
        PASS, f"{len(workers)} worker(s) answer and consume every routed queue", evidence
    )


@register(CELERY_WORKER)
def check_celery_worker(opts: Options) -> Check:
    if not celery_configured() and not opts.celery_app:
        return CELERY_WORKER(SKIP, "no Celery broker configured", ["CELERY_BROKER_URL unset"])
    try:
        app = _celery_app(opts)
    except Exception as exc:
        return CELERY_WORKER(
            FAIL,
            "the Celery app cannot be loaded",
            [redact_text(f"{type(exc).__name__}: {exc}")],
            "Pass --celery-app module:attr.",
        )
    broker = redact_url(app.conf.broker_url or "")
    evidence = [f"Celery app {app.main!r}, broker {broker}"]
    try:
        app.loader.import_default_modules()
    except Exception as exc:
        evidence.append(redact_text(f"importing task modules: {type(exc).__name__}: {exc}"))
    tasks = sorted(n for n in app.tasks if not n.startswith("celery."))
    routed: dict[str, list[str]] = {}
    for name in tasks:
        routed.setdefault(_route_queue(app, name), []).append(name)
    try:
        replies = app.control.ping(timeout=min(opts.timeout, 2.0))  # waits the whole timeout
    except Exception as exc:
        evidence.append(redact_text(f"ping: {type(exc).__name__}: {exc}"))
        return CELERY_WORKER(
            FAIL,
            "the broker cannot be reached",
            evidence,
            "Start the broker or fix CELERY_BROKER_URL (in Docker: the service name).",
        )
    workers = sorted(name for reply in replies for name in reply)
    if not workers:
        evidence.append(f"ping: no reply within {min(opts.timeout, 2.0):g}s")
        evidence += [f"{q}: {', '.join(ts)}" for q, ts in sorted(routed.items())]
        return CELERY_WORKER(
            FAIL,
            "no Celery worker answered: enqueued tasks will never run",
            evidence,
            f"Start a worker: celery -A {app.main or 'proj'} worker -Q {','.join(sorted(routed)) or 'celery'}",
        )
    return _consumers(app, opts, workers, routed, evidence)
