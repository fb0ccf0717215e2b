"""``wsanalyze doctor``: the checklist (Redis, layer, ASGI routing, origins, Celery, wstrace)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from wstrace.doctor.status import FAIL, PASS, SKIP, WARN

from ._common import Json, Traces, console, fail, print_json

_MARK = {
    PASS: "[green]PASS[/]",
    FAIL: "[bold red]FAIL[/]",
    WARN: "[yellow]WARN[/]",
    SKIP: "[dim]skip[/]",
}


def _pairs(values: list[str] | None) -> dict[str, str] | None:
    if values is None:
        return None
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--worker-env wants KEY=VALUE, not {item!r}")
        out[key] = value
    return out


def doctor(
    app_dir: Annotated[
        Path,
        typer.Option(
            "--app-dir",
            help="The Django project directory (with manage.py); relative to the current one.",
        ),
    ] = Path("."),
    settings: Annotated[
        str | None, typer.Option("--settings", help="DJANGO_SETTINGS_MODULE of the web process.")
    ] = None,
    python: Annotated[
        str | None,
        typer.Option("--python", help="The app's Python (default: ./.venv, else this one)."),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", metavar="KEY=VALUE", help="Extra environment of the web process."),
    ] = None,
    worker_env: Annotated[
        list[str] | None,
        typer.Option(
            "--worker-env",
            metavar="KEY=VALUE",
            help="What differs in the worker's environment (compared layer identities).",
        ),
    ] = None,
    celery_app: Annotated[
        str | None, typer.Option("--celery-app", help="module[:attr] of the Celery app.")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per network check.")] = 5.0,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Run only this check (repeatable).")
    ] = None,
    traces: Traces = None,
    json_: Json = False,
) -> None:
    """Check Redis, the channel layer, ASGI routing, origins, the Celery worker and wstrace.

    Exit status 1 only when a check fails; warnings and skips alone exit 0.
    """
    from ..doctor import DoctorError, Target, run_doctor

    target = Target(
        app_dir=app_dir,
        settings=settings,
        python=python,
        env=_pairs(env) or {},
        celery_app=celery_app,
        timeout=timeout,
    )
    try:
        report = run_doctor(
            target, worker_env=_pairs(worker_env), traces=traces, only=tuple(only or ())
        )
    except DoctorError as exc:
        fail(str(exc))
    if json_:
        print_json(json.dumps(report, indent=2, default=str))
    else:
        out = console()
        for check in report["checks"]:
            out.print(
                f"{_MARK.get(check['status'], check['status'])} [bold]{check['name']}[/]: {check['summary']}",
                soft_wrap=True,
            )
            for line in check.get("evidence") or []:
                out.print(f"      {line}", soft_wrap=True, markup=False)
            if check["status"] in (FAIL, WARN) and check.get("fix"):
                out.print(f"      [cyan]fix:[/] {check['fix']}", soft_wrap=True)
    raise typer.Exit(0 if report["ok"] else 1)
