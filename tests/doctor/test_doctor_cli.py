"""Both doctor commands: exit status by FAIL only, relative --app-dir, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.doctor.conftest import PROJ, _base_env

pytestmark = pytest.mark.stack


def manage_py(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "manage.py", "wstrace", "doctor", "--timeout", "2", *args]
    return subprocess.run(
        argv, cwd=PROJ, env={**_base_env(), **env}, capture_output=True, text=True, timeout=120
    )


def wsanalyze(
    env: dict[str, str], *args: str, cwd: Path | None = None, app_dir: str = str(PROJ)
) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "wsanalyze.cli", "doctor", "--app-dir", app_dir,
            "--timeout", "2", *args]  # fmt: skip
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_manage_py_doctor_exits_0_on_warnings_alone_and_1_on_a_failure(project_env):
    warned = manage_py({**project_env, "DOCTOR_ALLOWED_HOSTS": "*"}, "--only", "allowed_origins")
    assert warned.returncode == 0, warned.stdout + warned.stderr
    assert "[WARN] allowed_origins" in warned.stdout
    failed = manage_py({**project_env, "DOCTOR_ALLOWED_HOSTS": ""}, "--only", "allowed_origins")
    assert failed.returncode == 1 and "[FAIL] allowed_origins" in failed.stdout


def test_wsanalyze_doctor_exits_0_on_warnings_alone_and_1_on_a_failure(project_env):
    warned = wsanalyze({**project_env, "DOCTOR_ASGI": "no_origin"}, "--only", "allowed_origins")
    assert warned.returncode == 0, warned.stdout + warned.stderr
    assert "WARN allowed_origins" in warned.stdout
    failed = wsanalyze({**project_env, "DOCTOR_ALLOWED_HOSTS": ""}, "--only", "allowed_origins")
    assert failed.returncode == 1 and "FAIL allowed_origins" in failed.stdout


@pytest.mark.parametrize("where", ["parent", "grandparent", "elsewhere"])
def test_a_relative_app_dir_is_resolved_against_the_current_directory(project_env, tmp_path, where):
    cwd = {"parent": PROJ.parent, "grandparent": PROJ.parent.parent, "elsewhere": tmp_path}[where]
    relative = os.path.relpath(PROJ, cwd)
    assert not Path(relative).is_absolute()
    run = wsanalyze(project_env, "--json", "--only", "redis_reachable", cwd=cwd, app_dir=relative)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert [(c["name"], c["status"]) for c in report["checks"]] == [("redis_reachable", "pass")]


def test_an_unknown_check_name_is_a_one_line_error(project_env):
    run = wsanalyze(project_env, "--only", "no_such_check")
    assert run.returncode != 0
    assert run.stderr.strip().splitlines() == ["error: unknown check(s): no_such_check"]
    assert "Traceback" not in run.stdout + run.stderr


def test_a_missing_app_dir_is_a_one_line_error(tmp_path):
    run = wsanalyze({}, app_dir=str(tmp_path / "nowhere"))
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "nowhere: no such directory" in lines[0], run.stderr


def _python_without_django() -> str | None:
    """A Python on this machine that cannot import Django (the analyzer's own pipx venv, say)."""
    python = "/usr/bin/python3"
    if not Path(python).exists():
        return None
    probe = subprocess.run([python, "-c", "import django"], capture_output=True)
    return python if probe.returncode != 0 else None


NO_DJANGO = _python_without_django()


@pytest.mark.skipif(NO_DJANGO is None, reason="needs a Python without Django at /usr/bin/python3")
def test_a_python_without_django_is_named_as_not_the_apps_python(project_env):
    run = wsanalyze(project_env, "--python", str(NO_DJANGO), "--only", "redis_reachable")
    assert run.returncode == 1
    assert f"{NO_DJANGO} has no Django: it is not the app's Python" in run.stdout
    assert "--python" in run.stdout
