"""``wsanalyze doctor``: the checklist (Redis, layer, ASGI routing, origins, Celery, wstrace)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text
from wstrace.doctor.status import FAIL, PASS, SKIP, WARN

from ..render.safe_text import shown
from ._common import Json, Traces, check_path, console, fail, print_json, quoted, seconds

_MARK = {
    PASS: ("PASS", "green"),
    FAIL: ("FAIL", "bold red"),
    WARN: ("WARN", "yellow"),
    SKIP: ("skip", "dim"),
}


def _app_dir(value: Path) -> Path:
    check_path(str(value), "--app-dir")
    return value


def _pairs(values: list[str] | None, option: str) -> dict[str, str] | None:
    if values is None:
        return None
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key or "\x00" in item:
            fail(f"{option} wants KEY=VALUE, not {quoted(item)}")
        out[key] = value
    return out


def doctor(
    app_dir: Annotated[
        Path,
        typer.Option(
            "--app-dir",
            callback=_app_dir,
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
        env=_pairs(env, "--env") or {},
        celery_app=celery_app,
        timeout=seconds(timeout, "--timeout", zero=False),
    )
    try:
        report = run_doctor(
            target,
            worker_env=_pairs(worker_env, "--worker-env"),
            traces=traces,
            only=tuple(only or ()),
        )
    except DoctorError as exc:
        fail(str(exc))
    if json_:
        print_json(json.dumps(report, indent=2, default=str))
    else:
        out = console()
        for check in report["checks"]:
            mark = _MARK.get(check["status"], (shown(check["status"]), ""))
            head = Text.assemble(mark, " ", (shown(check["name"]), "bold"), ": ")
            head.append(shown(check["summary"]))
            out.print(head, soft_wrap=True)
            for line in check.get("evidence") or []:
                out.print(Text(f"      {shown(line)}"), soft_wrap=True)
            if check["status"] in (FAIL, WARN) and check.get("fix"):
                fix = Text.assemble("      ", ("fix:", "cyan"), " ", shown(check["fix"]))
                out.print(fix, soft_wrap=True)
    raise typer.Exit(0 if report["ok"] else 1)
