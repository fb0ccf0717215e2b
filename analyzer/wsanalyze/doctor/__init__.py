"""`wsanalyze doctor`: the classic checklist, run against the user's Django project.

The analyzer never imports Django: the checks that need the app (Redis from the
layer settings, layer and group round trips, ASGI routing, origins, in-memory
layer, Celery worker and queues, wstrace writing) run in a subprocess,
``python manage.py wstrace doctor --json``, with the project's settings and
environment. On top, from the analyzer side:

``layer_identity``  web and worker see the same channel layer: the web's identity
                    (from that subprocess) against the worker's — from a second run
                    with the worker's environment (``worker_env``), or from the
                    ``worker_ready`` spans wstrace's worker instrumentation wrote.

    report = run_doctor(Target(app_dir=Path(".")), worker_env={"CHAT_LAYER_PREFIX": "x"})
    report["ok"], report["checks"]

The analyzer may live in an environment of its own (``pipx install 'wstrace[analyzer]'``):
the Django side runs with the app's interpreter (``<app-dir>/.venv/bin/python``,
``<app-dir>/venv/bin/python``, or ``--python``), which only needs ``wstrace``.
``ok`` is False only when a check failed; warnings never make it False.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The Django side's words: its JSON and the checks added here must agree. A light module
# (neither Django nor the OpenTelemetry SDK): the analyzer may run without them. WARN is
# unused here and still exported, so wsanalyze.doctor keeps naming all four.
from wstrace.doctor.status import FAIL, PASS, SKIP
from wstrace.doctor.status import WARN as WARN


class DoctorError(Exception):
    """The doctor could not run at all (no project found, bad option)."""


@dataclass
class Target:
    """Where and how to run the project's Django side."""

    app_dir: Path = field(default_factory=Path.cwd)
    settings: str | None = None
    python: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    celery_app: str | None = None
    timeout: float = 5.0

    def __post_init__(self) -> None:
        # Relative paths mean the caller's directory: resolve them before the subprocess
        # runs in app_dir (where `proj/manage.py` would be `proj/proj/manage.py`).
        self.app_dir = Path(self.app_dir).expanduser().resolve()
        if self.python and os.sep in self.python:
            self.python = str(Path(self.python).expanduser().absolute())

    def interpreter(self) -> str:
        if self.python:
            return self.python
        for candidate in (
            self.app_dir / ".venv" / "bin" / "python",
            self.app_dir / "venv" / "bin" / "python",
        ):
            if candidate.exists():
                return str(candidate)
        return sys.executable

    def command(self, only: tuple[str, ...] = ()) -> list[str]:
        manage = self.app_dir / "manage.py"
        head = (
            [self.interpreter(), str(manage)]
            if manage.is_file()
            else [self.interpreter(), "-m", "django"]
        )
        argv = [*head, "wstrace", "doctor", "--json", "--timeout", f"{self.timeout:g}"]
        if self.celery_app:
            argv += ["--celery-app", self.celery_app]
        if only:
            argv += ["--only", *only]
        return argv

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ)
        if self.settings:
            env["DJANGO_SETTINGS_MODULE"] = self.settings
        env.update(self.env)
        env.update(extra or {})
        paths = [str(self.app_dir)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        return env


def _tail(text: str, lines: int = 12) -> list[str]:
    return [ln for ln in text.strip().splitlines()[-lines:]]


def django_side(
    target: Target, *, extra_env: dict[str, str] | None = None, only: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Run `manage.py wstrace doctor --json` and return its report (or a failing check)."""
    if not target.app_dir.is_dir():
        raise DoctorError(f"--app-dir {target.app_dir}: no such directory")
    if not (target.app_dir / "manage.py").is_file() and not (
        target.settings
        or os.environ.get("DJANGO_SETTINGS_MODULE")
        or "DJANGO_SETTINGS_MODULE" in target.env
    ):
        raise DoctorError(
            f"no manage.py in {target.app_dir.resolve()} and no --settings: "
            "run from the project directory or pass --app-dir/--settings"
        )
    argv = target.command(only)
    budget = 60 + 6 * target.timeout
    try:
        proc = subprocess.run(
            argv,
            cwd=target.app_dir,
            env=target.environ(extra_env),
            capture_output=True,
            text=True,
            timeout=budget,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return _project_failure(argv, f"no answer within {budget:g}s", [])
    except OSError as exc:
        return _project_failure(argv, f"cannot run {argv[0]}: {exc}", [])
    start = proc.stdout.find("{")
    if start >= 0:
        try:
            return json.loads(proc.stdout[start:])
        except ValueError:
            pass
    err = proc.stderr + proc.stdout
    unknown = next((ln for ln in err.splitlines() if "unknown check(s)" in ln), None)
    if unknown:
        raise DoctorError(unknown.removeprefix("CommandError: "))
    if "No module named 'django'" in err:
        return _project_failure(
            argv,
            f"{argv[0]} has no Django: it is not the app's Python",
            _tail(err, 3),
            fix="Pass --python with the app's interpreter (its virtualenv's bin/python), "
            "or run the doctor from that environment.",
        )
    if "Unknown command: 'wstrace'" in err:
        return _project_failure(
            argv,
            "wstrace is not in INSTALLED_APPS (manage.py has no `wstrace` command)",
            _tail(err),
            fix="Add 'wstrace' to INSTALLED_APPS and install the wstrace package in the app's environment.",
            name="wstrace_active",
        )
    return _project_failure(argv, f"the project did not start (exit {proc.returncode})", _tail(err))


def _project_failure(
    argv: list[str],
    summary: str,
    evidence: list[str],
    *,
    fix: str | None = None,
    name: str = "django_project",
) -> dict[str, Any]:
    return {
        "checks": [
            {
                "name": name,
                "status": FAIL,
                "summary": summary,
                "evidence": [" ".join(argv), *evidence],
                "fix": fix
                or "Run the command above by hand; fix the settings/import error it prints.",
            }
        ],
        "facts": {},
    }


def _worker_identity_from_traces(traces: str | None) -> tuple[dict[str, str] | None, list[str]]:
    """The newest worker_ready span's layer identity in the trace store, if any."""
    try:
        import polars as pl

        from wsanalyze.sources import load_events
    except ImportError:
        return None, ["the analyzer's trace reader is unavailable"]
    try:
        events = load_events(traces).events
    except Exception as exc:
        return None, [f"no trace store to read ({exc})"]
    rows = (
        events.filter(pl.col("event") == "worker_ready", pl.col("layer").is_not_null())
        .sort("ts")
        .select("ts", "service", "layer", "attributes")
        .collect()
    )
    if rows.is_empty():
        return None, ["no worker_ready span with ws.layer in the trace store"]
    row = rows.row(-1, named=True)
    desc = None
    with contextlib.suppress(ValueError, AttributeError):
        desc = json.loads(row["attributes"] or "{}").get("ws.layer_desc")
    return {"ws.layer": row["layer"], "ws.layer_desc": desc or "?"}, [
        f"worker_ready of {row['service']} at {row['ts']}: ws.layer={row['layer']} ({desc})"
    ]


def layer_identity_check(
    web: dict[str, Any] | None, worker: dict[str, Any] | None, evidence: list[str]
) -> dict[str, Any]:
    name = "layer_identity"
    if not web:
        return {
            "name": name,
            "status": SKIP,
            "summary": "the web side's layer identity is unknown",
            "evidence": evidence,
            "fix": None,
        }
    evidence = [f"web: ws.layer={web.get('ws.layer')} ({web.get('ws.layer_desc')})", *evidence]
    if not worker:
        return {
            "name": name,
            "status": SKIP,
            "summary": "the worker's layer identity is unknown: pass --worker-env KEY=VALUE "
            "(what differs in the worker's environment) or enable wstrace in the worker",
            "evidence": evidence,
            "fix": None,
        }
    evidence.append(f"worker: ws.layer={worker.get('ws.layer')} ({worker.get('ws.layer_desc')})")
    if web.get("ws.layer") == worker.get("ws.layer") and "memory" not in str(
        web.get("ws.layer_desc")
    ):
        return {
            "name": name,
            "status": PASS,
            "summary": "web and worker use the same channel layer",
            "evidence": evidence,
            "fix": None,
        }
    return {
        "name": name,
        "status": FAIL,
        "summary": "web and worker use different channel layers: the worker's group_send "
        "reaches no consumer (layer_mismatch)",
        "evidence": evidence,
        "fix": "Load one settings module in both processes; make CHANNEL_LAYERS hosts, db and "
        "prefix identical (check env vars that differ between the containers).",
    }


def run_doctor(
    target: Target,
    *,
    worker_env: dict[str, str] | None = None,
    traces: str | None = None,
    only: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Every check, Django-side and analyzer-side; `ok` is False when one failed."""
    django_only = tuple(n for n in only if n != "layer_identity")
    report = {"checks": [], "facts": {}}
    if not only or django_only:
        report = django_side(target, only=django_only)
    checks = list(report.get("checks", []))
    facts = {"web": report.get("facts", {})}
    if not only or "layer_identity" in only:
        web_layer = facts["web"].get("layer")
        if web_layer is None and only == ("layer_identity",):
            web_layer = (
                django_side(target, only=("layer_not_in_memory",)).get("facts", {}).get("layer")
            )
            facts["web"]["layer"] = web_layer
        worker_layer, evidence = None, []
        if worker_env is not None:
            worker_report = django_side(target, extra_env=worker_env, only=("layer_not_in_memory",))
            worker_layer = worker_report.get("facts", {}).get("layer")
            facts["worker"] = worker_report.get("facts", {})
            changed = ", ".join(f"{k}={v}" for k, v in worker_env.items()) or "(no change)"
            evidence.append(
                f"worker identity from the settings with the worker's environment ({changed})"
            )
        else:
            worker_layer, evidence = _worker_identity_from_traces(traces)
        checks.append(layer_identity_check(web_layer, worker_layer, evidence))
    return {"ok": not any(c["status"] == FAIL for c in checks), "checks": checks, "facts": facts}
